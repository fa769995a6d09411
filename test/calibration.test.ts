/**
 * Next-token calibration (src/analysis/calibration.ts, `sparselm analyze
 * --calibration --corrupt-inputs --save`):
 * - ECE of 6 predictions in 3 bins, equal width and equal mass, against
 *   numbers worked out by hand; softmax confidence, argmax ties and NLL of
 *   hand-made logits;
 * - perfectly calibrated synthetic data gives ECE within a derived bound, and
 *   miscalibrated data does not;
 * - input corruption: fraction 0 is the clean result, fraction f replaces a
 *   Binomial(n, f) count of positions (the scheme chosen; not exactly
 *   round(f·n)), independent of how the stream is cut into batches;
 * - end to end: a tiny trained model analysed with --calibration --save
 *   writes analysis.json and calibration.json, its NLL equals evaluate()'s
 *   loss, and `sparselm report` draws the firing-frequency and reliability
 *   figures from them.
 */

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CalibrationAccumulator, calibrateModel, corruptTokens, equalMassBins, equalWidthBins, type CalibrationResult,
} from '../src/analysis/calibration.js';
import type { AnalysisResult } from '../src/analysis/analyze.js';
import { samplePath } from '../src/data/documents.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { makeConfig } from '../src/models/config.js';
import { loadPreset, presetConfig } from '../src/models/presets.js';
import { uniform01 } from '../src/tensor/random.js';
import { train, type TrainSettings } from '../src/train/trainer.js';
import { evaluate } from '../src/train/evaluate.js';
import type { ReportJson } from '../src/report/report.js';

const MAIN = new URL('../src/cli/main.js', import.meta.url).pathname;
const tmp = () => mkdtempSync(join(tmpdir(), 'sparselm-calibration-'));
const close = (a: number, b: number, what: string, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${what}: got ${a}, expected ${b}`);

function sparselm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('ECE by hand', () => {
  // Sorted: conf 0.2 0.4 0.5 0.7 0.9 0.95, correct 0 1 0 1 1 0; given shuffled to exercise the sorting.
  const conf = [0.9, 0.2, 0.5, 0.95, 0.4, 0.7];
  const correct = [1, 0, 0, 0, 1, 1];

  it('3 equal-width bins', () => {
    // [0, 1/3): {0.2 ✗}             conf 0.2,          acc 0,   gap 0.2
    // [1/3, 2/3): {0.4 ✓, 0.5 ✗}    conf 0.45,         acc 1/2, gap 0.05
    // [2/3, 1]: {0.7 ✓, 0.9 ✓, 0.95 ✗} conf 2.55/3 = 0.85, acc 2/3, gap 0.85 − 2/3 = 11/60
    // ECE = (1·0.2 + 2·0.05 + 3·11/60) / 6 = 0.85 / 6
    const r = equalWidthBins(conf, correct, 3);
    assert.deepEqual(r.bins.map((b) => b.count), [1, 2, 3]);
    assert.deepEqual(r.bins.map((b) => [b.lo, b.hi]), [[0, 1 / 3], [1 / 3, 2 / 3], [2 / 3, 1]]);
    const want = [[0.2, 0], [0.45, 0.5], [0.85, 2 / 3]];
    r.bins.forEach((b, i) => { close(b.confidence ?? NaN, want[i][0], `conf ${i}`, 1e-15); close(b.accuracy ?? NaN, want[i][1], `acc ${i}`, 1e-15); });
    close(r.ece, 0.85 / 6, 'ECE', 1e-15);
  });

  it('3 equal-mass bins of 2', () => {
    // {0.2 ✗, 0.4 ✓}: conf 0.3, acc 1/2, gap 0.2; {0.5 ✗, 0.7 ✓}: conf 0.6, acc 1/2, gap 0.1;
    // {0.9 ✓, 0.95 ✗}: conf 0.925, acc 1/2, gap 0.425.  ECE = (0.2 + 0.1 + 0.425) / 3 = 0.725 / 3
    const r = equalMassBins(conf, correct, 3);
    assert.deepEqual(r.bins.map((b) => b.count), [2, 2, 2]);
    assert.deepEqual(r.bins.map((b) => [b.lo, b.hi]), [[0.2, 0.4], [0.5, 0.7], [0.9, 0.95]]);
    const want = [0.3, 0.6, 0.925];
    r.bins.forEach((b, i) => { close(b.confidence ?? NaN, want[i], `conf ${i}`, 1e-15); close(b.accuracy ?? NaN, 0.5, `acc ${i}`); });
    close(r.ece, 0.725 / 3, 'ECE', 1e-15);
  });

  it('edge cases: confidence 1 in the last bin, empty bins, uneven equal-mass sizes, bad input', () => {
    const w = equalWidthBins([1, 0], [1, 0], 4);
    assert.deepEqual(w.bins.map((b) => b.count), [1, 0, 0, 1]);
    assert.equal(w.bins[1].confidence, null);
    assert.equal(w.ece, 0);
    // 5 predictions in 3 equal-mass bins: ranks [0, 1), [1, 3), [3, 5).
    assert.deepEqual(equalMassBins([0.1, 0.2, 0.3, 0.4, 0.5], [0, 0, 0, 0, 0], 3).bins.map((b) => b.count), [1, 2, 2]);
    assert.equal(equalMassBins([], [], 15).ece, 0);
    assert.throws(() => equalWidthBins([1.5], [1], 3), /confidence 1.5 at 0 is not in \[0, 1\]/);
    assert.throws(() => equalMassBins([0.5], [1, 0], 3), /1 confidences but 2 correctness flags/);
  });

  it('confidence, argmax (ties: lowest id) and NLL from logits', () => {
    const acc = new CalibrationAccumulator(3);
    // Row 0: softmax [1/4, 1/2, 1/4], target 1: correct, conf 1/2, NLL ln 2.
    // Row 1: softmax [3/5, 1/5, 1/5], target 2: wrong, conf 3/5, NLL ln 5.
    // Row 2: all equal: argmax 0 = target, conf 1/3, NLL ln 3.
    acc.addLogits([0, Math.LN2, 0, Math.log(3), 0, 0, 5, 5, 5], [1, 2, 0], 3);
    const r = acc.result(1);
    assert.equal(r.tokens, 3);
    close(r.accuracy, 2 / 3, 'accuracy');
    close(r.meanConfidence, (1 / 2 + 3 / 5 + 1 / 3) / 3, 'mean confidence', 1e-15);
    close(r.nll, (Math.LN2 + Math.log(5) + Math.log(3)) / 3, 'NLL', 1e-15);
    close(r.ece, Math.abs(2 / 3 - r.meanConfidence), 'one bin: |accuracy − confidence|', 1e-15);
    assert.throws(() => acc.add(0.5, true, 1), /more than the 3 predictions reserved/);
  });
});

describe('ECE of synthetic data', () => {
  // n confidences c_i uniform in (0, 1); correct_i ~ Bernoulli(c_i) (perfectly calibrated).
  // Bins depend on the confidences only, so given them, acc_b − conf_b is a mean of n_b independent
  // zero-mean terms with variance ≤ 1/(4 n_b): E|acc_b − conf_b| ≤ 1/(2√n_b), and
  // E[ECE] ≤ Σ_b (n_b/n) / (2√n_b) = Σ_b √n_b / (2n) ≤ ½·√(B/n) (Cauchy–Schwarz), for either binning.
  // The tolerance is 3× that bound (seeds are fixed, so the test is deterministic).
  const n = 200_000;
  const B = 15;
  const tol = 3 * 0.5 * Math.sqrt(B / n); // 0.013
  const conf = Float64Array.from({ length: n }, (_, i) => uniform01(7, i, 0, true));
  const calibrated = Uint8Array.from(conf, (c, i) => (uniform01(7, i, 1, true) < c ? 1 : 0));
  // Control: correct with probability c², so E[ECE] → E|c − c²| = 1/6.
  const overconfident = Uint8Array.from(conf, (c, i) => (uniform01(7, i, 1, true) < c * c ? 1 : 0));

  it('perfectly calibrated: ECE ≈ 0 within ½·√(B/n)·3 for both binnings', () => {
    for (const f of [equalWidthBins, equalMassBins]) {
      const r = f(conf, calibrated, B);
      assert.ok(r.ece < tol, `${f.name}: ECE ${r.ece} ≥ ${tol}`);
      assert.equal(r.bins.reduce((s, b) => s + b.count, 0), n);
    }
  });

  it('overconfident: ECE near 1/6, far above the tolerance', () => {
    for (const f of [equalWidthBins, equalMassBins]) close(f(conf, overconfident, B).ece, 1 / 6, f.name, 0.01);
  });
});

describe('input corruption', () => {
  const V = 256;
  const base = Int32Array.from({ length: 10_000 }, (_, i) => (i * 37) % V);

  it('fraction 0 changes nothing; fraction f replaces a Binomial(n, f) count, the same however the stream is cut', () => {
    const zero = base.slice();
    assert.deepEqual(corruptTokens(zero, 0, 0, 1, V), { replaced: 0, changed: 0 });
    assert.deepEqual(zero, base);
    const f = 0.3;
    const whole = base.slice();
    const c = corruptTokens(whole, 0, f, 1, V);
    const n = base.length;
    const sigma = Math.sqrt(n * f * (1 - f)); // ≈ 46
    assert.ok(Math.abs(c.replaced - n * f) <= 4 * sigma, `replaced ${c.replaced} of ${n} at ${f}`);
    let diff = 0;
    for (let i = 0; i < n; i++) if (whole[i] !== base[i]) diff++;
    assert.equal(c.changed, diff, 'changed counts exactly the positions that differ');
    // A replacement draws the original id with probability 1/V: changed ≈ replaced·(1 − 1/V).
    assert.ok(c.changed <= c.replaced && c.replaced - c.changed <= c.replaced / V + 4 * Math.sqrt(c.replaced / V));
    const cut = base.slice();
    const a = corruptTokens(cut.subarray(0, 1234), 0, f, 1, V);
    const b = corruptTokens(cut.subarray(1234), 1234, f, 1, V);
    assert.deepEqual(cut, whole);
    assert.equal(a.replaced + b.replaced, c.replaced);
    assert.throws(() => corruptTokens(base.slice(), 0, 1.5, 1, V), /fraction must be in \[0, 1\]/);
  });
});

/** The `<path>` marks of every `<g class="mark-<kind> role-mark ...">` group (as in test/report.test.ts). */
function marks(svg: string, kind: 'symbol' | 'rect'): number {
  let n = 0;
  for (const g of svg.matchAll(new RegExp(`<g class="mark-${kind} role-mark[^"]*"[^>]*>(.*?)</g>`, 'g'))) n += [...g[1].matchAll(/<path[^>]*\/>/g)].length;
  return n;
}

// 200 steps (about 4 s): after 8 the model predicts near uniformly (every confidence ≈ 1/256, one bin);
// by 200 its confidences spread over several bins, so the reliability diagram has several points.
const STEPS = 200;

describe('calibration of a tiny trained model', () => {
  let dir = '';
  before(async () => {
    dir = tmp();
    const settings: TrainSettings = {
      data: [samplePath('train')], valData: [samplePath('validation')], steps: STEPS, batch: 4, accum: 1, optimizer: 'adamw', lr: 1e-2, schedule: 'cosine', warmup: 2,
      minLr: 0, weightDecay: 0.01, clip: 1, seed: 1, shuffleBuffer: 64, evalEvery: 0, evalTokens: 1024, checkpointEvery: STEPS, keep: 1, logEvery: 20,
      tokenizer: 'byte', device: 'cpu',
    };
    await train({ out: dir, settings, configFields: presetConfig(loadPreset('tiny'), { context_length: 32 }), resume: false, log: () => undefined });
  });

  it('NLL equals evaluate(); corruption fraction 0 equals clean inputs, 0.5 replaces a Binomial count', async () => {
    const ck = loadCheckpoint(dir);
    const config = makeConfig(ck.config);
    const tok = loadTokenizer(ck.tokenizer);
    const data = [samplePath('validation')];
    const clean = await calibrateModel(config, ck.params, tok, data, { tokens: 1024, batchSize: 8 });
    assert.equal(clean.tokens, 1024);
    assert.equal(clean.corrupt, null);
    const ev = await evaluate(config, ck.params, tok, data, { batchSize: 8, maxTokens: 1024 });
    assert.equal(ev.tokens, 1024);
    close(clean.nll, ev.loss, 'NLL vs evaluate() loss', 1e-5);
    assert.ok(clean.accuracy > 0 && clean.accuracy < 1 && clean.meanConfidence > 1 / 256);
    const zero = await calibrateModel(config, ck.params, tok, data, { tokens: 1024, batchSize: 3, corrupt: { fraction: 0, seed: 9 } });
    assert.deepEqual({ ...zero, corrupt: null }, clean, 'fraction 0 (and another batch size) gives the clean result');
    assert.deepEqual(zero.corrupt, { fraction: 0, seed: 9, replaced: 0, changed: 0 });
    const half = await calibrateModel(config, ck.params, tok, data, { tokens: 1024, batchSize: 8, corrupt: { fraction: 0.5, seed: 9 } });
    const c = half.corrupt;
    assert.ok(c !== null);
    assert.ok(Math.abs(c.replaced - 512) <= 4 * Math.sqrt(1024 * 0.25), `replaced ${c.replaced}`);
    assert.notEqual(half.nll, clean.nll);
    assert.ok(half.nll > clean.nll, `random inputs make prediction harder: ${half.nll} vs ${clean.nll}`);
  });

  it('analyze --calibration --save writes analysis.json and calibration.json; report draws both figures', () => {
    const r = sparselm(['analyze', '--model', dir, '--tokens', '1024', '--calibration', '--save']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /next-token calibration over 1,024 predictions\naccuracy [\d.]+%, mean confidence [\d.]+%, NLL [\d.]+ nats\/token, ECE [\d.]+ \(15 equal-width bins\), [\d.]+ \(15 equal-mass bins\)/);
    assert.match(r.stdout, /wrote .*analysis\.json, .*calibration\.json/);
    const analysis = JSON.parse(readFileSync(join(dir, 'analysis.json'), 'utf8')) as AnalysisResult & { step: number };
    const cal = JSON.parse(readFileSync(join(dir, 'calibration.json'), 'utf8')) as CalibrationResult & { step: number };
    assert.equal(analysis.step, STEPS);
    assert.equal(cal.step, STEPS);
    assert.equal(cal.tokens, 1024);
    assert.deepEqual(analysis.calibration?.equalMass, cal.equalMass);
    assert.equal(cal.bins.length, 15);
    assert.equal(cal.bins.reduce((s, b) => s + b.count, 0), 1024);
    assert.equal(cal.equalMass.bins.reduce((s, b) => s + b.count, 0), 1024);
    const ece = cal.bins.reduce((s, b) => s + (b.count === 0 ? 0 : (b.count / 1024) * Math.abs((b.accuracy ?? 0) - (b.confidence ?? 0))), 0);
    close(cal.ece, ece, 'ECE from the saved bins', 1e-12);

    const out = join(dir, 'report');
    const rep = sparselm(['report', dir, '--out', out]);
    assert.equal(rep.status, 0, rep.stderr);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as ReportJson;
    assert.deepEqual(report.runs[0].inputs, { analysis: true, sweep: false, calibration: true });
    const firing = report.figures.find((f) => f.id === 'firing-frequency');
    const calib = report.figures.find((f) => f.id === 'calibration');
    assert.ok(firing && calib, `figures: ${report.figures.map((f) => f.id).join(', ')}`);
    assert.equal(firing.rows.length, 2 * 20, 'two layers × 20 frequency bins');
    assert.equal(firing.rows.reduce((s, x) => s + Number(x.neurons), 0), 2 * 128, 'every neuron once per layer');
    assert.deepEqual([...new Set(firing.rows.map((x) => x.layer))], ['blk.0', 'blk.1']);
    const nonEmpty = cal.bins.filter((b) => b.count > 0);
    assert.ok(nonEmpty.length >= 3, `${nonEmpty.length} nonempty bins`);
    assert.equal(calib.rows.length, nonEmpty.length, 'one point per nonempty bin');
    assert.deepEqual(calib.rows.map((x) => x.accuracy), nonEmpty.map((b) => b.accuracy));
    const svg = (id: string) => readFileSync(join(out, `${id}.svg`), 'utf8');
    assert.equal(marks(svg('firing-frequency'), 'rect'), 40, 'one bar per layer and bin');
    assert.equal(marks(svg('calibration'), 'symbol'), nonEmpty.length, 'one point per nonempty bin');
    assert.ok(svg('calibration').includes(`confidence: ${String(nonEmpty[0].confidence).slice(0, 8)}`), 'the points carry the bin values');
    assert.ok(existsSync(join(out, 'calibration.png')) && existsSync(join(out, 'firing-frequency.png')));
  });

  it('--corrupt-inputs implies calibration and is recorded; bad fractions are one-line errors', () => {
    const r = sparselm(['analyze', '--model', dir, '--tokens', '256', '--corrupt-inputs', '0.25', '--corrupt-seed', '3', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const a = JSON.parse(r.stdout) as AnalysisResult;
    assert.equal(a.calibration?.tokens, 256);
    assert.equal(a.calibration.corrupt?.fraction, 0.25);
    assert.equal(a.calibration.corrupt.seed, 3);
    for (const bad of ['1.5', '-0.1', 'x']) {
      const e = sparselm(['analyze', '--model', dir, '--corrupt-inputs', bad]);
      assert.equal(e.status, 1);
      assert.match(e.stderr, /--corrupt-inputs must be a fraction in \[0, 1\]/);
    }
  });
});
