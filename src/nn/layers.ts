/**
 * Building blocks shared by the model's layer kinds, composed from ops:
 * the multiplicative (factored dense) layer, rotary position embedding,
 * dropout and the noise a Sparse FF layer draws in training.
 */

import {
  add, div, lt, matmul, mul, permute, reshape, slice, sub, unsqueeze, concat, where, log, neg,
} from '../ops/index.js';
import { tensor, rand } from '../tensor/create.js';
import type { Rng } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * FactoredDense with S modules (Scaling Transformers' multiplicative layer):
 * x [..., d_in], D [d_in, S], E [d_in, M], beta [S·M] -> [..., S·M] with
 * out[.., s·M+t] = Σ_i x_i·D[i,s]·E[i,t] + beta[s·M+t].
 * Computed as (x ⊙ D[:,s]) · E for all s at once: [..., S, d_in] · [d_in, M].
 */
export function factoredDense(x: Tensor, D: Tensor, E: Tensor, beta: Tensor | null): Tensor {
  const S = D.shape[1];
  const M = E.shape[1];
  const scaled = mul(unsqueeze(x, -2), permute(D, [1, 0])); // [..., S, d_in]
  const m = matmul(scaled, E); // [..., S, M]
  const flat = reshape(m, [...x.shape.slice(0, -1), S * M]);
  return beta ? add(flat, beta) : flat;
}

/**
 * Rotary position embedding, llama.cpp's NORM form: within each head the
 * adjacent pair (2i, 2i+1) at position p rotates by p·base^(-2i/hd).
 * x [..., T, hd]; positions start at `offset` (tokens already in the cache).
 */
export function rope(x: Tensor, offset: number, base: number): Tensor {
  const T = x.shape[x.rank - 2];
  const hd = x.shape[x.rank - 1];
  const half = hd / 2;
  const cosData = new Float64Array(T * half);
  const sinData = new Float64Array(T * half);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = (offset + t) * Math.pow(base, (-2 * i) / hd);
      cosData[t * half + i] = Math.cos(angle);
      sinData[t * half + i] = Math.sin(angle);
    }
  }
  const opts = { dtype: x.dtype, device: x.backend };
  const cos = tensor(cosData, [T, half], opts);
  const sin = tensor(sinData, [T, half], opts);
  const pairs = reshape(x, [...x.shape.slice(0, -1), half, 2]); // [..., T, hd/2, 2]
  const lead = pairs.shape.slice(0, -1);
  const a = reshape(slice(pairs, lead.map(() => 0).concat([0]), [...lead, 1]), lead); // [..., T, hd/2]
  const b = reshape(slice(pairs, lead.map(() => 0).concat([1]), [...lead, 2]), lead);
  const ra = sub(mul(a, cos), mul(b, sin));
  const rb = add(mul(a, sin), mul(b, cos));
  return reshape(concat([unsqueeze(ra, -1), unsqueeze(rb, -1)], -1), x.shape);
}

/** Inverted dropout: zero each entry with probability p, scale the rest by 1/(1-p). */
export function dropout(x: Tensor, p: number, rng: Rng | null): Tensor {
  if (p === 0 || rng === null) return x;
  const keep = lt(rand(x.shape, rng, { dtype: x.dtype, device: x.backend }), 1 - p);
  return where(keep, div(x, 1 - p), 0);
}

/** Where a training-mode Sparse FF layer gets its randomness (a fixed source in tests). */
export interface SparseNoise {
  /** Gumbel noise of `shape` for layer `layer`. */
  gumbel(layer: number, shape: readonly number[], like: Tensor): Tensor;
  /** One uniform draw in [0, 1) per layer call: the hard mask is used when it is below quant_prob. */
  uniform(layer: number): number;
}

/** Noise from a seeded generator: g = -log(-log u), u ~ U(1e-6, 1-1e-6) (spec §3). */
export function rngNoise(rng: Rng): SparseNoise {
  return {
    gumbel(_layer, shape, like) {
      const u = rand(shape, rng, { dtype: like.dtype, device: like.backend });
      const clamped = add(mul(u, 1 - 2e-6), 1e-6);
      return neg(log(neg(log(clamped))));
    },
    uniform() {
      return rand([], rng, { dtype: 'float64', device: 'ref' }).item();
    },
  };
}

