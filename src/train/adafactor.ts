/**
 * Adafactor (Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with
 * Sublinear Memory Cost"): the optimizer the Scaling Transformers paper
 * trained with, with trax's defaults (trax/optimizers/adafactor.py; T5 uses
 * the same). Not here: the paper's built-in relative step schedule
 * ρ_t = min(1e-2, 1/√t) — pass a schedule's value as lr instead (schedule.ts:
 * `rsqrt` with lr 1 and 10⁴ warmup steps is exactly that schedule).
 *
 * For a parameter X with gradient G, t = the parameter's update count (1, 2, ...):
 *
 *   β2_t = 1 - t^(-c)                         c = decayExponent = 0.8; β2_1 = 0, so
 *                                             no bias correction is needed
 *   Q    = G² + ε1                            ε1 = 1e-30 (keeps 1/√· finite)
 *   factored (rank >= 2, over the last two axes; leading axes are a batch),
 *   X [.., R, C]:
 *     r ← β2_t·r + (1-β2_t)·mean_j Q[.., i, j]     row accumulator   [.., R]
 *     c ← β2_t·c + (1-β2_t)·mean_i Q[.., i, j]     column accumulator [.., C]
 *     V̂[.., i, j] = r_i·c_j / mean_i r_i           (the rank-1 fit of V; with means
 *                                                  or with the paper's sums it is the same)
 *   unfactored (vectors, scalars, or factored = false):
 *     V̂ = v ← β2_t·v + (1-β2_t)·Q
 *   U    = G / √V̂
 *   Û    = U / max(1, RMS(U)/d)                 update clipping, d = clipThreshold = 1
 *   α    = lr · max(ε2, RMS(X))                 relative step (multiplyByParamScale, default on),
 *                                             ε2 = 1e-3; RMS of X before this update;
 *                                             α = lr when off
 *   S    = α·Û;  with momentum (β1 > 0):  m ← β1·m + (1-β1)·S,  S = m
 *   X    ← (1 - λ)·X - S                       λ = weightDecay where decay(name, X), else 0
 *
 * RMS(A) = √(mean A²) over the whole tensor. Momentum and weight decay follow
 * trax: momentum averages the already lr-scaled step, and decay is a plain
 * per-step factor, not multiplied by lr (trax's class default λ is 1e-5; the
 * paper has none, so ours is 0). β1 defaults to 0 (no momentum, no m state).
 *
 * Memory: a factored [R, C] matrix keeps R + C numbers instead of Adam's 2·R·C.
 * State tensors: `adafactor.v_row.<name>` [.., R], `adafactor.v_col.<name>`
 * [.., C] (factored), `adafactor.v.<name>` (unfactored), `adafactor.m.<name>`
 * (β1 > 0), in the parameter's dtype (see optim.ts).
 *
 * Cost per step: three passes over G (moments, RMS(U), apply) plus one over X
 * for RMS(X); U is recomputed in the third pass rather than stored, so no
 * parameter-sized scratch is allocated.
 */

import { check } from '../tensor/errors.js';
import { BaseOptimizer, type DecayPredicate, type FloatArray, type ParamEntry, type ParamList } from './optim.js';

export interface AdafactorOptions {
  /** Default learning rate (the relative step ρ when multiplyByParamScale); update(lr) overrides it. */
  lr?: number;
  /** Momentum; 0 (default) turns it off and keeps no m state. */
  beta1?: number;
  /** c in β2_t = 1 - t^(-c). Default 0.8. */
  decayExponent?: number;
  /** d: the update's RMS is clipped to this; null turns clipping off. Default 1. */
  clipThreshold?: number | null;
  /** Added to G². Default 1e-30. */
  eps1?: number;
  /** Floor on RMS(X) in the relative step. Default 1e-3. */
  eps2?: number;
  /** Multiply lr by max(ε2, RMS(X)). Default true. */
  multiplyByParamScale?: boolean;
  /** Factor the second moment of rank >= 2 parameters. Default true. */
  factored?: boolean;
  /** λ: X ← (1-λ)·X each step where decay(name, X). Default 0. */
  weightDecay?: number;
  decay?: DecayPredicate;
}

interface Factored { kind: 'factored'; lead: number; R: number; C: number; vr: FloatArray; vc: FloatArray }
interface Full { kind: 'full'; v: FloatArray }

export class Adafactor extends BaseOptimizer {
  readonly kind = 'adafactor';
  readonly beta1: number;
  readonly decayExponent: number;
  readonly clipThreshold: number | null;
  readonly eps1: number;
  readonly eps2: number;
  readonly multiplyByParamScale: boolean;
  readonly factored: boolean;
  readonly weightDecay: number;
  private readonly second = new Map<ParamEntry, Factored | Full>();
  private readonly m = new Map<ParamEntry, FloatArray>();
  /** Scratch for one [R, C] slice: column sums, then row and column factors. Sized to the largest parameter. */
  private readonly colScratch: Float64Array;
  private readonly rowFactor: Float64Array;
  private readonly colFactor: Float64Array;

  constructor(params: ParamList, opts: AdafactorOptions = {}) {
    super(params, opts.lr, opts.decay);
    this.beta1 = opts.beta1 ?? 0;
    this.decayExponent = opts.decayExponent ?? 0.8;
    this.clipThreshold = opts.clipThreshold === undefined ? 1 : opts.clipThreshold;
    this.eps1 = opts.eps1 ?? 1e-30;
    this.eps2 = opts.eps2 ?? 1e-3;
    this.multiplyByParamScale = opts.multiplyByParamScale ?? true;
    this.factored = opts.factored ?? true;
    this.weightDecay = opts.weightDecay ?? 0;
    check(this.beta1 >= 0 && this.beta1 < 1, 'adafactor', () => `beta1 must be in [0, 1), got ${this.beta1}`);
    check(this.decayExponent > 0 && this.decayExponent <= 1, 'adafactor', () => `decayExponent must be in (0, 1], got ${this.decayExponent}`);
    check(this.clipThreshold === null || this.clipThreshold > 0, 'adafactor', () => `clipThreshold must be > 0 or null, got ${this.clipThreshold}`);
    check(this.eps1 > 0 && this.eps2 >= 0, 'adafactor', () => `eps1 must be > 0 and eps2 >= 0, got ${this.eps1}, ${this.eps2}`);
    check(this.weightDecay >= 0 && this.weightDecay < 1, 'adafactor', () => `weightDecay must be in [0, 1), got ${this.weightDecay}`);
    let maxR = 0;
    let maxC = 0;
    for (const e of this.entries) {
      const shape = e.p.shape;
      if (this.factored && shape.length >= 2) {
        const R = shape[shape.length - 2];
        const C = shape[shape.length - 1];
        const lead = shape.slice(0, -2);
        maxR = Math.max(maxR, R);
        maxC = Math.max(maxC, C);
        this.second.set(e, {
          kind: 'factored', lead: lead.reduce((a, b) => a * b, 1), R, C,
          vr: this.addSlot('v_row', e, [...lead, R]),
          vc: this.addSlot('v_col', e, [...lead, C]),
        });
      } else {
        this.second.set(e, { kind: 'full', v: this.addSlot('v', e, shape) });
      }
      if (this.beta1 > 0) this.m.set(e, this.addSlot('m', e, shape));
    }
    this.colScratch = new Float64Array(maxC);
    this.rowFactor = new Float64Array(maxR);
    this.colFactor = new Float64Array(maxC);
  }

  protected optionsJSON(): Record<string, number | boolean | null> {
    return {
      beta1: this.beta1, decayExponent: this.decayExponent, clipThreshold: this.clipThreshold, eps1: this.eps1,
      eps2: this.eps2, multiplyByParamScale: this.multiplyByParamScale, factored: this.factored, weightDecay: this.weightDecay,
    };
  }

  protected updateParam(e: ParamEntry, g: ArrayLike<number>, lr: number): void {
    const w = e.w;
    const n = w.length;
    if (n === 0) return;
    const beta2 = 1 - e.t ** -this.decayExponent;
    const mix = 1 - beta2;
    const eps1 = this.eps1;
    let alpha = lr;
    if (this.multiplyByParamScale) {
      let ss = 0;
      for (let k = 0; k < n; k++) ss += w[k] * w[k];
      alpha *= Math.max(this.eps2, Math.sqrt(ss / n));
    }
    const st = this.second.get(e) as Factored | Full;

    // Pass 1: second moments. Pass 2: RMS(U). Pass 3 (below): apply.
    let ssU = 0;
    if (st.kind === 'full') {
      const v = st.v;
      for (let k = 0; k < n; k++) {
        v[k] = beta2 * v[k] + mix * (g[k] * g[k] + eps1);
        const u = g[k] / Math.sqrt(v[k]);
        ssU += u * u;
      }
    } else {
      const { lead, R, C, vr, vc } = st;
      const cs = this.colScratch;
      for (let b = 0; b < lead; b++) {
        cs.fill(0, 0, C);
        for (let i = 0; i < R; i++) {
          const row = (b * R + i) * C;
          let rs = 0;
          for (let j = 0; j < C; j++) {
            const q = g[row + j] * g[row + j] + eps1;
            rs += q;
            cs[j] += q;
          }
          vr[b * R + i] = beta2 * vr[b * R + i] + mix * (rs / C);
        }
        for (let j = 0; j < C; j++) vc[b * C + j] = beta2 * vc[b * C + j] + mix * (cs[j] / R);
        this.factors(st, b);
        for (let i = 0; i < R; i++) {
          const row = (b * R + i) * C;
          const rf = this.rowFactor[i];
          for (let j = 0; j < C; j++) {
            const u = g[row + j] * rf * this.colFactor[j];
            ssU += u * u;
          }
        }
      }
    }

    const rmsU = Math.sqrt(ssU / n);
    const clip = this.clipThreshold === null ? 1 : Math.max(1, rmsU / this.clipThreshold);
    const scale = alpha / clip; // S = scale·U
    const keep = e.decay ? 1 - this.weightDecay : 1;
    const m = this.m.get(e);
    const b1 = this.beta1;
    const apply = (k: number, u: number): void => {
      let s = scale * u;
      if (m) {
        m[k] = b1 * m[k] + (1 - b1) * s;
        s = m[k];
      }
      w[k] = keep * w[k] - s;
    };
    if (st.kind === 'full') {
      for (let k = 0; k < n; k++) apply(k, g[k] / Math.sqrt(st.v[k]));
    } else {
      const { lead, R, C } = st;
      for (let b = 0; b < lead; b++) {
        this.factors(st, b);
        for (let i = 0; i < R; i++) {
          const row = (b * R + i) * C;
          const rf = this.rowFactor[i];
          for (let j = 0; j < C; j++) apply(row + j, g[row + j] * rf * this.colFactor[j]);
        }
      }
    }
  }

  /** For slice b: rowFactor_i = √(mean r / r_i), colFactor_j = 1/√c_j, so U_ij = G_ij·rowFactor_i·colFactor_j = G_ij/√V̂_ij. */
  private factors(st: Factored, b: number): void {
    const { R, C, vr, vc } = st;
    let rs = 0;
    for (let i = 0; i < R; i++) rs += vr[b * R + i];
    const rmean = rs / R;
    for (let i = 0; i < R; i++) this.rowFactor[i] = Math.sqrt(rmean / vr[b * R + i]);
    for (let j = 0; j < C; j++) this.colFactor[j] = 1 / Math.sqrt(vc[b * C + j]);
  }
}
