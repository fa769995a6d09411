/**
 * `sparselm demo`: the main job on a bundled default. Trains a small Sparse FF
 * language model (byte-level, one neuron of every 16 active per token) on the
 * bundled corpus sample with progress, evaluates it on the held-out split,
 * shows how sparse its feed-forward activations are, and generates text.
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train } from '../train/trainer.js';
import { evaluate } from '../train/evaluate.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { samplePath } from '../data/documents.js';
import { makeConfig } from '../models/config.js';
import { generate } from '../models/generate.js';
import { Sampler } from '../decode/sampler.js';

export interface DemoOptions { steps: number; out?: string; seed: number; maxTokens: number }

export const DEMO_MODEL = {
  context_length: 96, d_model: 64, n_layers: 2, n_heads: 2, n_kv_heads: 2, d_ff: 256,
  ffn: 'sparse', sparse_block: 16, sparse_lowrank: 16, norm: 'layernorm', positions: 'rope',
};

export async function runDemo(opts: DemoOptions, log: (line: string) => void = (l) => process.stdout.write(l + '\n')): Promise<{ valLoss: number; bitsPerByte: number }> {
  const out = opts.out ?? mkdtempSync(join(tmpdir(), 'sparselm-demo-'));
  log(`sparselm demo: a small Sparse FF language model (1 of every 16 FF neurons active per token) on the bundled corpus sample`);
  log(`run directory: ${out}`);
  await train({
    out, resume: false, configFields: DEMO_MODEL,
    settings: {
      data: [samplePath('train')], valData: [samplePath('validation')], steps: opts.steps, batch: 8, accum: 1,
      optimizer: 'adamw', lr: 3e-3, schedule: 'cosine', warmup: Math.min(30, Math.floor(opts.steps / 5)), minLr: 3e-4,
      weightDecay: 0.01, clip: 1, seed: opts.seed, shuffleBuffer: 256, evalEvery: 0, evalTokens: 16384,
      checkpointEvery: opts.steps, keep: 1, logEvery: 10, tokenizer: 'byte', device: 'cpu',
    },
    log: (l) => { if (!l.startsWith('config:') && !l.startsWith('training:')) log(l); },
  });
  const ck = loadCheckpoint(out);
  const config = makeConfig(ck.config);
  const tokenizer = loadTokenizer(ck.tokenizer);
  const r = await evaluate(config, ck.params, tokenizer, [samplePath('validation')], { batchSize: 8, maxTokens: 32768 });
  log(`validation: loss ${r.loss.toFixed(3)} | ${r.bitsPerByte.toFixed(3)} bits per byte (uniform over bytes: 8.000)`);
  log(`nonzero FF activations per token: ${Object.entries(r.sparsity).map(([k, v]) => `${k} ${(100 * v).toFixed(2)}%`).join(', ')} (Sparse FF: at most 1/16 = 6.25%)`);
  log('sample (temperature 0.8, top-k 40):');
  const prompt = 'The kernel ';
  process.stdout.write(prompt);
  generate(config, ck.params, tokenizer, prompt, { maxTokens: opts.maxTokens, sampler: new Sampler({ temperature: 0.8, topK: 40, seed: opts.seed }), onText: (t) => process.stdout.write(t) });
  process.stdout.write('\n');
  return { valLoss: r.loss, bitsPerByte: r.bitsPerByte };
}
