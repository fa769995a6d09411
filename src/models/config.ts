/**
 * The model configuration: one flat, typed, validated record. Flat so that
 * every field is one CLI flag (`d_ff` is `--d-ff`) and one key of a
 * checkpoint's config.json. Derived values (head size, blocks, modules) are
 * computed by `derived()`, never stored.
 *
 * Layer kinds follow ../shared/spec/layers.md: feed-forward dense (relu, gelu,
 * swiglu), topk (Lazy Neuron Top-k), sparse (Scaling Transformers Sparse FF,
 * 1-in-N with a low-rank controller); attention dense (multi-head, optional
 * grouped-query) or sparse (Sparse QKV: multiplicative layer + convolutions);
 * output dense (tied or untied) or sparse (the factored loss layer).
 */

import { SparselmError } from '../tensor/errors.js';

export const CONFIG_VERSION = 1;

export type FfnKind = 'dense' | 'topk' | 'sparse';
export type Activation = 'relu' | 'gelu' | 'swiglu';
export type AttnKind = 'dense' | 'sparse';
export type QkvOutput = 'none' | 'mult' | 'conv' | 'multconv';
export type OutputKind = 'dense' | 'sparse';
export type NormKind = 'layernorm' | 'rmsnorm';
export type PositionKind = 'rope' | 'learned';

export interface ModelConfig {
  version: number;
  vocab_size: number;
  context_length: number;
  d_model: number;
  n_layers: number;
  n_heads: number;
  /** Key/value heads (grouped-query attention when fewer than n_heads). */
  n_kv_heads: number;
  norm: NormKind;
  norm_eps: number;
  positions: PositionKind;
  rope_base: number;
  dropout: number;

  ffn: FfnKind;
  d_ff: number;
  /** dense FF: relu, gelu or swiglu. topk and sparse FF are ReLU by definition. */
  activation: Activation;
  /** Biases b1, b2 in dense and topk FF. */
  ffn_bias: boolean;
  /** topk FF: kept activations per token, one value for all layers or one per layer. */
  topk_k: number | number[];
  /** sparse FF: neurons per block (one active per block). */
  sparse_block: number;
  /** sparse FF: controller rank r. */
  sparse_lowrank: number;
  /** sparse FF: Gumbel temperature tau in training (0: plain argmax). */
  sparse_temperature: number;
  /** sparse FF: probability of the hard (one-hot, straight-through) mask in a training call. */
  sparse_quant_prob: number;
  /** sparse FF: scale the active neuron by the controller's probability. */
  sparse_multiply_by_controller: boolean;
  /** sparse FF: a bias on the first layer (trax has none; the paper's formula does). */
  sparse_first_bias: boolean;

  attn: AttnKind;
  /** Sparse QKV: modules S of the multiplicative layer (module size d_model / S). */
  qkv_modules: number;
  /** Sparse QKV: convolution length F_l (kernel width over modules: 3 for Q and K, 1 for V). */
  qkv_conv_length: number;
  qkv_output: QkvOutput;

  output: OutputKind;
  /** dense output: share the token embedding matrix. */
  tied_output: boolean;
  /** sparse output: modules S_loss of the factored output layer. */
  loss_modules: number;
}

export const DEFAULT_CONFIG: ModelConfig = {
  version: CONFIG_VERSION,
  vocab_size: 256,
  context_length: 256,
  d_model: 128,
  n_layers: 4,
  n_heads: 4,
  n_kv_heads: 4,
  norm: 'layernorm',
  norm_eps: 1e-5,
  positions: 'rope',
  rope_base: 10000,
  dropout: 0,
  ffn: 'dense',
  d_ff: 512,
  activation: 'relu',
  ffn_bias: true,
  topk_k: 32,
  sparse_block: 32,
  sparse_lowrank: 16,
  sparse_temperature: 0.1,
  sparse_quant_prob: 0.3,
  sparse_multiply_by_controller: false,
  sparse_first_bias: false,
  attn: 'dense',
  qkv_modules: 4,
  qkv_conv_length: 3,
  qkv_output: 'none',
  output: 'dense',
  tied_output: true,
  loss_modules: 4,
};

const ENUMS: Partial<Record<keyof ModelConfig, readonly string[]>> = {
  norm: ['layernorm', 'rmsnorm'],
  positions: ['rope', 'learned'],
  ffn: ['dense', 'topk', 'sparse'],
  activation: ['relu', 'gelu', 'swiglu'],
  attn: ['dense', 'sparse'],
  qkv_output: ['none', 'mult', 'conv', 'multconv'],
  output: ['dense', 'sparse'],
};

export interface Derived {
  head_dim: number;
  /** Sparse FF blocks B = d_ff / N. */
  sparse_blocks: number;
  /** Sparse QKV module size M = d_model / S. */
  qkv_module_size: number;
  /** top-k k for each layer. */
  topk_per_layer: number[];
}

export function derived(c: ModelConfig): Derived {
  return {
    head_dim: c.d_model / c.n_heads,
    sparse_blocks: c.d_ff / c.sparse_block,
    qkv_module_size: c.d_model / c.qkv_modules,
    topk_per_layer: Array.isArray(c.topk_k) ? c.topk_k : new Array<number>(c.n_layers).fill(c.topk_k),
  };
}

function fail(field: string, message: string): never {
  throw new SparselmError(`config: ${field}: ${message}`);
}

/**
 * A complete config from defaults and overrides, checked: unknown keys, wrong
 * types, values out of range and sizes that do not divide are errors naming
 * the field.
 */
export function makeConfig(overrides: Record<string, unknown> = {}, base: ModelConfig = DEFAULT_CONFIG): ModelConfig {
  const c: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(overrides)) {
    if (!(k in DEFAULT_CONFIG)) fail(k, `unknown field (known: ${Object.keys(DEFAULT_CONFIG).join(', ')})`);
    c[k] = v;
  }
  for (const [k, def] of Object.entries(DEFAULT_CONFIG)) {
    const v = c[k];
    if (k === 'topk_k') {
      if (!(typeof v === 'number' || (Array.isArray(v) && v.every((x) => typeof x === 'number')))) fail(k, 'must be a number or an array of numbers');
    } else if (typeof v !== typeof def) {
      fail(k, `must be a ${typeof def}, got ${JSON.stringify(v)}`);
    }
    const allowed = ENUMS[k as keyof ModelConfig];
    if (allowed && !allowed.includes(v as string)) fail(k, `must be one of ${allowed.join(', ')}, got '${String(v)}'`);
  }
  const cfg = c as unknown as ModelConfig;
  validate(cfg);
  return cfg;
}

function positiveInt(field: keyof ModelConfig, v: number): void {
  if (!Number.isInteger(v) || v <= 0) fail(field, `must be a positive integer, got ${v}`);
}

export function validate(c: ModelConfig): void {
  if (c.version !== CONFIG_VERSION) fail('version', `this sparselm reads config version ${CONFIG_VERSION}, got ${c.version}`);
  for (const f of ['vocab_size', 'context_length', 'd_model', 'n_layers', 'n_heads', 'n_kv_heads', 'd_ff', 'sparse_block', 'sparse_lowrank', 'qkv_modules', 'qkv_conv_length', 'loss_modules'] as const) {
    positiveInt(f, c[f]);
  }
  if (c.d_model % c.n_heads !== 0) fail('n_heads', `d_model ${c.d_model} is not a multiple of n_heads ${c.n_heads}`);
  if (c.n_heads % c.n_kv_heads !== 0) fail('n_kv_heads', `n_heads ${c.n_heads} is not a multiple of n_kv_heads ${c.n_kv_heads}`);
  if (c.positions === 'rope' && (c.d_model / c.n_heads) % 2 !== 0) fail('positions', `rope needs an even head size, got ${c.d_model / c.n_heads}`);
  if (!(c.norm_eps > 0)) fail('norm_eps', `must be positive, got ${c.norm_eps}`);
  if (!(c.rope_base > 1)) fail('rope_base', `must be above 1, got ${c.rope_base}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) fail('dropout', `must be in [0, 1), got ${c.dropout}`);
  if (c.ffn === 'sparse') {
    if (c.d_ff % c.sparse_block !== 0) fail('d_ff', `d_ff ${c.d_ff} is not a multiple of sparse_block ${c.sparse_block}`);
    if (!(c.sparse_temperature >= 0)) fail('sparse_temperature', `must be >= 0, got ${c.sparse_temperature}`);
    if (!(c.sparse_quant_prob >= 0 && c.sparse_quant_prob <= 1)) fail('sparse_quant_prob', `must be in [0, 1], got ${c.sparse_quant_prob}`);
  }
  if (c.ffn === 'topk') {
    const ks = Array.isArray(c.topk_k) ? c.topk_k : [c.topk_k];
    if (Array.isArray(c.topk_k) && c.topk_k.length !== c.n_layers) fail('topk_k', `has ${c.topk_k.length} entries for ${c.n_layers} layers`);
    for (const k of ks) if (!Number.isInteger(k) || k < 1 || k > c.d_ff) fail('topk_k', `each k must be an integer in 1..d_ff (${c.d_ff}), got ${k}`);
  }
  if (c.ffn !== 'dense' && c.activation !== 'relu') fail('activation', `${c.ffn} FF is ReLU by definition; got '${c.activation}'`);
  if (c.attn === 'sparse') {
    if (c.d_model % c.qkv_modules !== 0) fail('qkv_modules', `d_model ${c.d_model} is not a multiple of qkv_modules ${c.qkv_modules}`);
    if (c.n_kv_heads !== c.n_heads) fail('n_kv_heads', 'Sparse QKV has no grouped-query form: n_kv_heads must equal n_heads');
  }
  if (c.output === 'sparse' && c.vocab_size % c.loss_modules !== 0) fail('loss_modules', `vocab_size ${c.vocab_size} is not a multiple of loss_modules ${c.loss_modules}`);
}
