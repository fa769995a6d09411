/**
 * Neural-network functions, each a composite of the primitive ops (so each
 * is differentiable on every backend with no rule of its own). Shapes in
 * comments; `d` is the feature axis (last).
 */

import {
  add, div, erf, exp, gather, log, matmul, max, mean, mul, neg, pad, reshape, slice, sqrt, sub, sum, tanh,
  transpose, unsqueeze, where, sigmoid, relu, square, concat,
} from '../ops/index.js';
import { check, fmtShape } from '../tensor/errors.js';
import { tensor } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';

export { relu, sigmoid, tanh };

/** softmax along `axis`, stabilised by subtracting the (constant) max. */
export function softmax(x: Tensor, axis = -1): Tensor {
  const e = exp(sub(x, stopGradientMax(x, axis)));
  return div(e, sum(e, axis, true));
}

/** log softmax along `axis`: x - max - log Σ exp(x - max). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const shifted = sub(x, stopGradientMax(x, axis));
  return sub(shifted, log(sum(exp(shifted), axis, true)));
}

/**
 * The max used for stabilising softmax. Its gradient cancels exactly in
 * softmax and log-softmax, so it is taken as a constant: cheaper, and free of
 * the tie-splitting of max's own rule.
 */
function stopGradientMax(x: Tensor, axis: number): Tensor {
  return detach(max(x, axis, true));
}

/** The same values with no autograd history. */
export function detach(x: Tensor): Tensor {
  if (!x.requiresGrad && x.node === null) return x;
  const d = reshape(x, x.shape);
  d.node = null;
  d.requiresGrad = false;
  return d;
}

/**
 * Mean cross-entropy of logits [..., V] against int32 targets [...]:
 * mean over positions of -log softmax(logits)[target]. Returns a scalar.
 */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  check(targets.dtype === 'int32', 'crossEntropy', () => `targets must be int32, got ${targets.dtype}`);
  check(logits.rank === targets.rank + 1 && targets.shape.every((d, i) => d === logits.shape[i]), 'crossEntropy',
    () => `logits ${fmtShape(logits.shape)} need shape [...targets, V] for targets ${fmtShape(targets.shape)}`);
  const lp = logSoftmax(logits, -1);
  const picked = gather(lp, lp.rank - 1, unsqueeze(targets, -1)); // [..., 1]
  return neg(mean(picked));
}

/** LayerNorm over the last axis: (x - mean) / sqrt(var + eps) · weight + bias (biased variance). x [..., d]. */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  const mu = mean(x, -1, true);
  const xc = sub(x, mu);
  const variance = mean(square(xc), -1, true);
  let y = div(xc, sqrt(add(variance, eps)));
  if (weight) y = mul(y, weight);
  if (bias) y = add(y, bias);
  return y;
}

/** RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · weight (llama.cpp's form). x [..., d]. */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  const y = div(x, sqrt(add(mean(square(x), -1, true), eps)));
  return weight ? mul(y, weight) : y;
}

/** GELU, exact: x · Φ(x) = x/2 · (1 + erf(x/√2)). */
export function gelu(x: Tensor): Tensor {
  return mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1));
}

/** SiLU (swish): x · sigmoid(x). */
export function silu(x: Tensor): Tensor {
  return mul(x, sigmoid(x));
}

/**
 * Causal scaled dot-product attention. q [..., Tq, Dh], k and v [..., Tk, Dh];
 * query i sits at position i + (Tk - Tq), so it sees keys 0..i+(Tk-Tq) (with a
 * cache, Tq new queries follow Tk - Tq cached keys). Returns [..., Tq, Dh].
 */
export function causalAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  check(q.rank >= 2 && k.rank === q.rank && v.rank === q.rank, 'causalAttention',
    () => `q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} need equal ranks >= 2`);
  const Tq = q.shape[q.rank - 2];
  const Tk = k.shape[k.rank - 2];
  const Dh = q.shape[q.rank - 1];
  check(Tk >= Tq && k.shape[k.rank - 1] === Dh && v.shape[v.rank - 2] === Tk, 'causalAttention',
    () => `q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}: need Tk >= Tq, matching head size and key count`);
  const scores = mul(matmul(q, transpose(k)), 1 / Math.sqrt(Dh)); // [..., Tq, Tk]
  const allowed = causalMask(Tq, Tk, q);
  const masked = where(allowed, scores, -Infinity);
  return matmul(softmax(masked, -1), v);
}

/** int32 [Tq, Tk]: 1 where key j is visible to query i (j <= i + Tk - Tq). */
export function causalMask(Tq: number, Tk: number, like: Tensor): Tensor {
  const data = new Int32Array(Tq * Tk);
  for (let i = 0; i < Tq; i++) for (let j = 0; j <= i + Tk - Tq; j++) data[i * Tk + j] = 1;
  return tensor(data, [Tq, Tk], { device: like.backend });
}

/**
 * The Sparse QKV convolution (spec/layers.md §4) over (length, modules):
 * m [..., L, S, M], kernel [F_l, F_w, M, M'] (in channels, out channels),
 * bias [M'] -> [..., L, S, M']. The length axis is padded causally with
 * F_l - 1 rows in front (zeros, or `state` [..., F_l-1, S, M] carried from
 * earlier steps when decoding); the module axis with (F_w - 1)/2 zeros on each
 * side; then a VALID cross-correlation. Composed as Σ over kernel taps of a
 * shifted slice times that tap's [M, M'] matrix.
 */
export function convLM(m: Tensor, kernel: Tensor, bias: Tensor | null, state: Tensor | null = null): Tensor {
  const r = m.rank;
  check(r >= 3 && kernel.rank === 4, 'convLM', () => `m ${fmtShape(m.shape)} needs [..., L, S, M] and kernel ${fmtShape(kernel.shape)} [F_l, F_w, M, M']`);
  const [L, S, M] = m.shape.slice(r - 3);
  const [Fl, Fw, Mi, Mo] = kernel.shape;
  check(Mi === M && Fw % 2 === 1 && Fl >= 1, 'convLM',
    () => `kernel ${fmtShape(kernel.shape)} must be [F_l, F_w (odd), ${M}, M'] for m ${fmtShape(m.shape)}`);
  const lead = m.shape.slice(0, r - 3);
  let x: Tensor;
  if (state) {
    check(state.rank === r && state.shape[r - 3] === Fl - 1 && state.shape[r - 2] === S && state.shape[r - 1] === M, 'convLM',
      () => `state ${fmtShape(state.shape)} must be [..., ${Fl - 1}, ${S}, ${M}]`);
    x = concat([state, m], r - 3);
  } else {
    x = pad(m, m.shape.map((_, i): [number, number] => (i === r - 3 ? [Fl - 1, 0] : [0, 0])));
  }
  const half = (Fw - 1) / 2;
  x = pad(x, x.shape.map((_, i): [number, number] => (i === r - 2 ? [half, half] : [0, 0]))); // [..., L+Fl-1, S+Fw-1, M]
  let y: Tensor | null = null;
  for (let i = 0; i < Fl; i++) {
    for (let j = 0; j < Fw; j++) {
      const starts = x.shape.map((_, a) => (a === r - 3 ? i : a === r - 2 ? j : 0));
      const ends = x.shape.map((d, a) => (a === r - 3 ? i + L : a === r - 2 ? j + S : d));
      const tap = reshape(slice(kernel, [i, j, 0, 0], [i + 1, j + 1, M, Mo]), [M, Mo]);
      const term = matmul(slice(x, starts, ends), tap); // [..., L, S, M']
      y = y ? add(y, term) : term;
    }
  }
  const outShape = [...lead, L, S, Mo];
  return bias ? add(y as Tensor, bias) : reshape(y as Tensor, outShape);
}
