/**
 * Corrupted training data (the Lazy Neuron paper's noisy-label, random-label
 * and random-input experiments; src/data/packing.ts, src/train/trainer.ts):
 * - the fraction of targets changed by label noise p is within a binomial
 *   tolerance of p·(1 − 1/V) (a replacement may draw the original id), and the
 *   inputs are untouched; random labels / random inputs change every target /
 *   input but for the 1/V chance draws, and leave the other side clean;
 * - no corruption (p = 0, flags off) gives batches and loader states
 *   bit-identical to a loader without the option;
 * - the corruption is a property of the data and the seed: the same seed gives
 *   the same batches, another seed other noise, and another batch size the
 *   same corrupted token stream;
 * - a loader resumed from position() and a training run stopped and resumed
 *   see exactly the corrupted batches (and losses) of an uninterrupted one;
 * - bad values and meaningless combinations are clear errors.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { samplePath } from '../src/data/documents.js';
import { createLoader, type BatchLoader, type Corruption, type LoaderOptions } from '../src/data/packing.js';
import { ByteTokenizer } from '../src/data/tokenizer.js';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { loadPreset, presetConfig } from '../src/models/presets.js';
import { SparselmError } from '../src/tensor/errors.js';
import { train, type TrainSettings } from '../src/train/trainer.js';

const byte = new ByteTokenizer();
const V = byte.vocabSize;
const B = 8;
const T = 64;

function loaderOptions(extra: Partial<LoaderOptions> = {}): LoaderOptions {
  return { paths: [samplePath('train')], tokenizer: byte, batchSize: B, seqLen: T, seed: 5, shuffleBuffer: 32, ...extra };
}

/** The next n batches, inputs and targets each as one flat array (rows in order). */
async function draw(loader: BatchLoader, n: number): Promise<{ inputs: Int32Array; targets: Int32Array }> {
  const inputs: number[] = [];
  const targets: number[] = [];
  for (let i = 0; i < n; i++) {
    const b = await loader.next();
    inputs.push(...b.inputs.toArray());
    targets.push(...b.targets.toArray());
  }
  await loader.close();
  return { inputs: Int32Array.from(inputs), targets: Int32Array.from(targets) };
}

async function batches(corrupt: Corruption | undefined, n: number, extra: Partial<LoaderOptions> = {}) {
  return draw(await createLoader(loaderOptions({ ...extra, ...(corrupt ? { corrupt } : {}) })), n);
}

function changedFraction(a: Int32Array, b: Int32Array): number {
  assert.equal(a.length, b.length);
  let changed = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) changed++;
  return changed / a.length;
}

/** |observed − q| within 5 binomial standard deviations of n draws (false-failure rate under 1e-6). */
function assertBinomial(observed: number, q: number, n: number, what: string): void {
  const tol = 5 * Math.sqrt((q * (1 - q)) / n);
  assert.ok(Math.abs(observed - q) <= tol, `${what}: ${observed.toFixed(4)} changed, expected ${q.toFixed(4)} ± ${tol.toFixed(4)}`);
}

const none = (c: Partial<Corruption>): Corruption => ({ labelNoise: 0, randomLabels: false, randomInputs: false, ...c });
const N = 40; // batches: 40 · 8 · 64 = 20,480 tokens each side

describe('training-data corruption', () => {
  it('label noise p changes a binomial fraction p·(1 − 1/V) of targets and no input; random labels / inputs change one side', async () => {
    const clean = await batches(undefined, N);
    const n = clean.targets.length;
    for (const p of [0.1, 0.3]) {
      const noisy = await batches(none({ labelNoise: p }), N);
      assert.deepEqual(noisy.inputs, clean.inputs, `label noise ${p} leaves the inputs clean`);
      assertBinomial(changedFraction(noisy.targets, clean.targets), p * (1 - 1 / V), n, `label noise ${p}`);
    }
    const labels = await batches(none({ randomLabels: true }), N);
    assert.deepEqual(labels.inputs, clean.inputs);
    assertBinomial(changedFraction(labels.targets, clean.targets), 1 - 1 / V, n, 'random labels');
    const inputs = await batches(none({ randomInputs: true }), N);
    assert.deepEqual(inputs.targets, clean.targets, 'random inputs alone keep the real next tokens as targets');
    assertBinomial(changedFraction(inputs.inputs, clean.inputs), 1 - 1 / V, n, 'random inputs');
    // Replacements are uniform over the vocabulary: every id in range, and each id's count near n/V.
    const counts = new Float64Array(V);
    for (const id of labels.targets) {
      assert.ok(id >= 0 && id < V, `id ${id} outside [0, ${V})`);
      counts[id]++;
    }
    const chi2 = counts.reduce((s, c) => s + (c - n / V) ** 2 / (n / V), 0);
    // χ² with V − 1 = 256 degrees of freedom: mean 256, sd about 22.6; 400 is over 6 sd out.
    assert.ok(chi2 < 400, `random labels are not uniform over the ${V} ids: χ² = ${chi2.toFixed(1)}`);
  });

  it('no corruption is bit-identical to no option, batches and position()', async () => {
    const plain = await createLoader(loaderOptions());
    const off = await createLoader(loaderOptions({ corrupt: none({}) }));
    for (let i = 0; i < 6; i++) {
      const [a, b] = [await plain.next(), await off.next()];
      assert.deepEqual(b.inputs.toArray(), a.inputs.toArray());
      assert.deepEqual(b.targets.toArray(), a.targets.toArray());
      assert.deepEqual(off.position(), plain.position());
    }
    await plain.close();
    await off.close();
  });

  it('a function of the data and the seed: same seed same batches, another seed other noise, any batch size the same stream', async () => {
    const c = none({ labelNoise: 0.3, randomInputs: true });
    const a = await batches(c, 8);
    const again = await batches(c, 8);
    assert.deepEqual(again, a);
    const other = await batches(c, 8, { seed: 6 });
    assert.ok(changedFraction(other.inputs, a.inputs) > 0.9, 'another seed draws other random inputs');
    // Unshuffled, the stream of corrupted tokens does not depend on how it is cut into batches.
    const wide = await draw(await createLoader(loaderOptions({ corrupt: c, shuffleBuffer: 1, batchSize: 8 })), 4);
    const narrow = await draw(await createLoader(loaderOptions({ corrupt: c, shuffleBuffer: 1, batchSize: 4 })), 8);
    assert.deepEqual(narrow, wide);
  });

  it('a loader resumed from position() continues with the same corrupted batches; a state of other corruption is refused', async () => {
    const c = none({ randomLabels: true, randomInputs: true });
    const whole = await batches(c, 12);
    const first = await createLoader(loaderOptions({ corrupt: c }));
    for (let i = 0; i < 5; i++) await first.next(); // mid-block: 40 of 32-sequence blocks
    const state = JSON.parse(JSON.stringify(first.position())) as ReturnType<BatchLoader['position']>;
    await first.close();
    assert.deepEqual(state.corrupt, c, 'the state records the corruption');
    const rest = await draw(await createLoader(loaderOptions({ corrupt: c, resumeFrom: state })), 7);
    assert.deepEqual(rest.inputs, whole.inputs.subarray(5 * B * T));
    assert.deepEqual(rest.targets, whole.targets.subarray(5 * B * T));
    await assert.rejects(createLoader(loaderOptions({ resumeFrom: state })), /packing: resume: the state was made with corruption \{"labelNoise":0,"randomLabels":true,"randomInputs":true\}, this loader has \{"labelNoise":0,"randomLabels":false,"randomInputs":false\}/);
  });

  const settings = (overrides: Partial<TrainSettings> = {}): TrainSettings => ({
    data: [samplePath('train')], valData: [samplePath('validation')], steps: 8, batch: 4, accum: 2,
    optimizer: 'adamw', lr: 3e-3, schedule: 'cosine', warmup: 2, minLr: 0, weightDecay: 0.01, clip: 1, seed: 3,
    shuffleBuffer: 12, evalEvery: 0, evalTokens: 1024, checkpointEvery: 4, keep: 5, logEvery: 1, tokenizer: 'byte', device: 'cpu',
    ...overrides,
  });
  const fields = () => presetConfig(loadPreset('tiny'), { context_length: 32, ffn: 'topk', topk_k: 8 });
  const tmp = () => mkdtempSync(join(tmpdir(), 'sparselm-corrupt-'));

  it('a training run stopped and resumed gives the corrupted losses of an uninterrupted one; settings saved, logged; validation clean', async () => {
    const noisy = settings({ labelNoise: 0.3 });
    const lines: string[] = [];
    const whole = await train({ out: tmp(), settings: noisy, configFields: fields(), resume: false, log: (l) => lines.push(l) });
    assert.ok(lines.some((l) => /^training data corrupted: each target replaced with probability 0\.3 by a uniformly random token id; inputs clean/.test(l)), lines.join('\n'));
    const dir = tmp();
    const first = await train({ out: dir, settings: noisy, configFields: fields(), resume: false, log: () => undefined, stopAfter: 4 }); // 8 micro-batches of 4: mid-way through a 12-sequence shuffle block
    // Resumed with other settings passed in: the run keeps the corruption it was started with, and says so.
    const resumeLog: string[] = [];
    const second = await train({ out: dir, settings: settings({ randomInputs: true }), configFields: {}, resume: true, log: (l) => resumeLog.push(l) });
    assert.deepEqual([...first.losses, ...second.losses], whole.losses);
    assert.ok(resumeLog.includes('resume: the run keeps its own training-data corruption {"labelNoise":0.3,"randomLabels":false,"randomInputs":false}; '
      + 'the corruption asked for now {"labelNoise":0,"randomLabels":false,"randomInputs":true} is ignored'), resumeLog.join('\n'));
    assert.equal(second.finalValLoss, whole.finalValLoss);
    const saved = loadCheckpoint(dir).trainer as { settings: TrainSettings };
    assert.equal(saved.settings.labelNoise, 0.3);
    // The noise reaches training: the clean run's losses differ; validation is clean, so it is the same
    // function of the parameters (the same data, the same count of tokens) in both.
    const clean = await train({ out: tmp(), settings: settings(), configFields: fields(), resume: false, log: () => undefined });
    assert.notDeepEqual(clean.losses, whole.losses);
    assert.ok((whole.finalValLoss ?? 0) > 0 && (clean.finalValLoss ?? 0) > 0);
  });

  it('bad values and combinations are clear errors', async () => {
    for (const p of [-0.1, 1.5, Number.NaN]) {
      await assert.rejects(train({ out: tmp(), settings: settings({ labelNoise: p }), configFields: fields(), resume: false, log: () => undefined }),
        (e: unknown) => e instanceof SparselmError && e.message === `train: label noise must be a probability in [0, 1], got ${p}`);
      await assert.rejects(createLoader(loaderOptions({ corrupt: none({ labelNoise: p }) })),
        (e: unknown) => e instanceof SparselmError && e.message === `packing: corrupt: label noise must be a probability in [0, 1], got ${p}`);
    }
    await assert.rejects(train({ out: tmp(), settings: settings({ labelNoise: 0.1, randomLabels: true }), configFields: fields(), resume: false, log: () => undefined }),
      (e: unknown) => e instanceof SparselmError && e.message === 'train: label noise 0.1 and random labels cannot be combined: random labels already replace every target (they are label noise 1)');
  });
});
