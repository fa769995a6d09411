/**
 * Text generation with the training graph's incremental evaluation (a KV and
 * convolution cache): prefill the prompt, then one token at a time. Slow and
 * simple; the fast batch-1 engine is src/decode. Streams each token's text
 * through `onText` as soon as it is complete UTF-8.
 */

import { noGrad } from '../autograd/node.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { Sampler } from '../decode/sampler.js';
import { tensor } from '../tensor/create.js';
import { SparselmError } from '../tensor/errors.js';
import type { ModelConfig } from './config.js';
import type { Params } from './layers.js';
import { emptyCache, forward, lastLogits } from './transformer.js';

export interface GenerateOptions { maxTokens: number; sampler: Sampler; device?: string; onText?: (text: string) => void; stopAtEos?: boolean }

export function generate(config: ModelConfig, params: Params, tokenizer: Tokenizer, prompt: string, opts: GenerateOptions): number[] {
  const ids = tokenizer.encode(prompt);
  if (ids.length === 0) throw new SparselmError('generate: the prompt is empty (it must encode to at least one token)');
  if (ids.length + opts.maxTokens > config.context_length) {
    throw new SparselmError(`generate: prompt (${ids.length} tokens) + max tokens (${opts.maxTokens}) exceed the context length ${config.context_length}`);
  }
  const cache = emptyCache(config);
  const out: number[] = [];
  const pending: number[] = [];
  const decoder = new TextDecoder('utf-8');
  return noGrad(() => {
    let logits = lastLogits(forward(config, params, tensor(Int32Array.from(ids), [1, ids.length], { device: opts.device }), { mode: 'eval', cache }));
    for (let i = 0; i < opts.maxTokens; i++) {
      const next = opts.sampler.sample(Float64Array.from(logits.toArray()), [...ids, ...out]);
      if (next === tokenizer.eos && opts.stopAtEos !== false) break;
      out.push(next);
      if (opts.onText) {
        pending.push(next);
        opts.onText(decoder.decode(tokenizer.tokenBytes(next), { stream: true }));
      }
      if (i + 1 < opts.maxTokens) logits = lastLogits(forward(config, params, tensor(Int32Array.of(next), [1, 1], { device: opts.device }), { mode: 'eval', cache }));
    }
    opts.onText?.(decoder.decode());
    return out;
  });
}
