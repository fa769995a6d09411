/**
 * Building blocks shared by the model's layer kinds, composed from ops:
 * the multiplicative (factored dense) layer, rotary position embedding,
 * dropout and the noise a Sparse FF layer draws in training.
 */

import { add, div, lt, matmul, mul, permute, reshape, unsqueeze, where, log, neg } from '../ops/index.js';
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
 * adjacent pair (2i, 2i+1) at position p rotates by θ = p·base^(-2i/hd):
 * (a, b) -> (a·cos θ - b·sin θ, a·sin θ + b·cos θ).
 * Written as x ⊙ cos + (x·R) ⊙ sin, where R maps each pair (a, b) to (-b, a):
 * two elementwise products and one small matmul, with no size-1 axes.
 * x [..., T, hd]; positions start at `offset` (tokens already in the cache).
 */
export function rope(x: Tensor, offset: number, base: number): Tensor {
  const T = x.shape[x.rank - 2];
  const hd = x.shape[x.rank - 1];
  const cosData = new Float64Array(T * hd);
  const sinData = new Float64Array(T * hd);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < hd / 2; i++) {
      const angle = (offset + t) * Math.pow(base, (-2 * i) / hd);
      cosData[t * hd + 2 * i] = cosData[t * hd + 2 * i + 1] = Math.cos(angle);
      sinData[t * hd + 2 * i] = sinData[t * hd + 2 * i + 1] = Math.sin(angle);
    }
  }
  const rot = new Float64Array(hd * hd); // R [hd, hd]: (x·R)[2i] = -x[2i+1], (x·R)[2i+1] = x[2i]
  for (let i = 0; i < hd / 2; i++) {
    rot[(2 * i + 1) * hd + 2 * i] = -1;
    rot[2 * i * hd + 2 * i + 1] = 1;
  }
  const opts = { dtype: x.dtype, device: x.backend };
  const cos = tensor(cosData, [T, hd], opts);
  const sin = tensor(sinData, [T, hd], opts);
  return add(mul(x, cos), mul(matmul(x, tensor(rot, [hd, hd], opts)), sin));
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

