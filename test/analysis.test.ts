/**
 * Lazy Neuron analysis (src/analysis, `sparselm analyze`):
 * - every statistic against numbers worked out by hand on a 3-token ×
 *   4-neuron activation tensor (and small edge cases: empty active sets,
 *   zero mass, sequence boundaries, controller ties);
 * - streaming equals batch: 1, 2 or 5 chunks give identical results, and
 *   the histogram quantiles equal a sort-based computation;
 * - end to end: a tiny trained model analysed with --json through the CLI;
 *   its nonzero fraction equals evaluate()'s sparsity on the same tokens;
 * - Sparse FF controller statistics, the note for a GELU model, and the
 *   one-line errors for bad inputs.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ActiveOverlap, ControllerUsage, FiringFrequency, NearZeroFraction, NonzeroFraction, TopMass, type Acts,
} from '../src/analysis/stats.js';
import { analyzeModel, type AnalysisResult } from '../src/analysis/analyze.js';
import { samplePath } from '../src/data/documents.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { loadCheckpoint, saveCheckpoint } from '../src/io/checkpoint.js';
import { makeConfig } from '../src/models/config.js';
import { initParameters } from '../src/models/params.js';
import { loadPreset, presetConfig } from '../src/models/presets.js';
import { Rng, uniform01 } from '../src/tensor/random.js';
import { train, type TrainSettings } from '../src/train/trainer.js';
import { evaluate } from '../src/train/evaluate.js';

const MAIN = new URL('../src/cli/main.js', import.meta.url).pathname;
const tmp = () => mkdtempSync(join(tmpdir(), 'sparselm-analysis-'));

function sparselm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const close = (a: number, b: number, what: string, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${what}: got ${a}, expected ${b}`);

// 3 tokens × 4 neurons. Neuron 1 always fires, neuron 2 never; -1/128 is nonzero but near zero (exact in float32).
const ACTS = Float32Array.from([
  0, 2, 0, -1 / 128,
  1, 0.5, 0, 3,
  0, 4, 0, 0,
]);

describe('activation statistics by hand (3 tokens × 4 neurons)', () => {
  it('nonzero fraction per token: mean, std, min/max, exact percentiles', () => {
    // Per-token fractions 2/4, 3/4, 1/4; sorted 0.25, 0.5, 0.75; quantile p at rank p·(n-1) = 2p.
    const s = new NonzeroFraction();
    s.add(ACTS, 3, 4);
    const r = s.result();
    assert.equal(r.tokens, 3);
    assert.equal(r.dff, 4);
    const f = r.fraction;
    close(f.mean, 0.5, 'mean');
    close(f.std, Math.sqrt(1 / 24), 'std'); // ((0)² + (1/4)² + (1/4)²) / 3
    close(f.min, 0.25, 'min');
    close(f.max, 0.75, 'max');
    close(f.median, 0.5, 'median');
    close(f.p5, 0.275, 'p5');       // rank 0.1: 0.25 + 0.1·0.25
    close(f.p25, 0.375, 'p25');     // rank 0.5
    close(f.p75, 0.625, 'p75');     // rank 1.5
    close(f.p95, 0.725, 'p95');     // rank 1.9: 0.5 + 0.9·0.25
  });

  it('near-zero fractions |a| <= t', () => {
    const s = new NearZeroFraction();
    s.add(ACTS, 3, 4);
    const r = s.result().thresholds;
    assert.deepEqual(r.map((t) => t.threshold), [1e-3, 1e-2, 1e-1]);
    close(r[0].fraction, (2 / 4 + 1 / 4 + 3 / 4) / 3, 't=1e-3');   // exact zeros only
    close(r[1].fraction, (3 / 4 + 1 / 4 + 3 / 4) / 3, 't=1e-2');   // and -1/128
    close(r[2].fraction, (3 / 4 + 1 / 4 + 3 / 4) / 3, 't=1e-1');   // 0.5 is above 0.1
  });

  it('per-neuron firing: dead, always on, histogram, sparsity among live neurons', () => {
    // Neurons fire on 1, 3, 0, 2 of the 3 tokens.
    const s = new FiringFrequency();
    s.add(ACTS, 3, 4);
    const r = s.result();
    assert.equal(r.dead, 1);
    assert.equal(r.alwaysOn, 1);
    const hist = new Array<number>(20).fill(0);
    hist[0] = 1;   // f = 0
    hist[6] = 1;   // f = 1/3: [0.30, 0.35)
    hist[13] = 1;  // f = 2/3: [0.65, 0.70)
    hist[19] = 1;  // f = 1: the last bin is closed
    assert.deepEqual(r.histogram, hist);
    close(r.meanFrequency, 6 / 12, 'mean frequency');
    close(r.liveSparsity, 6 / 9, 'sparsity among the 3 live neurons');
  });

  it('top-k mass shares (k capped at d_ff)', () => {
    // |a| per token: {2, 1/128}, {1, 0.5, 3}, {4}.
    const s = new TopMass();
    s.add(ACTS, 3, 4);
    const r = s.result().ks;
    assert.deepEqual(r.map((k) => k.k), [1, 4]);
    close(r[0].l1Share, (2 / (2 + 1 / 128) + 3 / 4.5 + 1) / 3, 'L1 k=1');
    close(r[0].l2Share, (4 / (4 + 1 / 128 ** 2) + 9 / 10.25 + 1) / 3, 'L2 k=1');
    close(r[1].l1Share, 1, 'L1 k=4');
    close(r[1].l2Share, 1, 'L2 k=4');
    const two = new TopMass([2, 1]);
    two.add(ACTS, 3, 4);
    const r2 = two.result().ks;
    assert.deepEqual(r2.map((k) => k.k), [1, 2]);
    close(r2[1].l1Share, (1 + 4 / 4.5 + 1) / 3, 'L1 k=2');
    close(r2[1].l2Share, (1 + 10 / 10.25 + 1) / 3, 'L2 k=2');
  });

  it('active-set overlap of consecutive tokens, within sequences', () => {
    // A0 = {1,3}, A1 = {0,1,3}, A2 = {1}: J(0,1) = 2/3, J(1,2) = 1/3.
    const one = new ActiveOverlap(3);
    one.add(ACTS, 3, 4);
    assert.equal(one.result().pairs, 2);
    close(one.result().meanJaccard ?? NaN, 0.5, 'one sequence of 3');
    const two = new ActiveOverlap(2); // sequences {t0, t1}, {t2}
    two.add(ACTS, 3, 4);
    assert.equal(two.result().pairs, 1);
    close(two.result().meanJaccard ?? NaN, 2 / 3, 'sequences of 2');
    const single = new ActiveOverlap(1);
    single.add(ACTS, 3, 4);
    assert.deepEqual(single.result(), { pairs: 0, meanJaccard: null });
  });

  it('edge cases: empty active sets and zero mass', () => {
    const acts = Float64Array.from([0, 0, 0, 0, 0, 0, 5, 0]); // 4 tokens × 2: three empty, then {0}
    const o = new ActiveOverlap(4);
    o.add(acts, 4, 2);
    close(o.result().meanJaccard ?? NaN, (1 + 1 + 0) / 3, 'two empty sets are equal; empty vs {0} share nothing');
    const m = new TopMass([1]);
    m.add(acts, 4, 2);
    assert.deepEqual(m.result().ks, [{ k: 1, l1Share: 1, l2Share: 1 }]);
    const z = new NonzeroFraction();
    z.add(acts, 4, 2);
    const f = z.result().fraction;
    assert.deepEqual([f.min, f.p5, f.p25, f.median, f.p75, f.max], [0, 0, 0, 0, 0.125, 0.5]); // fractions 0, 0, 0, 1/2; p75 at rank 2.25
  });

  it('controller use: argmax per block (ties to the lower index), entropy and max share', () => {
    // 3 tokens, nb = 2 blocks of N = 3.
    const logits = Float32Array.from([
      0.1, 0.5, 0.2, /**/ 1, 1, 0,   // block 0 -> 1; block 1 -> 0 (tie)
      0.9, 0.5, 0.2, /**/ 0, 0, 2,   // -> 0; -> 2
      0, 3, 1, /*    */ 0, 5, 0,     // -> 1; -> 1
    ]);
    const c = new ControllerUsage();
    c.add(logits, 3, 2, 3);
    const r = c.result();
    // Block 0 uses neurons 0,1,2 with shares 1/3, 2/3, 0; block 1 uses each once.
    const h0 = -((1 / 3) * Math.log(1 / 3) + (2 / 3) * Math.log(2 / 3)) / Math.log(3);
    assert.equal(r.blocks, 2);
    assert.equal(r.blockSize, 3);
    close(r.meanNormEntropy, (h0 + 1) / 2, 'mean H/log N');
    close(r.minNormEntropy, h0, 'min H/log N');
    close(r.meanMaxShare, (2 / 3 + 1 / 3) / 2, 'mean max share');
    close(r.maxMaxShare, 2 / 3, 'max share');
  });
});

/** Deterministic activations with many exact zeros: tokens × dff. */
function sparseActs(tokens: number, dff: number): Float32Array {
  const u = Float64Array.from({ length: tokens * dff }, (_, i) => uniform01(7, i, 0, true));
  return Float32Array.from(u, (x, i) => (x < 0.7 ? 0 : (x - 0.7) * (i % 3 === 0 ? -1 : 10)));
}

describe('streaming equals batch', () => {
  const tokens = 37;
  const dff = 24;
  const acts = sparseActs(tokens, dff);
  const feed = (cuts: number[]) => {
    const all = {
      nonzero: new NonzeroFraction(), nearZero: new NearZeroFraction(), firing: new FiringFrequency(), topMass: new TopMass(), overlap: new ActiveOverlap(5), ctrl: new ControllerUsage(),
    };
    let start = 0;
    for (const end of [...cuts, tokens]) {
      const chunk: Acts = acts.subarray(start * dff, end * dff);
      for (const s of [all.nonzero, all.nearZero, all.firing, all.topMass, all.overlap]) s.add(chunk, end - start, dff);
      all.ctrl.add(chunk, end - start, 4, 6);
      start = end;
    }
    return Object.fromEntries(Object.entries(all).map(([k, s]) => [k, s.result()]));
  };

  it('1, 2 or 5 chunks (cutting sequences anywhere) give identical results', () => {
    const whole = feed([]);
    assert.deepEqual(feed([17]), whole);
    assert.deepEqual(feed([1, 9, 10, 30]), whole);
  });

  it('histogram quantiles and Welford moments equal a sort-based computation', () => {
    const fr = Array.from({ length: tokens }, (_, t) => acts.subarray(t * dff, (t + 1) * dff).filter((a) => a !== 0).length / dff).sort((a, b) => a - b);
    const q = (p: number) => { const h = p * (tokens - 1); const lo = Math.floor(h); return fr[lo] + (h - lo) * ((fr[lo + 1] ?? fr[lo]) - fr[lo]); };
    const mean = fr.reduce((a, b) => a + b, 0) / tokens;
    const std = Math.sqrt(fr.reduce((a, b) => a + (b - mean) ** 2, 0) / tokens);
    const s = new NonzeroFraction();
    s.add(acts, tokens, dff);
    const f = s.result().fraction;
    close(f.mean, mean, 'mean');
    close(f.std, std, 'std');
    for (const [k, p] of [['p5', 0.05], ['p25', 0.25], ['median', 0.5], ['p75', 0.75], ['p95', 0.95]] as const) close(f[k], q(p), k);
    assert.equal(f.min, fr[0]);
    assert.equal(f.max, fr[tokens - 1]);
  });
});

const tok = loadTokenizer({ kind: 'byte' });
const tinyConfig = (extra: Record<string, unknown>) => makeConfig(presetConfig(loadPreset('tiny'), { context_length: 32, vocab_size: tok.vocabSize, ...extra }));

describe('sparselm analyze', () => {
  it('a tiny trained model end to end with --json: fields, and the nonzero fraction equals evaluate()', async () => {
    const dir = tmp();
    const settings: TrainSettings = {
      data: [samplePath('train')], valData: [samplePath('validation')], steps: 8, batch: 4, accum: 1, optimizer: 'adamw', lr: 3e-3, schedule: 'cosine', warmup: 2,
      minLr: 0, weightDecay: 0.01, clip: 1, seed: 1, shuffleBuffer: 64, evalEvery: 0, evalTokens: 1024, checkpointEvery: 8, keep: 1, logEvery: 100,
      tokenizer: 'byte', device: 'cpu',
    };
    await train({ out: dir, settings, configFields: presetConfig(loadPreset('tiny'), { context_length: 32 }), resume: false, log: () => undefined });
    const r = sparselm(['analyze', '--model', dir, '--data', samplePath('validation'), '--tokens', '2048', '--batch', '8', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const a = JSON.parse(r.stdout) as AnalysisResult & { step: number; checkpoint: string };
    assert.equal(a.step, 8);
    assert.equal(a.tokens, 2048);
    assert.equal(a.sequences, 64);
    assert.equal(a.seqLen, 32);
    assert.equal(a.exactZeros, true);
    assert.deepEqual(a.notes, []);
    assert.deepEqual(a.layers.map((l) => l.layer), ['blk.0', 'blk.1']);
    for (const l of a.layers) {
      assert.equal(l.nonzero.tokens, 2048);
      assert.equal(l.nonzero.dff, 128);
      const f = l.nonzero.fraction;
      assert.ok(f.min <= f.p5 && f.p5 <= f.p25 && f.p25 <= f.median && f.median <= f.p75 && f.p75 <= f.p95 && f.p95 <= f.max, JSON.stringify(f));
      assert.ok(f.mean > 0 && f.mean < 1);
      close(l.firing.meanFrequency, f.mean, 'mean firing frequency = mean nonzero fraction', 1e-9);
      assert.equal(l.firing.histogram.reduce((x, y) => x + y, 0), 128);
      assert.ok(l.firing.liveSparsity >= f.mean - 1e-12, 'dropping dead neurons can only raise the fraction');
      assert.deepEqual(l.topMass.ks.map((k) => k.k), [1, 4, 16, 64, 128]);
      close(l.topMass.ks[4].l1Share, 1, 'k = d_ff holds all the mass', 1e-9);
      assert.equal(l.overlap.pairs, 64 * 31);
      assert.equal(l.controller, null);
      // Near zero includes exact zeros: at least 1 - nonzero.
      assert.ok(l.nearZero.thresholds[0].fraction >= 1 - f.mean - 1e-12);
    }
    // The same tokens through evaluate(): 8 batches of 8 sequences of 32.
    const ck = loadCheckpoint(dir);
    const ev = await evaluate(makeConfig(ck.config), ck.params, loadTokenizer(ck.tokenizer), [samplePath('validation')], { batchSize: 8, maxTokens: 2048 });
    assert.equal(ev.tokens, 2048);
    for (const l of a.layers) close(l.nonzero.fraction.mean, ev.sparsity[l.layer], `${l.layer} vs evaluate()`, 1e-6);

    const text = sparselm(['analyze', '--model', dir, '--tokens', '100']); // the bundled validation sample by default
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /tokens 96 \(3 sequences of 32\)/);
    assert.match(text.stdout, /note: 100 tokens is not a multiple of the sequence length 32/);
    for (const title of ['nonzero activations per token', 'near-zero activations', 'neuron firing frequency', 'top-k entries', 'active-set overlap']) {
      assert.match(text.stdout, new RegExp(`${title}[^\\n]*\\nlayer[^\\n]*\\nblk\\.0 [^\\n]*\\nblk\\.1 `), title);
    }
  });

  it('a Sparse FF model: controller statistics, at most one active neuron per block', async () => {
    const config = tinyConfig({ ffn: 'sparse' });
    const params = initParameters(config, new Rng(3));
    const r = await analyzeModel(config, params, tok, [samplePath('validation')], { tokens: 256, batchSize: 4 });
    assert.equal(r.tokens, 256);
    for (const l of r.layers) {
      const c = l.controller;
      assert.ok(c !== null);
      assert.equal(c.tokens, 256);
      assert.deepEqual([c.blocks, c.blockSize], [128 / 8, 8]);
      assert.ok(c.meanNormEntropy > 0 && c.meanNormEntropy <= 1 && c.minNormEntropy <= c.meanNormEntropy);
      assert.ok(c.meanMaxShare >= 1 / 8 && c.meanMaxShare <= c.maxMaxShare && c.maxMaxShare <= 1);
      assert.ok(l.nonzero.fraction.max <= 1 / 8, `${l.layer}: ${l.nonzero.fraction.max}`);
    }
  });

  it('a GELU model gets the note (not an error); its nonzero fraction is near 1', async () => {
    const config = tinyConfig({ activation: 'gelu' });
    const dir = tmp();
    saveCheckpoint(dir, 0, { params: initParameters(config, new Rng(4)), config, tokenizer: tok.toJSON() });
    const r = sparselm(['analyze', '--model', dir, '--tokens', '64', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const a = JSON.parse(r.stdout) as AnalysisResult;
    assert.equal(a.exactZeros, false);
    assert.equal(a.notes.length, 1);
    assert.match(a.notes[0], /activation gelu is not ReLU-family/);
    for (const l of a.layers) assert.ok(l.nonzero.fraction.mean > 0.99);
    const text = sparselm(['analyze', '--model', dir, '--tokens', '64']);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^note: activation gelu is not ReLU-family/m);
  });

  it('bad inputs are one-line errors', () => {
    const config = tinyConfig({});
    const model = tmp();
    saveCheckpoint(model, 0, { params: initParameters(config, new Rng(5)), config, tokenizer: tok.toJSON() });
    const empty = tmp();
    const shortDir = tmp();
    const short = join(shortDir, 'short.txt');
    writeFileSync(short, 'too short');
    const noRun = join(tmp(), 'run');
    mkdirSync(noRun);
    const cases: [string[], RegExp][] = [
      [['--model', model, '--tokens', '31'], /^sparselm: analyze: tokens 31 is less than one sequence \(context_length 32 tokens\)/m],
      [['--model', model, '--tokens', '0'], /--tokens must be a positive integer, got '0'/],
      [['--model', model, '--data', empty], /^sparselm: packing: no documents in /m],
      [['--model', model, '--data', short], /^sparselm: packing: validation data in .* is shorter than one sequence of 33 tokens/m],
      [['--model', '/nonexistent/run'], /^sparselm: loadCheckpoint: \/nonexistent\/run does not exist/m],
      [['--model', noRun], /^sparselm: loadCheckpoint: .* is neither a checkpoint directory/m],
      [['--model', model, '--split-name', 'test'], /argument 'test' is invalid/],
    ];
    for (const [args, pattern] of cases) {
      const r = sparselm(['analyze', ...args]);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
    }
  });
});
