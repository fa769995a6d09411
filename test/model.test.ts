/**
 * The language model's layer kinds and their equivalences (spec/layers.md):
 * - full causal sequence vs token-by-token evaluation with caches (KV cache,
 *   the convolutions' F_l-1 rows), for every attention, FF and output kind;
 * - Top-k with k = d_ff equals dense ReLU;
 * - Sparse FF evaluation equals "only the argmax neuron of each block is
 *   active", computed here by plain loops;
 * - gradients by finite differences (float64) for every layer kind, Sparse FF
 *   in its soft form and its hard straight-through form with a fixed draw.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as S from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { makeConfig, type ModelConfig } from '../src/models/config.js';
import { initParameters } from '../src/models/params.js';
import { emptyCache, forward, checkParameters } from '../src/models/transformer.js';
import { feedForward, type LayerContext } from '../src/models/layers.js';
import type { SparseNoise } from '../src/nn/layers.js';
import { assertClose, gradCheck } from './helpers.js';

const TINY = {
  vocab_size: 12, context_length: 16, d_model: 8, n_layers: 2, n_heads: 2, n_kv_heads: 2, d_ff: 16,
  sparse_block: 4, sparse_lowrank: 3, qkv_modules: 2, loss_modules: 4, topk_k: 5,
};

const KINDS: Record<string, Record<string, unknown>> = {
  'dense relu, rope, tied': {},
  'dense gelu, learned positions, untied': { activation: 'gelu', positions: 'learned', tied_output: false },
  'llama: swiglu, rmsnorm, grouped-query': { activation: 'swiglu', norm: 'rmsnorm', ffn_bias: false, n_heads: 4, n_kv_heads: 2 },
  'top-k': { ffn: 'topk' },
  'sparse FF': { ffn: 'sparse' },
  'sparse FF, multiply by controller, first bias': { ffn: 'sparse', sparse_multiply_by_controller: true, sparse_first_bias: true },
  'sparse QKV, no output layer': { attn: 'sparse' },
  'sparse QKV, mult output': { attn: 'sparse', qkv_output: 'mult' },
  'sparse QKV, conv output': { attn: 'sparse', qkv_output: 'conv' },
  'sparse QKV, multconv output, F_l 2': { attn: 'sparse', qkv_output: 'multconv', qkv_conv_length: 2 },
  'sparse loss layer': { output: 'sparse' },
  'terraformer-like: sparse FF + QKV + loss': { ffn: 'sparse', attn: 'sparse', output: 'sparse' },
};

function model(overrides: Record<string, unknown>, seed = 1): { config: ModelConfig; params: Record<string, Tensor> } {
  const config = makeConfig({ ...TINY, ...overrides });
  // Larger init than training uses, so every path carries signal the tests can see.
  const params = initParameters(config, new S.Rng(seed), { device: 'ref', dtype: 'float64' });
  for (const [k, v] of Object.entries(params)) params[k] = S.tensor(Float64Array.from(v.toArray(), (x) => (k.endsWith('.D') ? x : x * 10)), v.shape, { dtype: 'float64', device: 'ref', requiresGrad: true });
  return { config, params };
}

const tokens = (ids: number[]) => S.tensor(Int32Array.from(ids), [1, ids.length], { device: 'ref' });

describe('model: cached token-by-token evaluation equals the full sequence', () => {
  for (const [name, overrides] of Object.entries(KINDS)) {
    it(name, () => {
      const { config, params } = model(overrides);
      checkParameters(config, params);
      const ids = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5];
      const full = S.noGrad(() => forward(config, params, tokens(ids), { mode: 'eval' }));
      const cache = emptyCache(config);
      // A prefill chunk of 4, then one token at a time.
      const parts = [S.noGrad(() => forward(config, params, tokens(ids.slice(0, 4)), { mode: 'eval', cache }))];
      for (let t = 4; t < ids.length; t++) parts.push(S.noGrad(() => forward(config, params, tokens([ids[t]]), { mode: 'eval', cache })));
      assert.equal(cache.length, ids.length);
      assertClose(S.concat(parts, 1), full, 1e-12, 1e-12, name);
    });
  }
});

describe('model: dense equivalences', () => {
  it('top-k with k = d_ff equals dense ReLU', () => {
    const dense = model({});
    const topk = makeConfig({ ...TINY, ffn: 'topk', topk_k: TINY.d_ff });
    const ids = tokens([1, 2, 3, 4, 5]);
    assertClose(forward(topk, dense.params, ids, { mode: 'eval' }), forward(dense.config, dense.params, ids, { mode: 'eval' }), 0, 0, 'topk = dense');
  });

  it('Sparse FF evaluation equals "only the argmax neuron of each block is active"', () => {
    const { config, params } = model({ ffn: 'sparse' });
    const x = S.tensor(Float64Array.from({ length: 3 * 8 }, (_, i) => Math.sin(i * 1.7)), [1, 3, 8], { dtype: 'float64', device: 'ref' });
    const ctx: LayerContext = { config, params, layer: 1, mode: 'eval', noise: null, observe: null };
    const got = feedForward(ctx, x).toArray();
    const get = (n: string) => Array.from(params[`blk.1.ffn.${n}`].toArray());
    const [c1, c2, cb, w1, w2, b2] = ['c1', 'c2', 'c_bias', 'w1', 'w2', 'b2'].map(get);
    const { d_model: d, d_ff: dff, sparse_block: N, sparse_lowrank: r } = config;
    const xs = Array.from(x.toArray());
    for (let t = 0; t < 3; t++) {
      const row = xs.slice(t * d, (t + 1) * d);
      const low = Array.from({ length: r }, (_, j) => row.reduce((s, v, i) => s + v * c1[i * r + j], 0));
      const logits = Array.from({ length: dff }, (_, u) => cb[u] + low.reduce((s, v, j) => s + v * c2[j * dff + u], 0));
      const y = Array.from(b2);
      for (let b = 0; b < dff / N; b++) {
        let best = b * N;
        for (let u = b * N; u < (b + 1) * N; u++) if (logits[u] > logits[best]) best = u;
        const act = Math.max(0, row.reduce((s, v, i) => s + v * w1[i * dff + best], 0));
        for (let o = 0; o < d; o++) y[o] += act * w2[best * d + o];
      }
      assertClose(got.slice(t * d, (t + 1) * d), y, 1e-12, 1e-12, `token ${t}`);
    }
  });
});

/** A fixed noise source: the same Gumbel draw and uniform for every call. */
function fixedNoise(gumbel: Tensor, u: number): SparseNoise {
  return { gumbel: () => gumbel, uniform: () => u };
}

describe('model: gradients by finite differences (float64)', () => {
  const small = { vocab_size: 8, d_model: 4, n_layers: 1, n_heads: 2, n_kv_heads: 2, d_ff: 8, sparse_block: 4, sparse_lowrank: 2, qkv_modules: 2, loss_modules: 2, topk_k: 3 };
  const layerCheck = (name: string, overrides: Record<string, unknown>, mode: 'train' | 'eval', noise: SparseNoise | null) => {
    const config = makeConfig({ ...TINY, ...small, ...overrides });
    const params = initParameters(config, new S.Rng(7), { device: 'ref', dtype: 'float64' });
    const names = Object.keys(params).filter((n) => n.startsWith('blk.0.ffn.'));
    const x = S.tensor(Float64Array.from({ length: 2 * 3 * 4 }, (_, i) => Math.cos(i * 2.3) * 2), [2, 3, 4], { dtype: 'float64', device: 'ref' });
    // Scale weights up so activations are O(1) and away from ReLU's kink.
    const inputs = [x, ...names.map((n) => S.mul(params[n], n.endsWith('c_bias') || n.endsWith('b1') || n.endsWith('b2') ? 1 : 20))];
    gradCheck(name, (xi, ...ws) => {
      const p: Record<string, Tensor> = {};
      names.forEach((n, i) => { p[n] = ws[i]; });
      return feedForward({ config, params: p, layer: 0, mode, noise, observe: null }, xi);
    }, inputs);
  };

  it('dense FF: relu, gelu, swiglu', () => {
    layerCheck('relu FF', {}, 'eval', null);
    layerCheck('gelu FF', { activation: 'gelu' }, 'eval', null);
    layerCheck('swiglu FF', { activation: 'swiglu', ffn_bias: false }, 'eval', null);
  });

  it('top-k FF (away from ties)', () => layerCheck('topk FF', { ffn: 'topk' }, 'eval', null));

  it('Sparse FF, soft mask in training', () => {
    const g = S.tensor(Float64Array.from({ length: 2 * 3 * 2 * 4 }, (_, i) => Math.sin(i * 0.9)), [2, 3, 2, 4], { dtype: 'float64', device: 'ref' });
    layerCheck('sparse FF soft', { ffn: 'sparse' }, 'train', fixedNoise(g, 0.9));
    layerCheck('sparse FF soft, multiply by controller', { ffn: 'sparse', sparse_multiply_by_controller: true, sparse_first_bias: true }, 'train', fixedNoise(g, 0.9));
  });

  it('whole models: attention kinds, positions, output layers', () => {
    for (const [name, overrides] of Object.entries({
      'dense attention, rope, tied': {},
      'grouped-query, learned positions, untied, rmsnorm': { n_heads: 2, n_kv_heads: 1, positions: 'learned', tied_output: false, norm: 'rmsnorm' },
      'sparse QKV with multconv output and sparse loss': { attn: 'sparse', qkv_output: 'multconv', output: 'sparse' },
      'sparse QKV with conv output': { attn: 'sparse', qkv_output: 'conv' },
    })) {
      const config = makeConfig({ ...TINY, ...small, vocab_size: 6, ...overrides });
      const params = initParameters(config, new S.Rng(3), { device: 'ref', dtype: 'float64' });
      const names = Object.keys(params);
      const ids = S.tensor(Int32Array.from([1, 4, 2, 5]), [1, 4], { device: 'ref' });
      gradCheck(name, (...ws) => {
        const p: Record<string, Tensor> = {};
        names.forEach((n, i) => { p[n] = ws[i]; });
        return forward(config, p, ids, { mode: 'eval' });
      }, names.map((n) => S.mul(params[n], n.endsWith('.D') || n.includes('norm') ? 1 : 10)));
    }
  });
});

describe('model: Sparse FF hard mask is straight-through', () => {
  it('forward is the one-hot choice; gradient equals the surrogate onehot(k0) + p(θ) - p(θ0) by finite differences', () => {
    const config = makeConfig({ ...TINY, vocab_size: 8, d_model: 4, n_layers: 1, d_ff: 8, sparse_block: 4, sparse_lowrank: 2, n_heads: 2, n_kv_heads: 2, ffn: 'sparse' });
    const params = initParameters(config, new S.Rng(11), { device: 'ref', dtype: 'float64' });
    const names = ['c1', 'c2', 'c_bias', 'w1', 'w2', 'b2'].map((n) => `blk.0.ffn.${n}`);
    const x = S.tensor(Float64Array.from({ length: 3 * 4 }, (_, i) => Math.cos(i * 2.3) * 2), [1, 3, 4], { dtype: 'float64', device: 'ref' });
    const g = S.tensor(Float64Array.from({ length: 3 * 2 * 4 }, (_, i) => Math.sin(i * 0.7)), [1, 3, 2, 4], { dtype: 'float64', device: 'ref' });
    const base = names.map((n) => S.mul(params[n], n.endsWith('b2') || n.endsWith('c_bias') ? 1 : 20));
    const layer = (ws: Tensor[], mode: 'train' | 'eval') => {
      const p: Record<string, Tensor> = {};
      names.forEach((n, i) => { p[n] = ws[i]; });
      return feedForward({ config, params: p, layer: 0, mode, noise: fixedNoise(g, 0.1), observe: null }, x);
    };
    // The choice k0 and the probabilities p(θ0) at the base point, by the model's own formula.
    const lowrank = (ws: Tensor[]) => S.reshape(S.add(S.matmul(S.matmul(x, ws[0]), ws[1]), ws[2]), [1, 3, 2, 4]);
    const p0 = S.noGrad(() => S.nn.softmax(lowrank(base), -1));
    const k0 = S.noGrad(() => S.topk(S.add(S.log(p0), S.mul(g, config.sparse_temperature)), 1)[1]);
    const onehot0 = S.oneHot(S.reshape(k0, [1, 3, 2]), 4, 'float64');
    // Surrogate: the same forward value at θ0, and an ordinary derivative equal to the straight-through
    // gradient: relu(z ⊙ onehot0) + [z ⊙ onehot0 > 0] ⊙ z ⊙ (p(θ) - p(θ0)). The mask is the convention
    // relu'(0) = 0 made explicit, so the finite differences never straddle a kink.
    const z0 = S.noGrad(() => S.reshape(S.matmul(x, base[3]), [1, 3, 2, 4]));
    const active = S.cast(S.gt(S.mul(z0, onehot0), 0), 'float64');
    const surrogate = (...ws: Tensor[]) => {
      const z = S.reshape(S.matmul(x, ws[3]), [1, 3, 2, 4]);
      const h = S.add(S.relu(S.mul(z, onehot0)), S.mul(active, S.mul(z, S.sub(S.nn.softmax(lowrank(ws), -1), p0))));
      return S.add(S.matmul(S.reshape(h, [1, 3, 8]), ws[4]), ws[5]);
    };
    assertClose(S.noGrad(() => layer(base, 'train')), S.noGrad(() => surrogate(...base)), 1e-12, 1e-12, 'forward at θ0');
    // The layer's analytic gradient must match the surrogate's finite differences.
    const leaves = base.map((t) => S.tensor(t.toArray(), t.shape, { dtype: 'float64', device: 'ref', requiresGrad: true }));
    const R = S.tensor(Float64Array.from({ length: 12 }, (_, i) => Math.cos(i)), [1, 3, 4], { dtype: 'float64', device: 'ref' });
    const grads = S.gradients(S.sum(S.mul(layer(leaves, 'train'), R)), leaves);
    const h = 1e-6;
    leaves.forEach((leaf, w) => {
      const data = leaf.toArray();
      const numeric = Array.from(data, (_, i) => {
        const at = (delta: number) => {
          const d = Float64Array.from(data);
          d[i] += delta;
          const ws = leaves.map((t, j) => (j === w ? S.tensor(d, t.shape, { dtype: 'float64', device: 'ref' }) : t));
          return S.noGrad(() => S.sum(S.mul(surrogate(...ws), R)).item());
        };
        return (at(h) - at(-h)) / (2 * h);
      });
      assertClose(grads[w], numeric, 1e-5, 1e-6, `d/d ${names[w]}`);
    });
    assert.ok(Array.from(grads[0].toArray()).reduce((s, v) => s + Math.abs(v), 0) > 1e-6, 'the controller gets a gradient through p');
  });
});
