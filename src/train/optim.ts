/**
 * AdamW (Loshchilov & Hutter): Adam with decoupled weight decay.
 *
 *   m ← β1·m + (1-β1)·g          v ← β2·v + (1-β2)·g²
 *   p ← p - lr·( m̂ / (√v̂ + ε) + λ·p ),   m̂ = m/(1-β1^t), v̂ = v/(1-β2^t)
 *
 * Parameters are contiguous leaf tensors on a host backend; the optimizer
 * updates their buffers in place. This is the one sanctioned mutation of
 * tensor memory: an update must not allocate a model-sized tensor per step.
 * Moments are float64 arrays, so float32 parameters lose nothing in them.
 */

import type { HostBuffer } from '../backends/backend.js';
import { check } from '../tensor/errors.js';
import type { Tensor } from '../tensor/tensor.js';

export interface AdamWOptions { lr: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number }

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  lr: number;
  step = 0;
  private readonly m: Float64Array[];
  private readonly v: Float64Array[];

  constructor(readonly params: readonly Tensor[], opts: AdamWOptions) {
    for (const p of params) {
      check(p.backend.host && p.isContiguous && p.layout.offset === 0 && p.node === null && p.requiresGrad, 'AdamW',
        () => `parameter ${p.toString()} must be a contiguous host leaf with requiresGrad`);
    }
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.m = params.map((p) => new Float64Array(p.size));
    this.v = params.map((p) => new Float64Array(p.size));
  }

  /** Applies one update from each parameter's .grad (parameters without a gradient are left alone). */
  update(): void {
    this.step++;
    const c1 = 1 - this.beta1 ** this.step;
    const c2 = 1 - this.beta2 ** this.step;
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      const g = p.grad.toArray();
      const w = (p.buffer as HostBuffer).data;
      const [m, v] = [this.m[i], this.v[i]];
      for (let j = 0; j < w.length; j++) {
        m[j] = this.beta1 * m[j] + (1 - this.beta1) * g[j];
        v[j] = this.beta2 * v[j] + (1 - this.beta2) * g[j] * g[j];
        w[j] -= this.lr * (m[j] / c1 / (Math.sqrt(v[j] / c2) + this.eps) + this.weightDecay * w[j]);
      }
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }
}
