/**
 * The model's parameters: every name and shape a config implies
 * (docs/model.md's table), and their initialisation.
 *
 * Init: matrices N(0, 0.02²) as in GPT-2, with the residual-stream output
 * projections (wo, w2, w_down) scaled by 1/sqrt(2·n_layers); embeddings
 * N(0, 0.02²); norm weights 1, biases 0. The factored (multiplicative) layers
 * use D ~ N(0, 1) and E ~ N(0, 1/d_in), so x·D·E has the variance of x, and the
 * Sparse QKV convolution kernels N(0, 1/(F_l·F_w·M)) for the same reason.
 */

import { derived, type ModelConfig } from './config.js';
import { tensor, randn } from '../tensor/create.js';
import type { Rng } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';

export type Init = { kind: 'normal'; std: number } | { kind: 'ones' } | { kind: 'zeros' };

export interface ParamSpec { shape: number[]; init: Init }

/** name -> shape and init, in a fixed order (the order of docs/model.md). */
export function parameterSpecs(c: ModelConfig): Map<string, ParamSpec> {
  const { head_dim: hd, qkv_module_size: M } = derived(c);
  const d = c.d_model;
  const specs = new Map<string, ParamSpec>();
  const normal = (shape: number[], std: number) => ({ shape, init: { kind: 'normal', std } as Init });
  const ones = (shape: number[]) => ({ shape, init: { kind: 'ones' } as Init });
  const zeros = (shape: number[]) => ({ shape, init: { kind: 'zeros' } as Init });
  const residual = 0.02 / Math.sqrt(2 * c.n_layers);
  const norm = (prefix: string) => {
    specs.set(`${prefix}.weight`, ones([d]));
    if (c.norm === 'layernorm') specs.set(`${prefix}.bias`, zeros([d]));
  };
  const factored = (prefix: string, dIn: number, S: number, Mo: number) => {
    specs.set(`${prefix}.D`, normal([dIn, S], 1));
    specs.set(`${prefix}.E`, normal([dIn, Mo], 1 / Math.sqrt(dIn)));
    specs.set(`${prefix}.beta`, zeros([S * Mo]));
  };
  const conv = (prefix: string, Fw: number) => {
    specs.set(`${prefix}.kernel`, normal([c.qkv_conv_length, Fw, M, M], 1 / Math.sqrt(c.qkv_conv_length * Fw * M)));
    specs.set(`${prefix}.bias`, zeros([M]));
  };

  specs.set('tok_emb.weight', normal([c.vocab_size, d], 0.02));
  if (c.positions === 'learned') specs.set('pos_emb.weight', normal([c.context_length, d], 0.02));
  for (let i = 0; i < c.n_layers; i++) {
    const b = `blk.${i}`;
    norm(`${b}.attn_norm`);
    if (c.attn === 'dense') {
      specs.set(`${b}.attn.wq`, normal([d, c.n_heads * hd], 0.02));
      specs.set(`${b}.attn.wk`, normal([d, c.n_kv_heads * hd], 0.02));
      specs.set(`${b}.attn.wv`, normal([d, c.n_kv_heads * hd], 0.02));
      specs.set(`${b}.attn.wo`, normal([c.n_heads * hd, d], residual));
    } else {
      factored(`${b}.attn.mult`, d, c.qkv_modules, M);
      conv(`${b}.attn.conv_q`, 3);
      conv(`${b}.attn.conv_k`, 3);
      conv(`${b}.attn.conv_v`, 1);
      if (c.qkv_output === 'mult' || c.qkv_output === 'multconv') factored(`${b}.attn.out_mult`, d, c.qkv_modules, M);
      if (c.qkv_output === 'conv' || c.qkv_output === 'multconv') conv(`${b}.attn.out_conv`, 3);
    }
    norm(`${b}.ffn_norm`);
    const f = `${b}.ffn`;
    if (c.ffn === 'dense' && c.activation === 'swiglu') {
      specs.set(`${f}.w_gate`, normal([d, c.d_ff], 0.02));
      specs.set(`${f}.w_up`, normal([d, c.d_ff], 0.02));
      specs.set(`${f}.w_down`, normal([c.d_ff, d], residual));
    } else if (c.ffn === 'sparse') {
      specs.set(`${f}.c1`, normal([d, c.sparse_lowrank], 1 / Math.sqrt(d)));
      specs.set(`${f}.c2`, normal([c.sparse_lowrank, c.d_ff], 1 / Math.sqrt(c.sparse_lowrank)));
      specs.set(`${f}.c_bias`, zeros([c.d_ff]));
      specs.set(`${f}.w1`, normal([d, c.d_ff], 0.02));
      if (c.sparse_first_bias) specs.set(`${f}.b1`, zeros([c.d_ff]));
      specs.set(`${f}.w2`, normal([c.d_ff, d], residual));
      specs.set(`${f}.b2`, zeros([d]));
    } else {
      specs.set(`${f}.w1`, normal([d, c.d_ff], 0.02));
      if (c.ffn_bias) specs.set(`${f}.b1`, zeros([c.d_ff]));
      specs.set(`${f}.w2`, normal([c.d_ff, d], residual));
      if (c.ffn_bias) specs.set(`${f}.b2`, zeros([d]));
    }
  }
  norm('out_norm');
  if (c.output === 'dense' && !c.tied_output) specs.set('output.weight', normal([d, c.vocab_size], 0.02));
  if (c.output === 'sparse') factored('output', d, c.loss_modules, c.vocab_size / c.loss_modules);
  return specs;
}

/** Fresh parameters: leaf tensors with requiresGrad, drawn from `rng` in spec order. */
export function initParameters(c: ModelConfig, rng: Rng, opts: { device?: string; dtype?: DType } = {}): Record<string, Tensor> {
  const device = opts.device ?? 'cpu';
  const dtype = opts.dtype ?? 'float32';
  const out: Record<string, Tensor> = {};
  for (const [name, spec] of parameterSpecs(c)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    let data: Float64Array;
    if (spec.init.kind === 'normal') {
      const std = spec.init.std;
      data = Float64Array.from(randn([n], rng, { dtype: 'float64', device: 'ref' }).toArray(), (v) => v * std);
    } else {
      data = new Float64Array(n).fill(spec.init.kind === 'ones' ? 1 : 0);
    }
    out[name] = tensor(data, spec.shape, { device, dtype, requiresGrad: true });
  }
  return out;
}

export function countParameters(c: ModelConfig): number {
  let n = 0;
  for (const spec of parameterSpecs(c).values()) n += spec.shape.reduce((a, b) => a * b, 1);
  return n;
}
