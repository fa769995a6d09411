/**
 * Optimizers: the common interface, the parameter bookkeeping every optimizer
 * shares (names, the in-place invariant, checkpoint state), and AdamW.
 * Adafactor is in ./adafactor.ts, learning-rate schedules in ./schedule.ts,
 * gradient clipping and the finite check in ./clip.ts.
 *
 * The one mutation. Parameters are contiguous leaf tensors on a host backend
 * whose buffer holds exactly their elements; `update` writes the new values
 * into that typed array (`(p.buffer as HostBuffer).data`). This is the single
 * sanctioned mutation of tensor memory (README, "Tensor lifetimes"): an update
 * must not allocate a model-sized tensor per step. The constructor checks the
 * invariant for every parameter, and that no two parameters share a buffer
 * (a tied weight listed twice would be updated twice).
 *
 * Names. Parameters come as a `Record<string, Tensor>` (preferred: checkpoint
 * state is then keyed by the model's parameter names, e.g.
 * `adamw.m.blk.0.ffn.w1`, and survives reordering) or as an array (names are
 * the indices, `adamw.m.0`).
 *
 * Steps. `step` counts update() calls. Each parameter also counts the updates
 * it has received (`paramSteps` in the state JSON); bias corrections (AdamW)
 * and the decay rate (Adafactor) use that count, so a parameter that had no
 * gradient for a while is treated as fresh rather than as warmed up (as
 * PyTorch's per-parameter `step` does).
 *
 * State dtype. Moments are stored in the parameter's dtype: float32 for float32
 * parameters, float64 for float64 ones. For float32 this halves AdamW's state
 * (8 bytes per parameter instead of 16 with float64 moments) and matches the
 * checkpoint format (float32 tensors, docs/model.md); the rounding costs
 * nothing that matters: a moment is an average of noisy gradients known to far
 * less than float32's 6e-8 relative precision, and all arithmetic is done in
 * float64 (JS numbers) before the store. Float64 parameters get float64 state,
 * so tests can compare against hand-computed float64 updates to ~1e-15.
 * Every step reads the moments back from their stored arrays, so the state
 * tensors capture the run exactly: save → load → continue is bit-identical.
 */

import type { HostBuffer } from '../backends/backend.js';
import { allocArray, isFloat } from '../tensor/dtype.js';
import { check, fmtShape, SparselmError } from '../tensor/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/create.js';

export type FloatArray = Float32Array | Float64Array;

/** Parameters by name (preferred) or by position. */
export type ParamList = readonly Tensor[] | Readonly<Record<string, Tensor>>;

/** Which parameters get weight decay. Default: `defaultDecay`. */
export type DecayPredicate = (name: string, p: Tensor) => boolean;

/** Matrices (rank >= 2: projections, embeddings, conv kernels) decay; vectors (biases, norm gains) and scalars do not. */
export const defaultDecay: DecayPredicate = (_name, p) => p.rank >= 2;

export interface Optimizer {
  /** 'adamw' | 'adafactor': the prefix of the state tensor names. */
  readonly kind: string;
  /** Number of update() calls so far (restored by loadState). */
  readonly step: number;
  /** The learning rate update() uses when it is not given one. */
  lr: number | undefined;
  /** One step from each parameter's `.grad`; parameters whose grad is null are left alone (state too). */
  update(lr?: number): void;
  /** Sets every parameter's `.grad` to null. */
  zeroGrad(): void;
  /** Copies of the state arrays as tensors, named `<kind>.<slot>.<param name>` (float, the parameter's dtype). */
  stateTensors(): Record<string, Tensor>;
  /** The rest of the state: step counts, and the options (for reading; the constructor's options govern). */
  stateJSON(): OptimizerStateJSON;
  /** Restores what stateTensors/stateJSON saved; checks every name and shape before changing anything. */
  loadState(tensors: Readonly<Record<string, Tensor>>, json: unknown): void;
}

export interface OptimizerStateJSON {
  kind: string;
  version: 1;
  step: number;
  paramSteps: Record<string, number>;
  options: Record<string, number | boolean | null>;
}

/** [name, tensor] pairs of a ParamList. */
export function namedParams(params: ParamList): [string, Tensor][] {
  return Array.isArray(params)
    ? (params as readonly Tensor[]).map((p, i): [string, Tensor] => [String(i), p])
    : Object.entries(params as Readonly<Record<string, Tensor>>);
}

/**
 * A tensor's elements in row-major order, read only: the buffer's own typed
 * array when the tensor is a whole contiguous host buffer (no copy), else a
 * copy. Gradients are usually the former; a broadcast one (the gradient of a
 * sum is an expanded scalar) is the latter.
 */
export function readHost(t: Tensor): ArrayLike<number> {
  t.assertAlive('optimizer');
  if (t.backend.host && t.isContiguous && t.layout.offset === 0 && t.buffer.length === t.size) return (t.buffer as HostBuffer).data;
  return t.toArray();
}

/** The parameter's typed array, after checking the in-place invariant (see the file comment). */
function paramData(op: string, name: string, p: Tensor): FloatArray {
  check(p.backend.host && p.isContiguous && p.layout.offset === 0 && p.node === null && p.requiresGrad, op,
    () => `parameter '${name}' ${p.toString()} must be a contiguous host leaf with requiresGrad`);
  check(isFloat(p.dtype), op, () => `parameter '${name}' has dtype ${p.dtype}; only float parameters can be optimized`);
  const data = (p.buffer as HostBuffer).data as FloatArray;
  check(data.length === p.size, op, () => `parameter '${name}' ${p.toString()} is a view into a larger buffer`);
  return data;
}

export interface ParamEntry {
  readonly name: string;
  readonly p: Tensor;
  /** The parameter's own buffer: written in place. */
  readonly w: FloatArray;
  readonly decay: boolean;
  /** Updates this parameter has received. */
  t: number;
}

interface Slot { readonly data: FloatArray; readonly shape: readonly number[]; readonly entry: ParamEntry }

/**
 * The shared part of every optimizer: parameter checks and names, step counts,
 * zeroGrad, and state save/load over the slots a subclass registers.
 */
export abstract class BaseOptimizer implements Optimizer {
  abstract readonly kind: string;
  lr: number | undefined;
  protected readonly entries: ParamEntry[];
  private readonly slots = new Map<string, Slot>();
  private stepCount = 0;

  constructor(params: ParamList, lr: number | undefined, decay: DecayPredicate = defaultDecay) {
    const named = namedParams(params);
    const buffers = new Set<unknown>();
    this.entries = named.map(([name, p]) => {
      const w = paramData('optimizer', name, p);
      check(!buffers.has(w), 'optimizer', () => `parameter '${name}' shares its buffer with another parameter (list a tied weight once)`);
      buffers.add(w);
      return { name, p, w, decay: decay(name, p), t: 0 };
    });
    check(lr === undefined || Number.isFinite(lr), 'optimizer', () => `lr must be finite, got ${lr}`);
    this.lr = lr;
  }

  get step(): number { return this.stepCount; }

  /** Options as written to the state JSON. */
  protected abstract optionsJSON(): Record<string, number | boolean | null>;

  /** One update of one parameter: `g` is its gradient (row-major, read only), `e.t` already counts this update. */
  protected abstract updateParam(e: ParamEntry, g: ArrayLike<number>, lr: number): void;

  /** A zeroed state array of the parameter's dtype, saved as `<kind>.<slot>.<name>` with `shape`. */
  protected addSlot(slot: string, e: ParamEntry, shape: readonly number[]): FloatArray {
    const data = allocArray(e.p.dtype, shape.reduce((a, b) => a * b, 1)) as FloatArray;
    this.slots.set(`${this.kind}.${slot}.${e.name}`, { data, shape: [...shape], entry: e });
    return data;
  }

  update(lr: number | undefined = this.lr): void {
    check(lr !== undefined && Number.isFinite(lr), this.kind, () => `update needs a finite learning rate (got ${lr}); pass one to update() or set lr`);
    this.stepCount++;
    for (const e of this.entries) {
      const grad = e.p.grad;
      if (!grad) continue;
      check(grad.size === e.w.length && grad.rank === e.p.rank && grad.shape.every((d, i) => d === e.p.shape[i]), this.kind,
        () => `parameter '${e.name}' ${fmtShape(e.p.shape)} has a gradient of shape ${fmtShape(grad.shape)}`);
      e.t++;
      this.updateParam(e, readHost(grad), lr);
    }
  }

  zeroGrad(): void {
    for (const e of this.entries) e.p.grad = null;
  }

  stateTensors(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [key, s] of this.slots) out[key] = tensor(s.data, s.shape, { device: s.entry.p.backend }); // fromArray copies
    return out;
  }

  stateJSON(): OptimizerStateJSON {
    return {
      kind: this.kind,
      version: 1,
      step: this.stepCount,
      paramSteps: Object.fromEntries(this.entries.map((e) => [e.name, e.t])),
      options: this.optionsJSON(),
    };
  }

  loadState(tensors: Readonly<Record<string, Tensor>>, json: unknown): void {
    const op = `${this.kind}.loadState`;
    const j = json as Partial<OptimizerStateJSON> | null;
    check(typeof j === 'object' && j !== null, op, () => 'state JSON must be an object');
    check(j.kind === this.kind, op, () => `state is for '${String(j.kind)}', not '${this.kind}'`);
    check(j.version === 1, op, () => `unknown state version ${String(j.version)}`);
    const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
    check(isCount(j.step), op, () => `step must be a non-negative integer, got ${String(j.step)}`);
    const steps = j.paramSteps;
    check(typeof steps === 'object' && steps !== null, op, () => 'paramSteps missing');
    for (const e of this.entries) {
      check(isCount(steps[e.name]), op, () => `paramSteps has no count for parameter '${e.name}'`);
    }
    const extraSteps = Object.keys(steps).filter((n) => !this.entries.some((e) => e.name === n));
    check(extraSteps.length === 0, op, () => `paramSteps names unknown parameters: ${extraSteps.join(', ')}`);
    // Check every tensor before writing any, so a bad checkpoint leaves the optimizer as it was.
    for (const [key, s] of this.slots) {
      const t = tensors[key];
      check(t !== undefined, op, () => `missing state tensor '${key}'`);
      check(t.rank === s.shape.length && t.shape.every((d, i) => d === s.shape[i]), op,
        () => `state tensor '${key}' has shape ${fmtShape(t.shape)}, expected ${fmtShape(s.shape)}`);
      check(isFloat(t.dtype), op, () => `state tensor '${key}' has dtype ${t.dtype}`);
    }
    const prefix = `${this.kind}.`;
    const unknown = Object.keys(tensors).filter((k) => k.startsWith(prefix) && !this.slots.has(k));
    if (unknown.length > 0) throw new SparselmError(`${op}: state tensors for unknown parameters or slots: ${unknown.join(', ')}`);
    for (const [key, s] of this.slots) s.data.set(tensors[key].toArray());
    for (const e of this.entries) e.t = steps[e.name];
    this.stepCount = j.step;
  }
}

export interface AdamWOptions {
  /** Default learning rate (update(lr) overrides it). */
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** λ, decoupled and scaled by lr (PyTorch's convention); applied only where `decay` says. */
  weightDecay?: number;
  decay?: DecayPredicate;
}

/**
 * AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay. For each
 * parameter p with gradient g, t = the parameter's update count:
 *
 *   m ← β1·m + (1-β1)·g          v ← β2·v + (1-β2)·g²
 *   p ← p - lr·( m̂ / (√v̂ + ε) + λ·p ),   m̂ = m/(1-β1^t), v̂ = v/(1-β2^t)
 *
 * λ = weightDecay where decay(name, p), else 0. Defaults β1 0.9, β2 0.999, ε 1e-8.
 * State: `adamw.m.<name>` and `adamw.v.<name>`, each the parameter's shape.
 */
export class AdamW extends BaseOptimizer {
  readonly kind = 'adamw';
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly m = new Map<ParamEntry, FloatArray>();
  private readonly v = new Map<ParamEntry, FloatArray>();

  constructor(params: ParamList, opts: AdamWOptions = {}) {
    super(params, opts.lr, opts.decay);
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    check(this.beta1 >= 0 && this.beta1 < 1 && this.beta2 >= 0 && this.beta2 < 1, 'adamw', () => `betas must be in [0, 1), got ${this.beta1}, ${this.beta2}`);
    check(this.eps > 0 && this.weightDecay >= 0, 'adamw', () => `eps must be > 0 and weightDecay >= 0, got ${this.eps}, ${this.weightDecay}`);
    for (const e of this.entries) {
      this.m.set(e, this.addSlot('m', e, e.p.shape));
      this.v.set(e, this.addSlot('v', e, e.p.shape));
    }
  }

  protected optionsJSON(): Record<string, number | boolean | null> {
    return { beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay };
  }

  protected updateParam(e: ParamEntry, g: ArrayLike<number>, lr: number): void {
    const { beta1: b1, beta2: b2, eps } = this;
    const m = this.m.get(e) as FloatArray;
    const v = this.v.get(e) as FloatArray;
    const w = e.w;
    const c1 = 1 - b1 ** e.t;
    const c2 = 1 - b2 ** e.t;
    const decay = e.decay ? lr * this.weightDecay : 0;
    for (let j = 0; j < w.length; j++) {
      const gj = g[j];
      m[j] = b1 * m[j] + (1 - b1) * gj;
      v[j] = b2 * v[j] + (1 - b2) * gj * gj;
      // Read the moments back from their (possibly float32) arrays: the step uses exactly the saved state.
      w[j] = w[j] - decay * w[j] - lr * (m[j] / c1) / (Math.sqrt(v[j] / c2) + eps);
    }
  }
}
