// Prints the markdown tables of the label-noise, random-label/input, Top-k k
// and multi-seed experiments (docs/EXPERIMENTS.md) from the run directories
// written by dev/experiment-noise.sh: each run's metrics.jsonl (training-batch
// sparsity over steps, validation loss) and noise-eval.json
// (dev/experiment-noise-eval.mjs: clean-validation NLL, ECE, corrupted-input
// NLL, per-layer nonzero fraction).
// With a second directory (dev/experiment-noise-memo.sh), also the
// memorisation-regime table: clean validation loss over steps, final training
// loss on the (noisy) training targets, ECE.
// Usage: node dev/experiment-noise-summary.mjs [runs-dir] [memo-runs-dir]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const runs = process.argv[2] ?? '/work/runs/noise';
const memo = process.argv[3];
const metrics = (name, dir = runs) => readFileSync(join(dir, name, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const evalOf = (name, dir = runs) => (existsSync(join(dir, name, 'noise-eval.json')) ? JSON.parse(readFileSync(join(dir, name, 'noise-eval.json'), 'utf8')) : null);
const f4 = (x) => (x === undefined || x === null || Number.isNaN(x) ? '-' : x.toFixed(4));
const pct = (x) => (x === undefined || x === null ? '-' : `${(100 * x).toFixed(1)}%`);
const lastVal = (name) => { const v = metrics(name).filter((m) => m.val_loss !== undefined); return v[v.length - 1]; };
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const kinds = [['dense', 'dense'], ['topk', 'Top-k (k = 32)'], ['sparse', 'Sparse FF']];

console.log('### a. Label noise: clean-validation loss, calibration, corrupted inputs (seed 0)\n');
console.log('| model | label noise | val loss | accuracy | mean confidence | ECE (equal width) | ECE (equal mass) | NLL, 10% inputs corrupted | NLL, 30% inputs corrupted | ECE (width), 30% corrupted | mean % nonzero (layers) |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
for (const [kind, label] of kinds) for (const p of ['0', '0.1', '0.3']) {
  const e = evalOf(`${kind}-p${p}-s0`);
  if (!e) { console.log(`| ${label} | ${p} | (not run) |||||||||`); continue; }
  const c = e.calibration;
  console.log(`| ${label} | ${p} | ${f4(c['0'].nll)} | ${f4(c['0'].accuracy)} | ${f4(c['0'].meanConfidence)} | ${f4(c['0'].eceEqualWidth)} | ${f4(c['0'].eceEqualMass)} | ${f4(c['0.1'].nll)} | ${f4(c['0.3'].nll)} | ${f4(c['0.3'].eceEqualWidth)} | ${Object.values(e.nonzero).map(pct).join(' / ')} |`);
}
console.log('\nIncrease of the clean-validation loss caused by label noise (loss at p minus loss at p = 0, same seed):\n');
console.log('| model | p = 0.1 | p = 0.3 |');
console.log('| --- | ---: | ---: |');
for (const [kind, label] of kinds) {
  const at = (p, s = 0) => evalOf(`${kind}-p${p}-s${s}`)?.calibration['0'].nll;
  const d = (p) => (at(p) !== undefined && at('0') !== undefined ? `${(at(p) - at('0')) >= 0 ? '+' : ''}${(at(p) - at('0')).toFixed(4)}` : '-');
  console.log(`| ${label} | ${d('0.1')} | ${d('0.3')} |`);
}

console.log('\n### d. Two seeds: dense vs Top-k at label noise 0 and 0.3\n');
console.log('| model | label noise | val loss seed 0 | val loss seed 1 | mean | ECE (width) seed 0 | ECE (width) seed 1 | NLL 30% corrupted, seed 0 / 1 |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
for (const [kind, label] of kinds.slice(0, 2)) for (const p of ['0', '0.3']) {
  const es = [0, 1].map((s) => evalOf(`${kind}-p${p}-s${s}`));
  if (es.some((e) => !e)) { console.log(`| ${label} | ${p} | (not run) |||||||`); continue; }
  const l = es.map((e) => e.calibration['0'].nll);
  console.log(`| ${label} | ${p} | ${f4(l[0])} | ${f4(l[1])} | ${f4(mean(l))} | ${f4(es[0].calibration['0'].eceEqualWidth)} | ${f4(es[1].calibration['0'].eceEqualWidth)} | ${f4(es[0].calibration['0.3'].nll)} / ${f4(es[1].calibration['0.3'].nll)} |`);
}

console.log('\n### b. Random labels and random inputs (dense): % nonzero per layer on training batches over steps, and at the end on clean validation data\n');
const bRuns = [['dense-p0-s0', 'clean'], ['dense-random-labels', 'random labels'], ['dense-random-inputs', 'random inputs'], ['dense-random-both', 'random inputs and labels']];
const steps = [10, 50, 100, 150, 200, 250];
for (const [name, label] of bRuns) {
  if (!existsSync(join(runs, name, 'metrics.jsonl'))) { console.log(`(${label}: not run)\n`); continue; }
  const m = metrics(name).filter((x) => x.sparsity !== undefined);
  const layers = Object.keys(m[0].sparsity);
  const e = evalOf(name);
  console.log(`${label} (${name}; final validation loss ${f4(lastVal(name)?.val_loss)}):\n`);
  console.log(`| step | ${layers.join(' | ')} |`);
  console.log(`| ---: | ${layers.map(() => '---:').join(' | ')} |`);
  for (const s of steps) { const r = m.find((x) => x.step === s); if (r) console.log(`| ${s} | ${layers.map((l) => pct(r.sparsity[l])).join(' | ')} |`); }
  if (e) console.log(`| validation (analyze) | ${layers.map((l) => pct(e.nonzero[l])).join(' | ')} |`);
  if (e) console.log(`| dead neurons (of ${e.d_ff}) | ${layers.map((l) => e.dead[l]).join(' | ')} |`);
  const a = existsSync(join(runs, name, 'analysis.json')) ? JSON.parse(readFileSync(join(runs, name, 'analysis.json'), 'utf8')) : null;
  if (a) console.log(`| always-on neurons | ${a.layers.map((l) => l.firing.alwaysOn).join(' | ')} |`);
  if (a && e) console.log(`| % nonzero among the neurons not dead | ${a.layers.map((l) => pct((l.nonzero.fraction.mean * e.d_ff) / (e.d_ff - l.firing.dead))).join(' | ')} |`);
  console.log('');
}

console.log('### c. Top-k with several k against dense (seed 0, no label noise)\n');
console.log('| model | val loss | ECE (equal width) | % nonzero per layer (validation) |');
console.log('| --- | ---: | ---: | --- |');
for (const [name, label] of [['dense-p0-s0', 'dense (d_ff 256)'], ['topk8-p0-s0', 'Top-k, k = 8'], ['topk-p0-s0', 'Top-k, k = 32'], ['topk128-p0-s0', 'Top-k, k = 128']]) {
  const e = evalOf(name);
  if (!e) { console.log(`| ${label} | (not run) |||`); continue; }
  console.log(`| ${label} | ${f4(e.calibration['0'].nll)} | ${f4(e.calibration['0'].eceEqualWidth)} | ${Object.values(e.nonzero).map(pct).join(' / ')} |`);
}

console.log('\n### Throughput (training tokens/s at the last step, one thread, machine shared)\n');
for (const name of ['dense-p0-s0', 'topk-p0-s0', 'sparse-p0-s0']) {
  if (!existsSync(join(runs, name, 'metrics.jsonl'))) continue;
  const m = metrics(name).filter((x) => x.tokens_per_s !== undefined);
  console.log(`- ${name}: ${Math.round(m[m.length - 1].tokens_per_s)} tokens/s`);
}

if (memo) {
  console.log('\n### Memorisation regime: 32 KB of training data, about 7.8 epochs (seed 0)\n');
  console.log('| model | label noise | val loss @50 | @100 | @150 | @200 | @250 | train loss (last 50 steps, noisy targets) | ECE (equal width) | mean confidence | accuracy |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const [kind, label] of kinds.slice(0, 2)) for (const p of ['0', '0.3']) {
    const name = `${kind}-p${p}`;
    if (!existsSync(join(memo, name, 'metrics.jsonl'))) { console.log(`| ${label} | ${p} | (not run) |||||||||`); continue; }
    const m = metrics(name, memo);
    const v = (s) => f4(m.find((x) => x.step === s && x.val_loss !== undefined)?.val_loss);
    const tr = m.filter((x) => x.loss !== undefined && x.step > m.filter((y) => y.loss !== undefined).at(-1).step - 50).map((x) => x.loss);
    const e = evalOf(name, memo);
    console.log(`| ${label} | ${p} | ${[50, 100, 150, 200, 250].map(v).join(' | ')} | ${f4(mean(tr))} | ${f4(e?.calibration['0'].eceEqualWidth)} | ${f4(e?.calibration['0'].meanConfidence)} | ${f4(e?.calibration['0'].accuracy)} |`);
  }
  const name = 'dense-random-labels';
  if (existsSync(join(memo, name, 'metrics.jsonl'))) {
    const m = metrics(name, memo).filter((x) => x.sparsity !== undefined);
    const layers = Object.keys(m[0].sparsity);
    const e = evalOf(name, memo);
    console.log(`\nDense with random labels, memorisation regime: % nonzero on training batches over steps (training loss on the random targets in the last column; ln 257 = 5.549):\n`);
    console.log(`| step | ${layers.join(' | ')} | train loss |`);
    console.log(`| ---: | ${layers.map(() => '---:').join(' | ')} | ---: |`);
    for (const s of [10, 50, 100, 150, 200, 250]) { const r = m.find((x) => x.step === s); if (r) console.log(`| ${s} | ${layers.map((l) => pct(r.sparsity[l])).join(' | ')} | ${f4(r.loss)} |`); }
    if (e) console.log(`| validation (analyze) | ${layers.map((l) => pct(e.nonzero[l])).join(' | ')} | |`);
  }
}
