/**
 * Optimizers, schedules and gradient clipping.
 *
 * The hand-computed tests restate each update rule in the test, in float64,
 * in a form deliberately unlike the implementation (Adafactor's V̂ is built
 * as an explicit matrix from the paper's row and column *sums*; the
 * implementation uses means and never forms V̂), and compare a few steps on
 * tiny float64 parameters to ~1e-13. Then: both optimizers minimise a least-
 * squares problem, save → load mid-run continues bit-identically, schedules
 * at chosen steps, clipping and the NaN check.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Tensor, add, backward, expand, matmul, mean, noGrad, scalar, square, sub, tensor, type DType,
} from '../src/index.js';
import { AdamW, type Optimizer } from '../src/train/optim.js';
import { Adafactor, type AdafactorOptions } from '../src/train/adafactor.js';
import { makeSchedule, type ScheduleConfig } from '../src/train/schedule.js';
import { clipGradNorm, gradNorm, gradsAreFinite, nonFiniteGrads } from '../src/train/clip.js';
import { assertClose, normalData } from './helpers.js';

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

function param(shape: number[], seed: number, dtype: DType = 'float64', scale = 1): Tensor {
  return tensor(normalData(shape, seed, scale), shape, { dtype, device: 'cpu', requiresGrad: true });
}

/** Deterministic gradient values for parameter `which` at step `step`. */
function gradValues(shape: readonly number[], which: number, step: number): Float64Array {
  return normalData(shape, 1000 + 37 * which + step, 0.5 + which);
}

function setGrad(p: Tensor, g: ArrayLike<number>): void {
  p.grad = tensor(Float64Array.from(g), p.shape, { dtype: p.dtype, device: 'cpu' });
}

const rms = (a: readonly number[]): number => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);

describe('AdamW', () => {
  it('matches hand-computed updates; decays matrices only; skips a null grad (its bias correction waits)', () => {
    const shapes = [[2, 3], [3]];
    const [lr, b1, b2, eps, wd] = [0.01, 0.8, 0.95, 1e-8, 0.1];
    const params = { w: param(shapes[0], 1), b: param(shapes[1], 2) };
    const opt = new AdamW(params, { lr, beta1: b1, beta2: b2, eps, weightDecay: wd });
    // Reference state, float64, per parameter.
    const x = [Array.from(params.w.toArray()), Array.from(params.b.toArray())];
    const m = shapes.map((s) => new Array<number>(numel(s)).fill(0));
    const v = shapes.map((s) => new Array<number>(numel(s)).fill(0));
    const t = [0, 0];
    for (let step = 1; step <= 3; step++) {
      const has = [true, step !== 2]; // b gets no gradient at step 2
      [params.w, params.b].forEach((p, k) => {
        if (has[k]) setGrad(p, gradValues(shapes[k], k, step));
        else p.grad = null;
      });
      opt.update();
      for (let k = 0; k < 2; k++) {
        if (!has[k]) continue;
        t[k]++;
        const g = gradValues(shapes[k], k, step);
        const lambda = k === 0 ? wd : 0;
        for (let j = 0; j < g.length; j++) {
          m[k][j] = b1 * m[k][j] + (1 - b1) * g[j];
          v[k][j] = b2 * v[k][j] + (1 - b2) * g[j] ** 2;
          const mHat = m[k][j] / (1 - b1 ** t[k]);
          const vHat = v[k][j] / (1 - b2 ** t[k]);
          x[k][j] = x[k][j] - lr * (mHat / (Math.sqrt(vHat) + eps) + lambda * x[k][j]);
        }
      }
      assertClose(params.w.toArray(), x[0], 1e-13, 1e-15, `w after step ${step}`);
      assertClose(params.b.toArray(), x[1], 1e-13, 1e-15, `b after step ${step}`);
    }
    assert.equal(opt.step, 3);
    assert.deepEqual(opt.stateJSON().paramSteps, { w: 3, b: 2 });
    assert.deepEqual(Object.keys(opt.stateTensors()).sort(), ['adamw.m.b', 'adamw.m.w', 'adamw.v.b', 'adamw.v.w']);
  });

  it('update(lr) overrides the default; no lr at all is an error', () => {
    const p = param([2], 3);
    const before = Array.from(p.toArray());
    const opt = new AdamW([p]);
    setGrad(p, [1, -1]);
    assert.throws(() => opt.update(), /adamw: update needs a finite learning rate/);
    opt.update(0.5);
    // First Adam step is lr·sign(g) (up to ε).
    assertClose(p.toArray(), [before[0] - 0.5, before[1] + 0.5], 1e-7, 0);
  });
});

/**
 * Adafactor as the paper writes it, for a 2-D (factored) or any-rank
 * unfactored float64 parameter; state in a plain object. Factored moments use
 * sums: R_i = Σ_j Q_ij, C_j = Σ_i Q_ij, V̂ = R Cᵀ / Σ_i R_i.
 */
interface RefState { t: number; R: number[]; C: number[]; V: number[]; M: number[] }
function refAdafactor(x: number[], shape: number[], g: ArrayLike<number>, s: RefState, lr: number, o: RefOptions, decays: boolean): void {
  s.t++;
  const b2 = 1 - Math.pow(s.t, -o.decayExponent);
  const q = Array.from(g, (gi) => gi * gi + o.eps1);
  let vhat: number[];
  if (shape.length === 2 && o.factored) {
    const [rows, cols] = shape;
    for (let i = 0; i < rows; i++) {
      let sum = 0;
      for (let j = 0; j < cols; j++) sum += q[i * cols + j];
      s.R[i] = b2 * s.R[i] + (1 - b2) * sum;
    }
    for (let j = 0; j < cols; j++) {
      let sum = 0;
      for (let i = 0; i < rows; i++) sum += q[i * cols + j];
      s.C[j] = b2 * s.C[j] + (1 - b2) * sum;
    }
    const total = s.R.reduce((a, b) => a + b, 0);
    vhat = q.map((_, k) => (s.R[Math.floor(k / cols)] * s.C[k % cols]) / total);
  } else {
    s.V = s.V.map((vk, k) => b2 * vk + (1 - b2) * q[k]);
    vhat = s.V;
  }
  const u = Array.from(g, (gi, k) => gi / Math.sqrt(vhat[k]));
  const d = o.clipThreshold ?? Infinity;
  const uHat = u.map((uk) => uk / Math.max(1, rms(u) / d));
  const alpha = o.multiplyByParamScale ? lr * Math.max(o.eps2, rms(x)) : lr;
  let step = uHat.map((uk) => alpha * uk);
  if (o.beta1 > 0) {
    s.M = s.M.map((mk, k) => o.beta1 * mk + (1 - o.beta1) * step[k]);
    step = s.M;
  }
  const lambda = decays ? o.weightDecay : 0;
  for (let k = 0; k < x.length; k++) x[k] = (1 - lambda) * x[k] - step[k];
}

type RefOptions = Required<Omit<AdafactorOptions, 'lr' | 'decay'>>;
const DEFAULTS: RefOptions = { beta1: 0, decayExponent: 0.8, clipThreshold: 1, eps1: 1e-30, eps2: 1e-3, multiplyByParamScale: true, factored: true, weightDecay: 0 };

describe('Adafactor', () => {
  const variants: [string, AdafactorOptions][] = [
    ['trax defaults', {}],
    ['momentum 0.9, weight decay 0.01, clip 0.5', { beta1: 0.9, weightDecay: 0.01, clipThreshold: 0.5 }],
    ['no parameter scale, no clipping, unfactored', { multiplyByParamScale: false, clipThreshold: null, factored: false }],
  ];
  for (const [label, opts] of variants) {
    it(`matches the paper's formulas for 4 steps: ${label}`, () => {
      const o: RefOptions = { ...DEFAULTS, ...opts };
      const shapes = [[3, 4], [4]];
      const params = { w: param(shapes[0], 11, 'float64', 0.3), b: param(shapes[1], 12, 'float64', 0.002) };
      const opt = new Adafactor(params, opts);
      const x = [Array.from(params.w.toArray()), Array.from(params.b.toArray())];
      const st = shapes.map((s): RefState => ({
        t: 0, R: new Array<number>(s[0]).fill(0), C: new Array<number>(s[s.length - 1]).fill(0),
        V: new Array<number>(numel(s)).fill(0), M: new Array<number>(numel(s)).fill(0),
      }));
      let clipped = 0;
      for (let step = 1; step <= 4; step++) {
        const lr = 0.05 / step;
        [params.w, params.b].forEach((p, k) => setGrad(p, gradValues(shapes[k], k, step)));
        const before = Array.from(params.w.toArray());
        opt.update(lr);
        for (let k = 0; k < 2; k++) refAdafactor(x[k], shapes[k], gradValues(shapes[k], k, step), st[k], lr, o, k === 0);
        assertClose(params.w.toArray(), x[0], 1e-13, 1e-16, `w after step ${step}`);
        assertClose(params.b.toArray(), x[1], 1e-13, 1e-16, `b after step ${step}`);
        // Did clipping engage for w? (its unclipped step would have RMS > d·α)
        if (o.clipThreshold !== null && o.beta1 === 0 && o.weightDecay === 0) {
          const moved = before.map((bk, k) => bk - x[0][k]);
          const alpha = lr * Math.max(o.eps2, rms(before));
          if (Math.abs(rms(moved) / alpha - o.clipThreshold) < 1e-9) clipped++;
        }
      }
      if (label === 'trax defaults') assert.ok(clipped > 0, 'update clipping should engage for w in this run');
    });
  }

  it('factored moments are the decayed row and column means of g² + ε1, per leading slice', () => {
    const shape = [2, 3, 4]; // two [3, 4] slices
    const p = param(shape, 21);
    const opt = new Adafactor({ k: p }, { lr: 0.01 });
    const g1 = gradValues(shape, 0, 1);
    const g2 = gradValues(shape, 0, 2);
    const rowMeans = (g: Float64Array): number[] => Array.from({ length: 6 }, (_, r) => {
      let s = 0;
      for (let j = 0; j < 4; j++) s += g[r * 4 + j] ** 2 + 1e-30;
      return s / 4;
    });
    const colMeans = (g: Float64Array): number[] => Array.from({ length: 8 }, (_, bc) => {
      const [b, c] = [Math.floor(bc / 4), bc % 4];
      let s = 0;
      for (let i = 0; i < 3; i++) s += g[(b * 3 + i) * 4 + c] ** 2 + 1e-30;
      return s / 3;
    });
    setGrad(p, g1);
    opt.update();
    let state = opt.stateTensors();
    assert.deepEqual(Object.keys(state).sort(), ['adafactor.v_col.k', 'adafactor.v_row.k']);
    assert.deepEqual([...state['adafactor.v_row.k'].shape], [2, 3]);
    assert.deepEqual([...state['adafactor.v_col.k'].shape], [2, 4]);
    // Step 1: β2 = 1 - 1^-0.8 = 0, so the accumulators are exactly the means.
    assertClose(state['adafactor.v_row.k'].toArray(), rowMeans(g1), 1e-15, 0, 'v_row step 1');
    assertClose(state['adafactor.v_col.k'].toArray(), colMeans(g1), 1e-15, 0, 'v_col step 1');
    setGrad(p, g2);
    opt.update();
    state = opt.stateTensors();
    const b2 = 1 - 2 ** -0.8;
    const mix = (a: number[], b: number[]): number[] => a.map((ak, k) => b2 * ak + (1 - b2) * b[k]);
    assertClose(state['adafactor.v_row.k'].toArray(), mix(rowMeans(g1), rowMeans(g2)), 1e-15, 0, 'v_row step 2');
    assertClose(state['adafactor.v_col.k'].toArray(), mix(colMeans(g1), colMeans(g2)), 1e-15, 0, 'v_col step 2');
  });

  it('update clipping engages exactly when RMS(U) > d', () => {
    // Vector, no parameter scale: the step is lr·U / max(1, RMS(U)/d).
    const run = (clipThreshold: number | null, grads: number[][]): number[] => {
      const p = tensor([0, 0, 0], [3], { dtype: 'float64', device: 'cpu', requiresGrad: true });
      const opt = new Adafactor([p], { lr: 0.1, multiplyByParamScale: false, clipThreshold });
      for (const g of grads) { setGrad(p, g); opt.update(); }
      return Array.from(p.toArray());
    };
    // Steady gradients: v = g² + ε1 at step 1, so |U| = 1, RMS(U) = 1: no clipping.
    const steady = [[1, -2, 0.5]];
    assert.deepEqual(run(1, steady), run(null, steady));
    assertClose(run(1, steady), [-0.1, 0.1, -0.1], 1e-14, 0);
    // A gradient appearing at step 2 after zeros: v = (1-β2_2)·g², U = g/√v, RMS(U) = (1-β2_2)^-½ = 2^0.4 ≈ 1.32 > 1.
    const burst = [[0, 0, 0], [1, 1, 1]];
    const rmsU = 2 ** 0.4;
    assertClose(run(null, burst), [-0.1 * rmsU, -0.1 * rmsU, -0.1 * rmsU], 1e-12, 0, 'unclipped');
    assertClose(run(1, burst), [-0.1, -0.1, -0.1], 1e-12, 0, 'clipped to RMS d = 1');
    assertClose(run(2, burst), [-0.1 * rmsU, -0.1 * rmsU, -0.1 * rmsU], 1e-12, 0, 'd = 2: below the threshold');
  });

  it('multiplies lr by max(ε2, RMS(X)): zero-initialised biases move by lr·1e-3', () => {
    const b = tensor([0, 0], [2], { dtype: 'float64', device: 'cpu', requiresGrad: true });
    const opt = new Adafactor([b], { lr: 0.5 });
    setGrad(b, [3, -3]);
    opt.update();
    assertClose(b.toArray(), [-0.5e-3, 0.5e-3], 1e-12, 0);
  });
});

/** Least squares: X [16,4] · W [4,3] + b [3] ≈ Y, with an exact solution (minimum loss 0). */
function leastSquares(opt: (params: Record<string, Tensor>) => Optimizer, steps: number, schedule: ScheduleConfig): { first: number; last: number } {
  const X = tensor(normalData([16, 4], 31), [16, 4], { dtype: 'float32', device: 'cpu' });
  const Wtrue = tensor(normalData([4, 3], 32), [4, 3], { dtype: 'float32', device: 'cpu' });
  const Y = noGrad(() => add(matmul(X, Wtrue), tensor([0.5, -1, 2], [3], { device: 'cpu' })));
  const params = { W: param([4, 3], 33, 'float32', 0.1), b: param([3], 34, 'float32', 0.1) };
  const o = opt(params);
  const lr = makeSchedule(schedule);
  let first = NaN;
  let last = NaN;
  for (let s = 1; s <= steps; s++) {
    const loss = mean(square(sub(add(matmul(X, params.W), params.b), Y)));
    backward(loss);
    assert.ok(gradsAreFinite(params));
    clipGradNorm(params, 10);
    o.update(lr(o.step + 1));
    o.zeroGrad();
    if (s === 1) first = loss.item();
    last = loss.item();
  }
  return { first, last };
}

describe('both optimizers minimise a least-squares problem', () => {
  it('AdamW, cosine schedule', () => {
    const { first, last } = leastSquares((p) => new AdamW(p), 200, { kind: 'cosine', lr: 0.1, warmupSteps: 20, totalSteps: 200, minLr: 0 });
    assert.ok(last < 1e-4 * first, `loss ${first} -> ${last}`);
  });
  it('Adafactor, cosine schedule', () => {
    const { first, last } = leastSquares((p) => new Adafactor(p), 200, { kind: 'cosine', lr: 0.1, warmupSteps: 20, totalSteps: 200, minLr: 0 });
    assert.ok(last < 1e-4 * first, `loss ${first} -> ${last}`);
  });
});

describe('optimizer state: save -> load mid-run', () => {
  const makers: [string, (p: Record<string, Tensor>) => Optimizer][] = [
    ['AdamW', (p) => new AdamW(p, { lr: 0.01, weightDecay: 0.1 })],
    ['Adafactor with momentum', (p) => new Adafactor(p, { lr: 0.05, beta1: 0.9, weightDecay: 1e-3 })],
  ];
  const shapes: Record<string, number[]> = { 'blk.0.w': [4, 5], 'blk.0.conv': [2, 3, 4], 'blk.0.b': [5] };
  const fresh = (): Record<string, Tensor> => Object.fromEntries(Object.entries(shapes).map(([n, s], k) => [n, param(s, 40 + k, 'float32')]));
  const stepWith = (opt: Optimizer, params: Record<string, Tensor>, step: number): void => {
    Object.entries(params).forEach(([n, p], k) => {
      if (n === 'blk.0.b' && step === 6) p.grad = null; // a skipped parameter, after the save
      else setGrad(p, gradValues(p.shape, k, step));
    });
    opt.update(opt.lr === undefined ? undefined : opt.lr / Math.sqrt(step));
    opt.zeroGrad();
  };
  for (const [label, make] of makers) {
    it(`${label}: continuing from a checkpoint is bit-identical`, () => {
      const a = fresh();
      const optA = make(a);
      for (let s = 1; s <= 4; s++) stepWith(optA, a, s);
      // The checkpoint: parameters, state tensors, state JSON through text.
      const savedParams = Object.fromEntries(Object.entries(a).map(([n, p]) => [n, p.toArray()]));
      const savedTensors = optA.stateTensors();
      const savedJSON: unknown = JSON.parse(JSON.stringify(optA.stateJSON()));
      for (let s = 5; s <= 8; s++) stepWith(optA, a, s);

      const restore = (load: boolean): Record<string, Tensor> => {
        const b = Object.fromEntries(Object.entries(savedParams).map(([n, d]) => [n, tensor(d, shapes[n], { device: 'cpu', requiresGrad: true })]));
        const optB = make(b);
        if (load) optB.loadState(savedTensors, savedJSON);
        assert.equal(optB.step, load ? 4 : 0);
        for (let s = 5; s <= 8; s++) stepWith(optB, b, s);
        return b;
      };
      const b = restore(true);
      for (const n of Object.keys(shapes)) assert.deepEqual(b[n].toArray(), a[n].toArray(), `${n} after resume`);
      // And the check can fail: without the optimizer state the parameters differ.
      const c = restore(false);
      assert.ok(Object.keys(shapes).some((n) => c[n].toArray().some((x, j) => x !== a[n].toArray()[j])));
    });
  }

  it('loadState rejects a mismatched checkpoint and changes nothing', () => {
    const a = fresh();
    const opt = new AdamW(a, { lr: 0.01 });
    stepWith(opt, a, 1);
    const tensors = opt.stateTensors();
    const json = opt.stateJSON();
    const other = new AdamW(fresh(), { lr: 0.01 });
    const { 'adamw.v.blk.0.b': _dropped, ...missing } = tensors;
    assert.throws(() => other.loadState(missing, json), /adamw\.loadState: missing state tensor 'adamw\.v\.blk\.0\.b'/);
    assert.throws(() => other.loadState({ ...tensors, 'adamw.m.blk.9.w': tensors['adamw.m.blk.0.b'] }, json), /unknown parameters or slots: adamw\.m\.blk\.9\.w/);
    assert.throws(() => other.loadState({ ...tensors, 'adamw.m.blk.0.w': tensors['adamw.m.blk.0.b'] }, json), /has shape \[5\], expected \[4,5\]/);
    assert.throws(() => other.loadState(tensors, { ...json, kind: 'adafactor' }), /state is for 'adafactor', not 'adamw'/);
    assert.equal(other.step, 0);
    assert.ok(Object.values(other.stateTensors()).every((t) => t.toArray().every((x) => x === 0)));
    // Model tensors in the same map (no optimizer prefix) are ignored.
    other.loadState({ ...tensors, 'blk.0.w': a['blk.0.w'] }, json);
    assert.equal(other.step, 1);
  });
});

describe('parameter invariants', () => {
  it('rejects non-leaf, view, int32, shared-buffer parameters and mis-shaped gradients', () => {
    const p = param([2, 3], 50);
    assert.throws(() => new AdamW([add(p, 1)]), /optimizer: parameter '0' .* must be a contiguous host leaf/);
    const view = noGrad(() => expand(scalar(1, { dtype: 'float32' }), [3]));
    view.requiresGrad = true;
    assert.throws(() => new AdamW([view]), /must be a contiguous host leaf/);
    const ints = tensor([1, 2], [2], { dtype: 'int32', requiresGrad: true });
    assert.throws(() => new AdamW({ ids: ints }), /parameter 'ids' has dtype int32/);
    assert.throws(() => new Adafactor({ a: p, b: p }), /parameter 'b' shares its buffer/);
    const opt = new Adafactor({ p });
    p.grad = tensor([1, 2, 3], [3], { dtype: 'float64' });
    assert.throws(() => opt.update(0.1), /adafactor: parameter 'p' \[2,3\] has a gradient of shape \[3\]/);
  });

  it('reads a broadcast gradient through its layout', () => {
    const p = tensor([1, 2, 3], [3], { dtype: 'float64', device: 'cpu', requiresGrad: true });
    const q = tensor([1, 2, 3], [3], { dtype: 'float64', device: 'cpu', requiresGrad: true });
    backward(mean(p)); // d/dp = expand(1/3): a stride-0 view
    q.grad = tensor([1 / 3, 1 / 3, 1 / 3], [3], { dtype: 'float64' });
    const [oa, ob] = [new AdamW([p], { lr: 0.1 }), new AdamW([q], { lr: 0.1 })];
    oa.update();
    ob.update();
    assert.deepEqual(p.toArray(), q.toArray());
  });
});

describe('schedules', () => {
  it('constant', () => {
    const s = makeSchedule({ kind: 'constant', lr: 3e-4 });
    assert.equal(s(0), 3e-4);
    assert.equal(s(12345), 3e-4);
  });

  it('cosine: linear warmup from 0, peak at the end of warmup, cosine to the floor at totalSteps', () => {
    const s = makeSchedule({ kind: 'cosine', lr: 1, warmupSteps: 10, totalSteps: 110, minLr: 0.1 });
    assert.equal(s(0), 0);
    assertClose([s(1), s(5), s(10)], [0.1, 0.5, 1], 1e-15, 0, 'warmup');
    assertClose([s(60)], [0.1 + 0.9 * 0.5], 1e-15, 0, 'midpoint');
    assertClose([s(35)], [0.1 + 0.9 * (1 + Math.cos(Math.PI / 4)) / 2], 1e-15, 0, 'quarter');
    assertClose([s(110), s(500)], [0.1, 0.1], 1e-15, 0, 'floor');
    const noWarmup = makeSchedule({ kind: 'cosine', lr: 2, warmupSteps: 0, totalSteps: 4, minLr: 0 });
    assertClose([0, 1, 2, 4].map(noWarmup), [2, 2 * (1 + Math.SQRT1_2) / 2, 1, 0], 1e-15, 1e-15, 'no warmup');
  });

  it('rsqrt: lr·min(1, s/W)/√max(s, W); lr 1, W 10⁴ is the paper\'s min(1e-2, 1/√s) after warmup', () => {
    const s = makeSchedule({ kind: 'rsqrt', lr: 1, warmupSteps: 10_000 });
    assert.equal(s(0), 0);
    assertClose([s(1), s(5000), s(10_000), s(40_000), s(1_000_000)], [1e-6, 0.5e-2, 1e-2, 5e-3, 1e-3], 1e-14, 0);
    for (const step of [10_000, 12_345, 250_000]) assertClose([s(step)], [Math.min(1e-2, 1 / Math.sqrt(step))], 1e-14, 0);
    const t = makeSchedule({ kind: 'rsqrt', lr: 0.5, warmupSteps: 4 });
    assertClose([1, 2, 4, 16].map(t), [0.5 * 0.25 / 2, 0.5 * 0.5 / 2, 0.25, 0.125], 1e-15, 0);
  });

  it('configs round-trip through JSON; bad configs are errors', () => {
    const cfg: ScheduleConfig = { kind: 'cosine', lr: 1e-3, warmupSteps: 100, totalSteps: 1000, minLr: 1e-5 };
    const [a, b] = [makeSchedule(cfg), makeSchedule(JSON.parse(JSON.stringify(cfg)) as ScheduleConfig)];
    for (const step of [0, 1, 50, 100, 101, 777, 1000, 2000]) assert.equal(a(step), b(step));
    const bad = (c: unknown): ScheduleConfig => c as ScheduleConfig;
    assert.throws(() => makeSchedule(bad({ kind: 'linear', lr: 1 })), /makeSchedule: unknown schedule kind "linear"/);
    assert.throws(() => makeSchedule(bad({ kind: 'rsqrt', lr: 1, warmupSteps: 0 })), /warmupSteps must be an integer >= 1, got 0/);
    assert.throws(() => makeSchedule(bad({ kind: 'cosine', lr: 1, warmupSteps: 10, totalSteps: 10, minLr: 0 })), /totalSteps must be an integer > warmupSteps \(10\)/);
    assert.throws(() => makeSchedule(bad({ kind: 'cosine', lr: 1, warmupSteps: 0, totalSteps: 10, minLr: 2 })), /minLr must be in \[0, lr = 1\]/);
    assert.throws(() => makeSchedule(bad({ kind: 'constant' })), /lr must be a finite number >= 0, got undefined/);
    assert.throws(() => a(-1), /schedule: step must be a finite number >= 0/);
  });
});

describe('gradient clipping and the finite check', () => {
  const setup = (): { a: Tensor; b: Tensor } => {
    const a = tensor([0, 0], [2], { dtype: 'float64', device: 'cpu', requiresGrad: true });
    const b = tensor([0], [1], { dtype: 'float64', device: 'cpu', requiresGrad: true });
    a.grad = tensor([3, 4], [2], { dtype: 'float64' });
    b.grad = tensor([12], [1], { dtype: 'float64' });
    return { a, b };
  };

  it('returns the pre-clip global norm and scales every gradient to maxNorm', () => {
    const { a, b } = setup();
    const original = a.grad as Tensor;
    assert.equal(gradNorm([a, b]), 13);
    assert.equal(clipGradNorm([a, b], 6.5), 13);
    assertClose(a.grad as Tensor, [1.5, 2], 1e-15, 0, 'a');
    assertClose(b.grad as Tensor, [6], 1e-15, 0, 'b');
    assertClose([gradNorm([a, b])], [6.5], 1e-15, 0, 'norm after');
    assert.deepEqual(Array.from(original.toArray()), [3, 4], 'the old gradient tensor is not written');
  });

  it('leaves gradients alone below maxNorm; counts a parameter listed twice once', () => {
    const { a, b } = setup();
    const [ga, gb] = [a.grad, b.grad];
    assert.equal(clipGradNorm({ a, b, again: a }, 13), 13);
    assert.equal(a.grad, ga);
    assert.equal(b.grad, gb);
    assert.equal(clipGradNorm([a, b, a], 2.6), 13);
    assertClose(a.grad as Tensor, [0.6, 0.8], 1e-15, 0, 'scaled once');
  });

  it('clips gradients that share one buffer (a broadcast view) without scaling it twice', () => {
    const p = tensor([1, 2], [2], { dtype: 'float64', device: 'cpu', requiresGrad: true });
    const q = tensor([1, 2], [2], { dtype: 'float64', device: 'cpu', requiresGrad: true });
    const shared = noGrad(() => expand(scalar(2, { dtype: 'float64' }), [2]));
    p.grad = shared;
    q.grad = shared;
    assert.equal(clipGradNorm([p, q], 2), 4);
    assertClose(p.grad, [1, 1], 1e-15, 0, 'p');
    assertClose(q.grad, [1, 1], 1e-15, 0, 'q');
    assertClose(shared, [2, 2], 0, 0, 'shared view untouched');
  });

  it('detects NaN and Inf, names the parameter, and does not clip non-finite gradients', () => {
    const { a, b } = setup();
    assert.ok(gradsAreFinite({ a, b }));
    b.grad = tensor([NaN], [1], { dtype: 'float64' });
    assert.equal(gradsAreFinite({ a, b }), false);
    assert.deepEqual(nonFiniteGrads({ a, b }), ['b']);
    const before = a.grad;
    assert.ok(Number.isNaN(clipGradNorm({ a, b }, 1)));
    assert.equal(a.grad, before);
    a.grad = tensor([Infinity, 0], [2], { dtype: 'float32' });
    b.grad = null;
    assert.deepEqual(nonFiniteGrads({ a, b }), ['a']);
    assert.equal(gradNorm([a]), Infinity);
    a.grad = null;
    assert.ok(gradsAreFinite({ a, b }), 'no gradients: nothing non-finite');
  });
});
