/**
 * The decoder-only language model: embeddings, pre-norm blocks
 * (attention, then feed-forward, each residual), final norm, output layer.
 * docs/model.md is its specification; every layer kind is in ./layers.ts.
 *
 * One forward function serves training (mode 'train': dropout, Sparse FF's
 * Gumbel noise), evaluation (mode 'eval') and incremental evaluation with a
 * cache (T new tokens after the cached ones), so the token-by-token path is
 * tested against the full-sequence path. The fast batch-1 decoder is a
 * separate engine (src/decode) checked against this one.
 */

import { add, indexSelect, matmul, reshape, slice, transpose } from '../ops/index.js';
import { crossEntropy, layerNorm, rmsNorm } from '../nn/functional.js';
import { dropout, factoredDense, rngNoise, type SparseNoise } from '../nn/layers.js';
import { arange } from '../tensor/create.js';
import { check, fmtShape } from '../tensor/errors.js';
import type { Rng } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelConfig } from './config.js';
import { attention, emptyLayerCache, feedForward, type LayerCache, type LayerContext, type Mode, type Observer, type Params } from './layers.js';
import { parameterSpecs } from './params.js';

export interface ForwardOptions {
  mode: Mode;
  /** Dropout masks and (unless `noise` is given) Sparse FF noise in training. */
  rng?: Rng;
  /** Sparse FF noise source for training (tests pass a fixed one). */
  noise?: SparseNoise;
  /** Incremental evaluation: the tokens continue the cached ones; the cache is updated. */
  cache?: ModelCache;
  /** Named observation points: called with e.g. ('blk.3.ffn_act', [B, T, d_ff]). */
  observe?: Observer;
}

export interface ModelCache { length: number; layers: LayerCache[] }

export function emptyCache(config: ModelConfig): ModelCache {
  return { length: 0, layers: Array.from({ length: config.n_layers }, emptyLayerCache) };
}

function norm(config: ModelConfig, params: Params, prefix: string, x: Tensor): Tensor {
  return config.norm === 'layernorm'
    ? layerNorm(x, params[`${prefix}.weight`], params[`${prefix}.bias`], config.norm_eps)
    : rmsNorm(x, params[`${prefix}.weight`], config.norm_eps);
}

/** Checks that params hold exactly the tensors the config implies, with their shapes. */
export function checkParameters(config: ModelConfig, params: Params): void {
  const specs = parameterSpecs(config);
  for (const [name, spec] of specs) {
    const t = params[name];
    check(t !== undefined, 'model', () => `missing parameter '${name}' (expected ${fmtShape(spec.shape)})`);
    check(t.shape.length === spec.shape.length && t.shape.every((d, i) => d === spec.shape[i]), 'model',
      () => `parameter '${name}' has shape ${fmtShape(t.shape)}, the config implies ${fmtShape(spec.shape)}`);
  }
  for (const name of Object.keys(params)) check(specs.has(name), 'model', () => `unexpected parameter '${name}' for this config`);
}

/** tokens [B, T] int32 -> logits [B, T, V]. */
export function forward(config: ModelConfig, params: Params, tokens: Tensor, opts: ForwardOptions): Tensor {
  check(tokens.dtype === 'int32' && tokens.rank === 2, 'model', () => `tokens must be int32 [B, T], got ${tokens.dtype} ${fmtShape(tokens.shape)}`);
  const [B, T] = tokens.shape;
  const past = opts.cache?.length ?? 0;
  check(past + T <= config.context_length, 'model',
    () => `${past + T} positions exceed context_length ${config.context_length}`);
  const train = opts.mode === 'train';
  const rng = train ? opts.rng ?? null : null;
  const noise = opts.noise ?? (train && opts.rng ? rngNoise(opts.rng) : null);

  let h = reshape(indexSelect(params['tok_emb.weight'], 0, reshape(tokens, [B * T])), [B, T, config.d_model]);
  if (config.positions === 'learned') {
    h = add(h, indexSelect(params['pos_emb.weight'], 0, arange(past, past + T, { device: tokens.backend })));
  }
  h = dropout(h, config.dropout, rng);
  for (let i = 0; i < config.n_layers; i++) {
    const ctx: LayerContext = { config, params, layer: i, mode: opts.mode, noise, observe: opts.observe ?? null };
    const cache = opts.cache?.layers[i] ?? null;
    h = add(h, dropout(attention(ctx, norm(config, params, `blk.${i}.attn_norm`, h), cache, past), config.dropout, rng));
    opts.observe?.(`blk.${i}.attn_residual`, h);
    h = add(h, dropout(feedForward(ctx, norm(config, params, `blk.${i}.ffn_norm`, h)), config.dropout, rng));
    opts.observe?.(`blk.${i}.residual`, h);
  }
  if (opts.cache) opts.cache.length = past + T;
  const x = norm(config, params, 'out_norm', h);
  if (config.output === 'sparse') return factoredDense(x, params['output.D'], params['output.E'], params['output.beta']);
  return matmul(x, config.tied_output ? transpose(params['tok_emb.weight']) : params['output.weight']);
}

/** Mean next-token cross-entropy: tokens [B, T], targets [B, T]. */
export function lossOf(config: ModelConfig, params: Params, tokens: Tensor, targets: Tensor, opts: ForwardOptions): Tensor {
  check(targets.dtype === 'int32' && targets.shape.every((d, i) => d === tokens.shape[i]), 'model',
    () => `targets ${fmtShape(targets.shape)} must be int32 with the shape of tokens ${fmtShape(tokens.shape)}`);
  return crossEntropy(forward(config, params, tokens, opts), targets);
}

/** The logits of the last position only, [B, V] (for sampling). */
export function lastLogits(logits: Tensor): Tensor {
  const [B, T, V] = logits.shape;
  return reshape(slice(logits, [0, T - 1, 0], [B, T, V]), [B, V]);
}
