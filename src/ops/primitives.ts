/**
 * The primitive ops: the closed set every other computation in sparselm is
 * composed of. Each one checks its arguments (errors name the op, the
 * argument and the shapes), computes its output with the tensor's backend and
 * records an autograd node. Gradient rules for all of them are in
 * src/autograd/rules.ts, in a table typed so that a primitive without a rule
 * does not compile.
 *
 * Primitives are strict: same shapes for elementwise ops, same batch shapes
 * for matmul. Broadcasting, keepdims, negative axes and scalars are handled by
 * the composites in src/ops/index.ts, in terms of `expand` and `reshape`.
 *
 * View primitives (reshape of contiguous data, permute, expand, slice) make
 * a new layout over the same buffer; everything else writes a new buffer.
 */

import type { Backend, BinaryOp, Buffer, CompareOp, ReduceOp, UnaryOp } from '../backends/backend.js';
import { kernelFor } from '../backends/registry.js';
import { isGradEnabled, type GradNode } from '../autograd/node.js';
import { isFloat, type DType } from '../tensor/dtype.js';
import { check, fmtShape } from '../tensor/errors.js';
import type { Distribution } from '../tensor/random.js';
import { checkShape, contiguousStrides, numel, sameShape, type Shape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';

/** Parameters of each primitive; the keys are the primitive set. */
export interface OpParams {
  reshape: { shape: Shape };
  permute: { axes: readonly number[] };
  expand: { shape: Shape };
  slice: { starts: readonly number[]; ends: readonly number[] };
  pad: { pads: readonly (readonly [number, number])[] };
  copy: Record<string, never>;
  cast: { dtype: DType };
  unary: { op: UnaryOp };
  binary: { op: BinaryOp };
  compare: { op: CompareOp };
  where: Record<string, never>;
  reduce: { op: ReduceOp; axis: number };
  matmul: Record<string, never>;
  gather: { axis: number };
  scatterAdd: { axis: number; shape: Shape };
  topk: { k: number; indices: Tensor };
  random: { dist: Distribution; seed: number; counter: number };
}

export type PrimOp = keyof OpParams;

function record<O extends PrimOp>(op: O, params: OpParams[O], inputs: readonly Tensor[], out: Tensor): Tensor {
  if (isGradEnabled() && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, params, inputs, out } as GradNode;
  }
  return out;
}

function result(x: Tensor, buffer: Buffer, shape: Shape): Tensor {
  return Tensor.fromBuffer(x.backend, buffer, shape);
}

function view(x: Tensor, shape: Shape, strides: readonly number[], offset: number): Tensor {
  return new Tensor(x.backend, x.buffer, { shape: [...shape], strides: [...strides], offset });
}

function checkSameDevice(op: string, tensors: readonly Tensor[]): void {
  for (const t of tensors) {
    t.assertAlive(op);
    check(t.backend === tensors[0].backend, op,
      () => `tensors on different devices (${tensors.map((u) => u.device).join(', ')})`);
  }
}

function checkFloat(op: string, arg: string, x: Tensor): void {
  check(isFloat(x.dtype), op, () => `${arg} must be float32 or float64, got ${x.dtype}`);
}

function checkSameDtype(op: string, a: Tensor, b: Tensor, names = ['a', 'b']): void {
  check(a.dtype === b.dtype, op, () => `${names[0]} is ${a.dtype} but ${names[1]} is ${b.dtype}`);
}

function checkSameShapes(op: string, a: Tensor, b: Tensor, names = ['a', 'b']): void {
  check(sameShape(a.shape, b.shape), op, () => `${names[0]} ${fmtShape(a.shape)} and ${names[1]} ${fmtShape(b.shape)} differ in shape`);
}

// ---------------------------------------------------------------- views

/** Same elements, new shape. A view when x is contiguous, else a copy first. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  checkShape('reshape', 'shape', shape);
  check(numel(shape) === x.size, 'reshape', () => `cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(shape)}`);
  const src = x.isContiguous ? x : copy(x);
  return record('reshape', { shape }, [x], view(src, shape, contiguousStrides(shape), src.layout.offset));
}

/** Axes reordered: out.shape[i] = x.shape[axes[i]]. Always a view. */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  check(axes.length === x.rank && [...axes].sort((p, q) => p - q).every((a, i) => a === i), 'permute',
    () => `axes [${axes.join(',')}] are not a permutation of 0..${x.rank - 1}`);
  const { shape, strides, offset } = x.layout;
  return record('permute', { axes }, [x], view(x, axes.map((a) => shape[a]), axes.map((a) => strides[a]), offset));
}

/** Broadcast to `shape` (NumPy rules: new leading axes, or size-1 axes repeated) as a stride-0 view. */
export function expand(x: Tensor, shape: Shape): Tensor {
  checkShape('expand', 'shape', shape);
  const lead = shape.length - x.rank;
  check(lead >= 0 && x.shape.every((d, i) => d === shape[lead + i] || d === 1), 'expand',
    () => `cannot broadcast ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  const strides = shape.map((d, i) => (i < lead || x.shape[i - lead] !== d ? 0 : x.layout.strides[i - lead]));
  return record('expand', { shape }, [x], view(x, shape, strides, x.layout.offset));
}

/** x[starts[0]:ends[0], ..., starts[r-1]:ends[r-1]] (step 1) as a view. */
export function slice(x: Tensor, starts: readonly number[], ends: readonly number[]): Tensor {
  check(starts.length === x.rank && ends.length === x.rank, 'slice',
    () => `starts and ends need ${x.rank} entries for shape ${fmtShape(x.shape)}`);
  for (let i = 0; i < x.rank; i++) {
    check(Number.isInteger(starts[i]) && Number.isInteger(ends[i]) && starts[i] >= 0 && starts[i] <= ends[i] && ends[i] <= x.shape[i], 'slice',
      () => `range ${starts[i]}:${ends[i]} on axis ${i} is outside 0..${x.shape[i]} of ${fmtShape(x.shape)}`);
  }
  const offset = x.layout.offset + starts.reduce((s, st, i) => s + st * x.layout.strides[i], 0);
  return record('slice', { starts, ends }, [x], view(x, starts.map((s, i) => ends[i] - s), x.layout.strides, offset));
}

// ---------------------------------------------------------------- data movement

/** Zero padding: pads[axis] = [before, after], non-negative. */
export function pad(x: Tensor, pads: readonly (readonly [number, number])[]): Tensor {
  check(pads.length === x.rank && pads.every(([b, a]) => Number.isInteger(b) && Number.isInteger(a) && b >= 0 && a >= 0), 'pad',
    () => `pads must hold ${x.rank} non-negative integer pairs for shape ${fmtShape(x.shape)}`);
  checkSameDevice('pad', [x]);
  const buffer = kernelFor(x.backend, 'pad', x.dtype)({ buffer: x.buffer, layout: x.layout }, pads);
  return record('pad', { pads }, [x], result(x, buffer, x.shape.map((d, i) => d + pads[i][0] + pads[i][1])));
}

/** A contiguous copy (the identity for autograd). */
export function copy(x: Tensor): Tensor {
  checkSameDevice('copy', [x]);
  const buffer = kernelFor(x.backend, 'copy', x.dtype)({ buffer: x.buffer, layout: x.layout });
  return record('copy', {}, [x], result(x, buffer, x.shape));
}

export function cast(x: Tensor, dtype: DType): Tensor {
  checkSameDevice('cast', [x]);
  if (dtype === x.dtype) return x;
  const buffer = kernelFor(x.backend, 'cast', x.dtype)({ buffer: x.buffer, layout: x.layout }, dtype);
  return record('cast', { dtype }, [x], result(x, buffer, x.shape));
}

// ---------------------------------------------------------------- elementwise

export function unary(op: UnaryOp, x: Tensor): Tensor {
  checkSameDevice(op, [x]);
  checkFloat(op, 'x', x);
  const buffer = kernelFor(x.backend, 'unary', x.dtype)(op, { buffer: x.buffer, layout: x.layout });
  return record('unary', { op }, [x], result(x, buffer, x.shape));
}

export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  checkSameDevice(op, [a, b]);
  checkSameDtype(op, a, b);
  checkSameShapes(op, a, b);
  const buffer = kernelFor(a.backend, 'binary', a.dtype)(op, { buffer: a.buffer, layout: a.layout }, { buffer: b.buffer, layout: b.layout });
  return record('binary', { op }, [a, b], result(a, buffer, a.shape));
}

/** int32 mask: 1 where `a op b` holds. Not differentiable. */
export function compare(op: CompareOp, a: Tensor, b: Tensor): Tensor {
  checkSameDevice(op, [a, b]);
  checkSameDtype(op, a, b);
  checkSameShapes(op, a, b);
  const buffer = kernelFor(a.backend, 'compare', a.dtype)(op, { buffer: a.buffer, layout: a.layout }, { buffer: b.buffer, layout: b.layout });
  return record('compare', { op }, [a, b], result(a, buffer, a.shape));
}

/** cond ? a : b elementwise; cond int32 (nonzero is true). */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  checkSameDevice('where', [cond, a, b]);
  check(cond.dtype === 'int32', 'where', () => `cond must be int32, got ${cond.dtype}`);
  checkSameDtype('where', a, b);
  checkSameShapes('where', a, b);
  checkSameShapes('where', cond, a, ['cond', 'a']);
  const buffer = kernelFor(a.backend, 'where', a.dtype)(
    { buffer: cond.buffer, layout: cond.layout }, { buffer: a.buffer, layout: a.layout }, { buffer: b.buffer, layout: b.layout });
  return record('where', {}, [cond, a, b], result(a, buffer, a.shape));
}

// ---------------------------------------------------------------- reductions and products

/** sum or max over one axis (removed from the shape). */
export function reduce(op: ReduceOp, x: Tensor, axis: number): Tensor {
  checkSameDevice(op, [x]);
  check(Number.isInteger(axis) && axis >= 0 && axis < x.rank, op, () => `axis ${axis} out of range for ${fmtShape(x.shape)}`);
  const buffer = kernelFor(x.backend, 'reduce', x.dtype)(op, { buffer: x.buffer, layout: x.layout }, axis);
  return record('reduce', { op, axis }, [x], result(x, buffer, x.shape.filter((_, i) => i !== axis)));
}

/** a [...batch, M, K] · b [...batch, K, N] -> [...batch, M, N], identical batch shapes, float. */
export function matmulStrict(a: Tensor, b: Tensor): Tensor {
  checkSameDevice('matmul', [a, b]);
  checkFloat('matmul', 'a', a);
  checkSameDtype('matmul', a, b);
  const r = a.rank;
  check(r >= 2 && b.rank === r, 'matmul', () => `a ${fmtShape(a.shape)} and b ${fmtShape(b.shape)} need equal ranks of at least 2`);
  check(a.shape[r - 1] === b.shape[r - 2], 'matmul',
    () => `a ${fmtShape(a.shape)} and b ${fmtShape(b.shape)}: inner dimensions differ (${a.shape[r - 1]} vs ${b.shape[r - 2]})`);
  check(sameShape(a.shape.slice(0, r - 2), b.shape.slice(0, r - 2)), 'matmul',
    () => `a ${fmtShape(a.shape)} and b ${fmtShape(b.shape)}: batch shapes differ`);
  const buffer = kernelFor(a.backend, 'matmul', a.dtype)({ buffer: a.buffer, layout: a.layout }, { buffer: b.buffer, layout: b.layout });
  return record('matmul', {}, [a, b], result(a, buffer, [...a.shape.slice(0, r - 1), b.shape[r - 1]]));
}

/** Host-side range check of an int32 index tensor (device backends check in their kernels). */
function checkIndexRange(op: string, index: Tensor, limit: number, axis: number, xShape: Shape): void {
  if (!index.backend.host) return;
  const data = index.toArray();
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    check(v >= 0 && v < limit, op,
      () => `index value ${v} at flat position ${i} of index ${fmtShape(index.shape)} is out of range 0..${limit - 1} for axis ${axis} of ${fmtShape(xShape)}`);
  }
}

/** take-along-axis: out[.., i, ..] = x[.., index[.., i, ..], ..] along `axis`; out has index's shape. */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  checkSameDevice('gather', [x, index]);
  check(index.dtype === 'int32', 'gather', () => `index must be int32, got ${index.dtype}`);
  check(Number.isInteger(axis) && axis >= 0 && axis < x.rank, 'gather', () => `axis ${axis} out of range for ${fmtShape(x.shape)}`);
  check(index.rank === x.rank && index.shape.every((d, i) => i === axis || d <= x.shape[i]), 'gather',
    () => `index ${fmtShape(index.shape)} must have x's rank and fit inside x ${fmtShape(x.shape)} off axis ${axis}`);
  checkIndexRange('gather', index, x.shape[axis], axis, x.shape);
  const buffer = kernelFor(x.backend, 'gather', x.dtype)({ buffer: x.buffer, layout: x.layout }, axis, { buffer: index.buffer, layout: index.layout });
  return record('gather', { axis }, [x, index], result(x, buffer, index.shape));
}

/** out = zeros(shape); out[.., index[.., i, ..], ..] += src[.., i, ..] along axis (the adjoint of gather). */
export function scatterAdd(src: Tensor, axis: number, index: Tensor, shape: Shape): Tensor {
  checkSameDevice('scatterAdd', [src, index]);
  checkShape('scatterAdd', 'shape', shape);
  check(index.dtype === 'int32', 'scatterAdd', () => `index must be int32, got ${index.dtype}`);
  checkSameShapes('scatterAdd', src, index, ['src', 'index']);
  check(Number.isInteger(axis) && axis >= 0 && axis < shape.length, 'scatterAdd', () => `axis ${axis} out of range for ${fmtShape(shape)}`);
  check(src.rank === shape.length && src.shape.every((d, i) => i === axis || d <= shape[i]), 'scatterAdd',
    () => `src ${fmtShape(src.shape)} must have the output's rank and fit inside ${fmtShape(shape)} off axis ${axis}`);
  checkIndexRange('scatterAdd', index, shape[axis], axis, shape);
  const buffer = kernelFor(src.backend, 'scatterAdd', src.dtype)(
    { buffer: src.buffer, layout: src.layout }, axis, { buffer: index.buffer, layout: index.layout }, shape);
  return record('scatterAdd', { axis, shape }, [src, index], result(src, buffer, shape));
}

/**
 * The k largest entries along the last axis: [values, indices], each
 * [..., k]. Order: descending value; ties to the lower index first; NaN ranks
 * above every number. Values are differentiable (gradient flows to the
 * selected entries only); indices are int32 and are not.
 */
export function topk(x: Tensor, k: number): [Tensor, Tensor] {
  checkSameDevice('topk', [x]);
  check(x.rank >= 1, 'topk', () => 'x must have at least one axis');
  const n = x.shape[x.rank - 1];
  check(Number.isInteger(k) && k >= 0 && k <= n, 'topk', () => `k = ${k} must be an integer in 0..${n} (last axis of ${fmtShape(x.shape)})`);
  const [vb, ib] = kernelFor(x.backend, 'topk', x.dtype)({ buffer: x.buffer, layout: x.layout }, k);
  const outShape = [...x.shape.slice(0, -1), k];
  const indices = result(x, ib, outShape);
  const values = record('topk', { k, indices }, [x], result(x, vb, outShape));
  return [values, indices];
}

/** Counter-based random draws (src/tensor/random.ts): element i uses counter `counter + i`. */
export function random(device: Backend, dist: Distribution, shape: Shape, dtype: DType, seed: number, counter: number): Tensor {
  checkShape('random', 'shape', shape);
  check(isFloat(dtype), 'random', () => `dtype must be float32 or float64, got ${dtype}`);
  check(Number.isInteger(seed) && Number.isInteger(counter) && counter >= 0, 'random', () => `seed ${seed} and counter ${counter} must be integers`);
  const buffer = kernelFor(device, 'random', dtype)(dist, dtype, numel(shape), seed, counter);
  return record('random', { dist, seed, counter }, [], Tensor.fromBuffer(device, buffer, shape));
}
