/**
 * Training end to end on the bundled sample with the tiny preset:
 * - the loss falls well below the unigram entropy of the data within a
 *   bounded number of steps;
 * - an interrupted run resumed from its checkpoint reproduces the
 *   uninterrupted loss curve exactly (CPU determinism);
 * - a diverging run stops with a clear error and keeps its last good checkpoint;
 * - bad settings fail before any work.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train, type TrainSettings } from '../src/train/trainer.js';
import { loadPreset, presetConfig } from '../src/models/presets.js';
import { samplePath, readDocuments } from '../src/data/documents.js';
import { listCheckpoints } from '../src/io/checkpoint.js';
import { SparselmError } from '../src/index.js';

const quiet = () => undefined;

function settings(overrides: Partial<TrainSettings> = {}): TrainSettings {
  return {
    data: [samplePath('train')], valData: [samplePath('validation')], steps: 12, batch: 4, accum: 1,
    optimizer: 'adamw', lr: 3e-3, schedule: 'cosine', warmup: 3, minLr: 0, weightDecay: 0.01, clip: 1, seed: 3,
    shuffleBuffer: 64, evalEvery: 0, evalTokens: 2048, checkpointEvery: 4, keep: 5, logEvery: 1, tokenizer: 'byte', device: 'cpu',
    ...overrides,
  };
}

const tinyFields = (extra: Record<string, unknown> = {}) => presetConfig(loadPreset('tiny'), { context_length: 32, ...extra });
const tmp = () => mkdtempSync(join(tmpdir(), 'sparselm-train-'));

/** Entropy (nats) of the byte distribution of the training sample. */
async function unigramNats(): Promise<number> {
  const counts = new Float64Array(257);
  let n = 0;
  for await (const d of readDocuments([samplePath('train')])) {
    for (const b of Buffer.from(d.text, 'utf8')) { counts[b]++; n++; }
    counts[256]++; n++;
  }
  return -counts.reduce((h, c) => (c > 0 ? h + (c / n) * Math.log(c / n) : h), 0);
}

describe('training', () => {
  it('a tiny Sparse FF model learns: validation loss well below the unigram entropy', async () => {
    const r = await train({ out: tmp(), settings: settings({ steps: 150, batch: 8, checkpointEvery: 150 }), configFields: tinyFields({ ffn: 'sparse' }), resume: false, log: quiet });
    const unigram = await unigramNats();
    assert.ok(r.finalValLoss !== null && r.finalValLoss < unigram - 0.4, `validation loss ${r.finalValLoss} vs unigram entropy ${unigram.toFixed(3)}`);
  });

  for (const [name, fields] of Object.entries({
    'dense': {},
    'Sparse FF + Sparse QKV + sparse loss, with dropout': { ffn: 'sparse', attn: 'sparse', output: 'sparse', dropout: 0.1 },
  })) {
    it(`resume reproduces the uninterrupted loss curve exactly (${name})`, async () => {
      const whole = await train({ out: tmp(), settings: settings(), configFields: tinyFields(fields), resume: false, log: quiet });
      const dir = tmp();
      const first = await train({ out: dir, settings: settings(), configFields: tinyFields(fields), resume: false, log: quiet, stopAfter: 8 });
      assert.equal(first.step, 8);
      const second = await train({ out: dir, settings: settings(), configFields: {}, resume: true, log: quiet });
      assert.deepEqual([...first.losses, ...second.losses], whole.losses);
      assert.equal(second.finalValLoss, whole.finalValLoss);
      // The metrics log holds each step once, as an uninterrupted run's would.
      const steps = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss?: number })
        .filter((m) => m.loss !== undefined).map((m) => m.step);
      assert.deepEqual(steps, Array.from({ length: 12 }, (_, i) => i + 1));
    });
  }

  it('a diverging run stops with a clear error and keeps the last good checkpoint', async () => {
    const dir = tmp();
    await assert.rejects(
      train({ out: dir, settings: settings({ lr: 1e30, clip: 0, steps: 40, checkpointEvery: 1 }), configFields: tinyFields(), resume: false, log: quiet }),
      (e: unknown) => e instanceof SparselmError && /^train: step \d+: (loss is (NaN|Infinity)|non-finite gradient in .*); stopping, the last good checkpoint is kept \(step \d+\)/.test(e.message),
    );
    const kept = listCheckpoints(join(dir, 'checkpoints'));
    assert.ok(kept.length > 0, 'checkpoints written before the divergence are kept');
    // Diverging before the first checkpoint says so instead of promising one.
    await assert.rejects(
      train({ out: tmp(), settings: settings({ lr: 1e30, clip: 0, steps: 40, checkpointEvery: 40 }), configFields: tinyFields(), resume: false, log: quiet }),
      /; stopping, no checkpoint was written yet\./,
    );
  });

  it('refuses to overwrite a run, to resume nothing, and bad configs', async () => {
    const dir = tmp();
    await train({ out: dir, settings: settings({ steps: 2, warmup: 0, checkpointEvery: 2 }), configFields: tinyFields(), resume: false, log: quiet });
    await assert.rejects(train({ out: dir, settings: settings(), configFields: tinyFields(), resume: false, log: quiet }), /already has checkpoints \(latest step 2\); pass --resume/);
    await assert.rejects(train({ out: tmp(), settings: settings(), configFields: tinyFields(), resume: true, log: quiet }), /--resume given but .* has no checkpoint/);
    await assert.rejects(train({ out: tmp(), settings: settings(), configFields: tinyFields({ ffn: 'sparse', d_ff: 100 }), resume: false, log: quiet }), /config: d_ff: d_ff 100 is not a multiple of sparse_block 8/);
    await assert.rejects(train({ out: tmp(), settings: settings({ steps: 2 }), configFields: tinyFields(), resume: false, log: quiet }), /makeSchedule: totalSteps must be an integer > warmupSteps \(3\), got 2/);
    await assert.rejects(train({ out: tmp(), settings: settings({ data: ['/nonexistent.json.gz'] }), configFields: tinyFields(), resume: false, log: quiet }), /cannot read '\/nonexistent.json.gz'/);
  });
});
