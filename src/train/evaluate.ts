/**
 * Held-out evaluation: mean next-token loss over a validation stream (one
 * unshuffled pass, or the first `maxTokens` target tokens), perplexity, and
 * bits per byte (total loss in bits over the UTF-8 bytes the evaluated
 * target tokens stand for; the end-of-document token counts as one byte, the
 * separator it replaces). Also the Lazy Neuron sparsity of every FF layer on
 * that data: the mean over tokens of the fraction of nonzero activations.
 */

import { noGrad } from '../autograd/node.js';
import { cast, gt, mean, mul } from '../ops/index.js';
import { validationBatches } from '../data/packing.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { crossEntropy } from '../nn/functional.js';
import type { ModelConfig } from '../models/config.js';
import type { Params } from '../models/layers.js';
import { forward } from '../models/transformer.js';
import { SparselmError } from '../tensor/errors.js';
import type { Tensor } from '../tensor/tensor.js';

export interface EvalResult {
  loss: number;
  perplexity: number;
  bitsPerByte: number;
  tokens: number;
  bytes: number;
  /** Per FF layer (`blk.i`): mean fraction of nonzero activations per token. */
  sparsity: Record<string, number>;
}

/** The number of text bytes each token id stands for (eos: 1), computed once per tokenizer. */
const byteTables = new WeakMap<Tokenizer, Int32Array>();
export function tokenByteLengths(tok: Tokenizer): Int32Array {
  let table = byteTables.get(tok);
  if (!table) {
    table = new Int32Array(tok.vocabSize);
    for (let id = 0; id < tok.vocabSize; id++) table[id] = id === tok.eos ? 1 : tok.tokenBytes(id).length;
    byteTables.set(tok, table);
  }
  return table;
}

/** Records `blk.i.ffn_act` activation sparsity into sums (fraction nonzero averaged over tokens). */
export function sparsityObserver(sums: Map<string, { total: number; tokens: number }>): (name: string, value: Tensor) => void {
  return (name, value) => {
    if (!name.endsWith('.ffn_act')) return;
    const layer = name.slice(0, -'.ffn_act'.length);
    const tokens = value.size / value.shape[value.rank - 1];
    const frac = noGrad(() => mean(cast(gt(value, 0), value.dtype)).item());
    const s = sums.get(layer) ?? { total: 0, tokens: 0 };
    s.total += frac * tokens;
    s.tokens += tokens;
    sums.set(layer, s);
  };
}

export function sparsityOf(sums: Map<string, { total: number; tokens: number }>): Record<string, number> {
  return Object.fromEntries([...sums].map(([k, v]) => [k, v.total / v.tokens]));
}

export async function evaluate(config: ModelConfig, params: Params, tokenizer: Tokenizer, paths: readonly string[],
  opts: { batchSize: number; maxTokens?: number; device?: string }): Promise<EvalResult> {
  const bytesOf = tokenByteLengths(tokenizer);
  let nats = 0;
  let tokens = 0;
  let bytes = 0;
  const sums = new Map<string, { total: number; tokens: number }>();
  const observe = sparsityObserver(sums);
  for await (const batch of validationBatches({ paths, tokenizer, batchSize: opts.batchSize, seqLen: config.context_length, device: opts.device })) {
    const n = batch.targets.size;
    nats += noGrad(() => mul(crossEntropy(forward(config, params, batch.inputs, { mode: 'eval', observe }), batch.targets), n).item());
    tokens += n;
    for (const id of batch.targets.toArray()) bytes += bytesOf[id];
    if (opts.maxTokens !== undefined && tokens >= opts.maxTokens) break;
  }
  if (tokens === 0) throw new SparselmError(`eval: no complete sequence of ${config.context_length + 1} tokens in ${paths.join(', ')}`);
  const loss = nats / tokens;
  return { loss, perplexity: Math.exp(loss), bitsPerByte: nats / Math.LN2 / bytes, tokens, bytes, sparsity: sparsityOf(sums) };
}
