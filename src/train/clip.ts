/**
 * Gradient hygiene before an optimizer step: global-norm clipping and the
 * finite check that stops a run on NaN/Inf.
 *
 *   norm = √(Σ_p Σ_j g_pj²)       over every parameter with a gradient, in float64
 *   if norm > maxNorm:  g ← g · maxNorm/norm   for every gradient
 *
 * Clipping replaces each `p.grad` with a new, scaled tensor; it never writes
 * into a gradient's buffer. Gradients are ordinary immutable tensors: one may
 * be a broadcast view (the gradient of a sum is an expanded scalar) or share
 * its buffer with another parameter's gradient, and scaling such a buffer in
 * place would scale the wrong elements, or the same ones twice. The cost is
 * one gradient-sized allocation per parameter, and only on steps that clip.
 *
 * A non-finite norm means some gradient holds NaN or Inf; clipping then
 * leaves the gradients alone (scaling by maxNorm/Inf would zero them, hiding
 * the problem) and returns the non-finite norm for the caller to act on, as
 * `gradsAreFinite` does directly.
 */

import { noGrad } from '../autograd/node.js';
import { mul } from '../ops/index.js';
import { check } from '../tensor/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { namedParams, readHost, type ParamList } from './optim.js';

/** [name, gradient] for each distinct parameter with a gradient (a parameter listed twice counts once). */
function grads(params: ParamList): [string, Tensor, Tensor][] {
  const seen = new Set<Tensor>();
  const out: [string, Tensor, Tensor][] = [];
  for (const [name, p] of namedParams(params)) {
    if (seen.has(p) || !p.grad) continue;
    seen.add(p);
    out.push([name, p.grad, p]);
  }
  return out;
}

/** The global L2 norm of all gradients (0 when there are none). */
export function gradNorm(params: ParamList): number {
  let ss = 0;
  for (const [, g] of grads(params)) {
    const d = readHost(g);
    for (let j = 0; j < d.length; j++) ss += d[j] * d[j];
  }
  return Math.sqrt(ss);
}

/**
 * Scales all gradients by one factor so that their global norm is at most
 * `maxNorm` (see the file comment). Returns the norm before clipping.
 */
export function clipGradNorm(params: ParamList, maxNorm: number): number {
  check(maxNorm > 0 && Number.isFinite(maxNorm), 'clipGradNorm', () => `maxNorm must be finite and > 0, got ${maxNorm}`);
  const norm = gradNorm(params);
  if (!Number.isFinite(norm) || norm <= maxNorm) return norm;
  const scale = maxNorm / norm;
  noGrad(() => {
    for (const [, g, p] of grads(params)) p.grad = mul(g, scale);
  });
  return norm;
}

/** Names of the parameters whose gradient holds a NaN or an infinity. */
export function nonFiniteGrads(params: ParamList): string[] {
  const bad: string[] = [];
  for (const [name, g] of grads(params)) {
    const d = readHost(g);
    for (let j = 0; j < d.length; j++) {
      if (!Number.isFinite(d[j])) { bad.push(name); break; }
    }
  }
  return bad;
}

/** False when any gradient holds a NaN or an infinity: the training loop should stop (or skip the step) rather than update. */
export function gradsAreFinite(params: ParamList): boolean {
  return nonFiniteGrads(params).length === 0;
}
