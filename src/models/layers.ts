/**
 * The model's layer kinds as functions of (parameters, input): feed-forward
 * (dense, Top-k, Sparse FF) and attention (dense multi-head with
 * grouped-query option, Sparse QKV), following docs/model.md exactly.
 *
 * Every layer reports its internals to named observation points
 * (`blk.{i}.ffn_act`, ...) through `ctx.observe`, so analysis can watch
 * activations without touching this code.
 */

import {
  add, concat, exp, expand, matmul, mul, oneHot, permute, relu, reshape, scatterAdd, slice, sub, topk,
} from '../ops/index.js';
import { causalAttention, convLM, detach, gelu, logSoftmax, silu, softmax } from '../nn/functional.js';
import { factoredDense, rope, type SparseNoise } from '../nn/layers.js';
import { zeros } from '../tensor/create.js';
import { derived, type ModelConfig } from './config.js';
import type { Tensor } from '../tensor/tensor.js';

export type Params = Readonly<Record<string, Tensor>>;
export type Mode = 'train' | 'eval';
export type Observer = (name: string, value: Tensor) => void;

/** What one layer call needs besides its input. */
export interface LayerContext {
  readonly config: ModelConfig;
  readonly params: Params;
  readonly layer: number;
  readonly mode: Mode;
  readonly noise: SparseNoise | null;
  readonly observe: Observer | null;
}

/** Per-layer decoding state: keys and values so far, and the convolution's last F_l-1 input rows. */
export interface LayerCache {
  k: Tensor | null;        // [B, Hkv, T_past, hd]
  v: Tensor | null;        // [B, Hkv, T_past, hd]
  qkvConv: Tensor | null;  // [B, F_l-1, S, M]: the multiplicative layer's output rows (Sparse QKV)
  outConv: Tensor | null;  // [B, F_l-1, S, M]: the output convolution's input rows (qkv_output conv, multconv)
}

export function emptyLayerCache(): LayerCache {
  return { k: null, v: null, qkvConv: null, outConv: null };
}

function p(ctx: LayerContext, name: string): Tensor {
  const t = ctx.params[`blk.${ctx.layer}.${name}`];
  if (!t) throw new Error(`model: missing parameter blk.${ctx.layer}.${name}`);
  return t;
}

function maybe(ctx: LayerContext, name: string): Tensor | null {
  return ctx.params[`blk.${ctx.layer}.${name}`] ?? null;
}

/** [..., 1] -> [...] */
function squeezeLast(t: Tensor): Tensor {
  return reshape(t, t.shape.slice(0, -1));
}

function observe(ctx: LayerContext, point: string, value: Tensor): void {
  ctx.observe?.(`blk.${ctx.layer}.${point}`, value);
}

// ---------------------------------------------------------------- feed-forward

/** x [B, T, d] -> [B, T, d]. Observation points: ffn_pre (pre-activation), ffn_act (what multiplies W2), ffn_ctrl (Sparse FF logits). */
export function feedForward(ctx: LayerContext, x: Tensor): Tensor {
  const c = ctx.config;
  if (c.ffn === 'dense' && c.activation === 'swiglu') {
    const gate = matmul(x, p(ctx, 'ffn.w_gate'));
    observe(ctx, 'ffn_pre', gate);
    const h = mul(silu(gate), matmul(x, p(ctx, 'ffn.w_up')));
    observe(ctx, 'ffn_act', h);
    return matmul(h, p(ctx, 'ffn.w_down'));
  }
  if (c.ffn === 'sparse') return sparseFeedForward(ctx, x);
  const b1 = maybe(ctx, 'ffn.b1');
  const b2 = maybe(ctx, 'ffn.b2');
  let pre = matmul(x, p(ctx, 'ffn.w1'));
  if (b1) pre = add(pre, b1);
  observe(ctx, 'ffn_pre', pre);
  let h = c.activation === 'gelu' ? gelu(pre) : relu(pre);
  if (c.ffn === 'topk') {
    // Keep the k largest activations per token; gradient flows through the kept ones only.
    const [values, indices] = topk(h, derived(c).topk_per_layer[ctx.layer]);
    h = scatterAdd(values, h.rank - 1, indices, h.shape);
  }
  observe(ctx, 'ffn_act', h);
  const y = matmul(h, p(ctx, 'ffn.w2'));
  return b2 ? add(y, b2) : y;
}

/**
 * Sparse FF (spec §3): a low-rank controller picks one neuron per block of N.
 * Training: Gumbel-max choice, straight-through hard mask with probability
 * quant_prob, else the soft mask p. Evaluation: argmax of the logits.
 */
function sparseFeedForward(ctx: LayerContext, x: Tensor): Tensor {
  const c = ctx.config;
  const N = c.sparse_block;
  const nb = c.d_ff / N;
  const blocks = (t: Tensor) => reshape(t, [...t.shape.slice(0, -1), nb, N]); // [..., d_ff] -> [..., nb, N]
  const logits = blocks(add(matmul(matmul(x, p(ctx, 'ffn.c1')), p(ctx, 'ffn.c2')), p(ctx, 'ffn.c_bias')));
  observe(ctx, 'ffn_ctrl', logits);
  let q: Tensor;
  let scale: Tensor | null = null;
  if (ctx.mode === 'train') {
    if (!ctx.noise) throw new Error('model: training-mode Sparse FF needs a noise source');
    const logp = logSoftmax(logits, -1);
    const prob = exp(logp);
    const tau = c.sparse_temperature;
    const scores = tau > 0 ? add(logp, mul(ctx.noise.gumbel(ctx.layer, logits.shape, logits), tau)) : logp;
    const choice = squeezeLast(topk(scores, 1)[1]); // [..., nb]
    const hard = add(oneHot(choice, N, prob.dtype), sub(prob, detach(prob))); // forward one-hot, gradient through p
    const useHard = ctx.noise.uniform(ctx.layer) < c.sparse_quant_prob;
    q = useHard ? hard : prob;
    if (c.sparse_multiply_by_controller) scale = useHard ? detach(prob) : prob;
  } else {
    const choice = squeezeLast(topk(logits, 1)[1]);
    q = oneHot(choice, N, logits.dtype);
    if (c.sparse_multiply_by_controller) scale = softmax(logits, -1);
  }
  let z = matmul(x, p(ctx, 'ffn.w1'));
  const b1 = maybe(ctx, 'ffn.b1');
  if (b1) z = add(z, b1);
  let h = relu(mul(blocks(z), q)); // [..., nb, N]
  if (scale) h = mul(h, scale);
  const act = reshape(h, [...x.shape.slice(0, -1), c.d_ff]);
  observe(ctx, 'ffn_act', act);
  return add(matmul(act, p(ctx, 'ffn.w2')), p(ctx, 'ffn.b2'));
}

// ---------------------------------------------------------------- attention

/** [B, T, n·hd] -> [B, n, T, hd] */
function splitHeads(t: Tensor, n: number): Tensor {
  const [B, T, w] = t.shape;
  return permute(reshape(t, [B, T, n, w / n]), [0, 2, 1, 3]);
}

/** [B, n, T, hd] -> [B, T, n·hd] */
function mergeHeads(t: Tensor): Tensor {
  const [B, n, T, hd] = t.shape;
  return reshape(permute(t, [0, 2, 1, 3]), [B, T, n * hd]);
}

/** Appends new rows to a cached tensor along `axis` (or starts it). */
function appendRows(cached: Tensor | null, rows: Tensor, axis: number): Tensor {
  return cached ? concat([cached, rows], axis) : rows;
}

/** The last n rows along axis 1 of [B, L, ...]. */
function lastRows(t: Tensor, n: number): Tensor {
  const L = t.shape[1];
  return slice(t, t.shape.map((_, i) => (i === 1 ? L - n : 0)), [...t.shape]);
}

/**
 * A causal convolution over (length, modules) that carries its state: the
 * input rows m [B, T, S, M] are preceded by `state` (the previous F_l-1 rows;
 * zeros at the start). Returns the output and the new state.
 */
function convWithState(m: Tensor, kernel: Tensor, bias: Tensor, state: Tensor | null, useState: boolean): { y: Tensor; state: Tensor | null } {
  const Fl = kernel.shape[0];
  if (!useState) return { y: convLM(m, kernel, bias), state: null };
  const [B, , S, M] = m.shape;
  const prev = state ?? zeros([B, Fl - 1, S, M], { dtype: m.dtype, device: m.backend });
  const y = convLM(m, kernel, bias, prev);
  return { y, state: lastRows(concat([prev, m], 1), Fl - 1) };
}

/** x [B, T, d] -> [B, T, d]; with a cache, T new tokens follow cache's tokens (positions offset by `past`). */
export function attention(ctx: LayerContext, x: Tensor, cache: LayerCache | null, past: number): Tensor {
  const c = ctx.config;
  const H = c.n_heads;
  let q: Tensor;
  let k: Tensor;
  let v: Tensor;
  if (c.attn === 'dense') {
    q = splitHeads(matmul(x, p(ctx, 'attn.wq')), H);
    k = splitHeads(matmul(x, p(ctx, 'attn.wk')), c.n_kv_heads);
    v = splitHeads(matmul(x, p(ctx, 'attn.wv')), c.n_kv_heads);
  } else {
    const [B, T, d] = x.shape;
    const S = c.qkv_modules;
    const m = reshape(factoredDense(x, p(ctx, 'attn.mult.D'), p(ctx, 'attn.mult.E'), p(ctx, 'attn.mult.beta')), [B, T, S, d / S]);
    const useState = cache !== null;
    const prev = cache?.qkvConv ?? null;
    const conv = (name: string) => convWithState(m, p(ctx, `attn.${name}.kernel`), p(ctx, `attn.${name}.bias`), prev, useState);
    const cq = conv('conv_q');
    q = splitHeads(reshape(cq.y, [B, T, d]), H);
    k = splitHeads(reshape(conv('conv_k').y, [B, T, d]), H);
    v = splitHeads(reshape(conv('conv_v').y, [B, T, d]), H);
    if (cache) cache.qkvConv = cq.state;
  }
  if (c.positions === 'rope') {
    q = rope(q, past, c.rope_base);
    k = rope(k, past, c.rope_base);
  }
  if (cache) {
    k = cache.k = appendRows(cache.k, k, 2);
    v = cache.v = appendRows(cache.v, v, 2);
  }
  const group = H / (c.attn === 'dense' ? c.n_kv_heads : H);
  if (group > 1) {
    // Grouped-query: query head j reads key/value head floor(j / group).
    const widen = (t: Tensor) => {
      const [B, hk, T, hd] = t.shape;
      return reshape(expand(reshape(t, [B, hk, 1, T, hd]), [B, hk, group, T, hd]), [B, hk * group, T, hd]);
    };
    k = widen(k);
    v = widen(v);
  }
  const attended = mergeHeads(causalAttention(q, k, v)); // [B, T, d]
  observe(ctx, 'attn_out', attended);
  if (c.attn === 'dense') return matmul(attended, p(ctx, 'attn.wo'));
  return sparseQkvOutput(ctx, attended, cache);
}

function sparseQkvOutput(ctx: LayerContext, a: Tensor, cache: LayerCache | null): Tensor {
  const c = ctx.config;
  const [B, T, d] = a.shape;
  const S = c.qkv_modules;
  let y = a;
  if (c.qkv_output === 'mult' || c.qkv_output === 'multconv') {
    y = factoredDense(y, p(ctx, 'attn.out_mult.D'), p(ctx, 'attn.out_mult.E'), p(ctx, 'attn.out_mult.beta'));
  }
  if (c.qkv_output === 'conv' || c.qkv_output === 'multconv') {
    const m = reshape(y, [B, T, S, d / S]);
    const r = convWithState(m, p(ctx, 'attn.out_conv.kernel'), p(ctx, 'attn.out_conv.bias'), cache?.outConv ?? null, cache !== null);
    if (cache) cache.outConv = r.state;
    y = reshape(r.y, [B, T, d]);
  }
  return y;
}
