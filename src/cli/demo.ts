/**
 * `sparselm demo`: the engine end to end on the bundled corpus sample.
 *
 * Trains a byte-level MLP language model (8 bytes of context, embeddings,
 * one ReLU hidden layer) with AdamW, showing progress; then reports the
 * validation loss in bits per byte, the fraction of hidden ReLU units that
 * are nonzero per token (the Lazy Neuron paper's sparsity metric), and
 * samples some text. Later issues grow this into a sparse Transformer LM.
 */

import { SingleBar } from 'cli-progress';
import {
  Rng, Tensor, add, backward, gt, indexSelect, matmul, mean, mul, noGrad, randn, relu, reshape, tensor, zeros,
  cast,
} from '../index.js';
import { crossEntropy, softmax } from '../nn/functional.js';
import { readDocuments, samplePath } from '../data/documents.js';
import { AdamW } from '../train/optim.js';
import { uniform01 } from '../tensor/random.js';

export interface DemoOptions { steps: number; batch: number; device: string; seed: number; sampleBytes: number }

const CONTEXT = 8;
const EMBED = 24;
const HIDDEN = 256;
const VOCAB = 256;

async function loadBytes(split: 'train' | 'validation'): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for await (const doc of readDocuments([samplePath(split)])) parts.push(Buffer.from(doc.text + '\n\n', 'utf8'));
  return new Uint8Array(Buffer.concat(parts));
}

interface Model { emb: Tensor; w1: Tensor; b1: Tensor; w2: Tensor; b2: Tensor }

function initModel(rng: Rng, device: string): Model {
  const param = (shape: number[], scale: number): Tensor => {
    const t = mul(randn(shape, rng, { device }), scale);
    return tensor(t.toArray(), shape, { device, requiresGrad: true });
  };
  return {
    emb: param([VOCAB, EMBED], 1),
    w1: param([CONTEXT * EMBED, HIDDEN], Math.sqrt(2 / (CONTEXT * EMBED))),
    b1: zeros([HIDDEN], { device, requiresGrad: true }),
    w2: param([HIDDEN, VOCAB], 1 / Math.sqrt(HIDDEN)),
    b2: zeros([VOCAB], { device, requiresGrad: true }),
  };
}

/** contexts [B, CONTEXT] int32 -> logits [B, VOCAB] and hidden activations [B, HIDDEN]. */
function forward(m: Model, contexts: Tensor): { logits: Tensor; hidden: Tensor } {
  const B = contexts.shape[0];
  const x = reshape(indexSelect(m.emb, 0, reshape(contexts, [B * CONTEXT])), [B, CONTEXT * EMBED]);
  const hidden = relu(add(matmul(x, m.w1), m.b1));
  return { logits: add(matmul(hidden, m.w2), m.b2), hidden };
}

/** A batch of random windows: contexts [B, CONTEXT] and next bytes [B]. */
function batchAt(data: Uint8Array, starts: number[], device: string): { x: Tensor; y: Tensor } {
  const x = new Int32Array(starts.length * CONTEXT);
  const y = new Int32Array(starts.length);
  starts.forEach((s, b) => {
    for (let j = 0; j < CONTEXT; j++) x[b * CONTEXT + j] = data[s + j];
    y[b] = data[s + CONTEXT];
  });
  return { x: tensor(x, [starts.length, CONTEXT], { device }), y: tensor(y, [starts.length], { device }) };
}

export async function runDemo(opts: DemoOptions, log: (line: string) => void = console.log): Promise<{ valBitsPerByte: number; nonzero: number }> {
  log(`sparselm demo: a byte-level MLP language model on the bundled corpus sample (device ${opts.device})`);
  const [train, valid] = await Promise.all([loadBytes('train'), loadBytes('validation')]);
  log(`data: ${train.length.toLocaleString()} training bytes, ${valid.length.toLocaleString()} validation bytes`);
  const rng = new Rng(opts.seed);
  const model = initModel(rng, opts.device);
  const params = Object.values(model);
  const opt = new AdamW(params, { lr: 3e-3, weightDecay: 0.01 });
  let counter = 0;
  const pick = (n: number): number[] => Array.from({ length: opts.batch }, () => Math.floor(uniform01(opts.seed + 1, counter++, 0, true) * (n - CONTEXT - 1)));

  const tty = process.stderr.isTTY === true;
  const bar = new SingleBar({
    format: 'train [{bar}] {value}/{total} steps | loss {loss} | {tps} tokens/s | {eta_formatted} left',
    hideCursor: true,
    stream: process.stderr,
  });
  if (tty) bar.start(opts.steps, 0, { loss: '-', tps: '-' });
  const t0 = performance.now();
  let smooth = NaN;
  for (let step = 1; step <= opts.steps; step++) {
    const { x, y } = batchAt(train, pick(train.length), opts.device);
    const loss = crossEntropy(forward(model, x).logits, y);
    backward(loss);
    opt.update();
    opt.zeroGrad();
    const l = loss.item();
    smooth = Number.isNaN(smooth) ? l : 0.95 * smooth + 0.05 * l;
    const tps = Math.round((step * opts.batch) / ((performance.now() - t0) / 1000));
    if (tty) bar.update(step, { loss: smooth.toFixed(3), tps: tps.toLocaleString() });
    else if (step % Math.max(1, Math.floor(opts.steps / 10)) === 0 || step === opts.steps) {
      const left = ((performance.now() - t0) / step) * (opts.steps - step) / 1000;
      log(`step ${step}/${opts.steps} | loss ${smooth.toFixed(3)} | ${tps.toLocaleString()} tokens/s | ${left.toFixed(0)} s left`);
    }
  }
  if (tty) bar.stop();

  // Validation: mean loss over fixed windows, and the sparsity of the hidden layer.
  const { valBitsPerByte, nonzero } = noGrad(() => {
    let total = 0;
    let active = 0;
    const chunks = 8;
    for (let c = 0; c < chunks; c++) {
      const starts = Array.from({ length: 512 }, (_, i) => Math.floor(((c * 512 + i) / (chunks * 512)) * (valid.length - CONTEXT - 1)));
      const { x, y } = batchAt(valid, starts, opts.device);
      const { logits, hidden } = forward(model, x);
      total += crossEntropy(logits, y).item();
      active += mean(cast(gt(hidden, 0), 'float32')).item();
    }
    return { valBitsPerByte: total / chunks / Math.LN2, nonzero: active / chunks };
  });
  log(`validation: ${valBitsPerByte.toFixed(3)} bits per byte (uniform: 8.000) | hidden ReLU units nonzero per token: ${(100 * nonzero).toFixed(1)}%`);

  // Sample text: temperature 0.8 from a prompt.
  const prompt = Buffer.from('The kernel ', 'utf8');
  const bytes = [...prompt];
  noGrad(() => {
    for (let i = 0; i < opts.sampleBytes; i++) {
      const ctx = tensor(Int32Array.from(bytes.slice(-CONTEXT)), [1, CONTEXT], { device: opts.device });
      const probs = softmax(mul(forward(model, ctx).logits, 1 / 0.8), -1).toArray();
      let u = uniform01(opts.seed + 2, i, 0, true);
      let next = VOCAB - 1;
      for (let v = 0; v < VOCAB; v++) { u -= probs[v]; if (u <= 0) { next = v; break; } }
      bytes.push(next);
    }
  });
  log('sample:\n' + Buffer.from(bytes).toString('utf8'));
  return { valBitsPerByte, nonzero };
}
