/**
 * The tensor math API: the primitives of ./primitives.ts made convenient.
 * Everything here is a composite: broadcasting is `expand`, keepdims is
 * `reshape`, a scalar operand is a rank-0 tensor of the other operand's dtype
 * and device, `mean` is sum then divide. Gradients therefore come from the
 * primitives' rules alone.
 */

import * as P from './primitives.js';
import { broadcastShapes, normalizeAxis, sameShape, type Shape } from '../tensor/shape.js';
import { check, fmtShape } from '../tensor/errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { arange, full } from '../tensor/create.js';

export type TensorLike = Tensor | number;

export { reshape, permute, expand, slice, pad, copy, cast, where as whereStrict, gather, scatterAdd, topk } from './primitives.js';

/** Turns numbers into rank-0 tensors matching `like`. */
function lift(x: TensorLike, like: Tensor): Tensor {
  return typeof x === 'number' ? full([], x, { dtype: like.dtype, device: like.backend }) : x;
}

/** Broadcasts a group of operands to their common shape. */
function broadcastAll(op: string, xs: Tensor[]): Tensor[] {
  const shape = xs.reduce<number[]>((s, x) => broadcastShapes(op, s, x.shape), []);
  return xs.map((x) => (sameShape(x.shape, shape) ? x : P.expand(x, shape)));
}

function binaryOp(op: 'add' | 'sub' | 'mul' | 'div', a: TensorLike, b: TensorLike): Tensor {
  check(typeof a !== 'number' || typeof b !== 'number', op, () => 'at least one operand must be a tensor');
  const ta = typeof a === 'number' ? lift(a, b as Tensor) : a;
  const tb = lift(b, ta);
  const [x, y] = broadcastAll(op, [ta, tb]);
  return P.binary(op, x, y);
}

export const add = (a: TensorLike, b: TensorLike): Tensor => binaryOp('add', a, b);
export const sub = (a: TensorLike, b: TensorLike): Tensor => binaryOp('sub', a, b);
export const mul = (a: TensorLike, b: TensorLike): Tensor => binaryOp('mul', a, b);
export const div = (a: TensorLike, b: TensorLike): Tensor => binaryOp('div', a, b);

export const neg = (x: Tensor): Tensor => P.unary('neg', x);
export const exp = (x: Tensor): Tensor => P.unary('exp', x);
export const log = (x: Tensor): Tensor => P.unary('log', x);
export const sqrt = (x: Tensor): Tensor => P.unary('sqrt', x);
export const sin = (x: Tensor): Tensor => P.unary('sin', x);
export const cos = (x: Tensor): Tensor => P.unary('cos', x);
export const tanh = (x: Tensor): Tensor => P.unary('tanh', x);
export const erf = (x: Tensor): Tensor => P.unary('erf', x);
export const square = (x: Tensor): Tensor => P.binary('mul', x, x);
export const rsqrt = (x: Tensor): Tensor => div(1, sqrt(x));

function compareOp(op: 'lt' | 'le' | 'eq', a: TensorLike, b: TensorLike): Tensor {
  check(typeof a !== 'number' || typeof b !== 'number', op, () => 'at least one operand must be a tensor');
  const ta = typeof a === 'number' ? lift(a, b as Tensor) : a;
  const [x, y] = broadcastAll(op, [ta, lift(b, ta)]);
  return P.compare(op, x, y);
}

/** int32 masks (1 where true). */
export const lt = (a: TensorLike, b: TensorLike): Tensor => compareOp('lt', a, b);
export const le = (a: TensorLike, b: TensorLike): Tensor => compareOp('le', a, b);
export const gt = (a: TensorLike, b: TensorLike): Tensor => compareOp('lt', b, a);
export const ge = (a: TensorLike, b: TensorLike): Tensor => compareOp('le', b, a);
export const eq = (a: TensorLike, b: TensorLike): Tensor => compareOp('eq', a, b);

/** cond ? a : b with broadcasting; cond int32. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const like = typeof a === 'number' ? (b as Tensor) : a;
  const [c, x, y] = broadcastAll('where', [cond, lift(a, like), lift(b, like)]);
  return P.where(c, x, y);
}

/** max(x, 0), with gradient 1 where x > 0 and 0 elsewhere (x = 0 included). */
export const relu = (x: Tensor): Tensor => where(gt(x, 0), x, 0);
export const sigmoid = (x: Tensor): Tensor => div(1, add(exp(neg(x)), 1));

/** Axes normalised, sorted descending (so removing them one by one keeps the others' numbers). */
function axesOf(op: string, x: Tensor, axis: number | readonly number[] | undefined): number[] {
  const list = axis === undefined ? x.shape.map((_, i) => i) : typeof axis === 'number' ? [axis] : [...axis];
  const norm = list.map((a) => normalizeAxis(op, a, x.rank));
  check(new Set(norm).size === norm.length, op, () => `repeated axis in [${list.join(',')}]`);
  return norm.sort((p, q) => q - p);
}

function keepDimsShape(shape: Shape, axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Sum over `axis` (all axes when omitted). */
export function sum(x: Tensor, axis?: number | readonly number[], keepdims = false): Tensor {
  const axes = axesOf('sum', x, axis);
  let y = x;
  for (const a of axes) y = P.reduce('sum', y, a);
  return keepdims ? P.reshape(y, keepDimsShape(x.shape, axes)) : y;
}

export function mean(x: Tensor, axis?: number | readonly number[], keepdims = false): Tensor {
  const axes = axesOf('mean', x, axis);
  const count = axes.reduce((n, a) => n * x.shape[a], 1);
  return div(sum(x, axes, keepdims), count);
}

/** Max over `axis` (all axes when omitted). Gradient: shared equally by tied maxima. */
export function max(x: Tensor, axis?: number | readonly number[], keepdims = false): Tensor {
  const axes = axesOf('max', x, axis);
  let y = x;
  for (const a of axes) y = P.reduce('max', y, a);
  return keepdims ? P.reshape(y, keepDimsShape(x.shape, axes)) : y;
}

/** Sums a broadcast gradient back to `shape` (the adjoint of expand). */
export function sumTo(x: Tensor, shape: Shape): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const lead = x.rank - shape.length;
  check(lead >= 0, 'sumTo', () => `cannot sum ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  const axes = x.shape.map((_, i) => i).filter((i) => i < lead || (shape[i - lead] === 1 && x.shape[i] !== 1));
  let y = sum(x, axes, true);
  if (lead > 0) y = P.reshape(y, shape);
  return y;
}

/** Swaps two axes (a view). */
export function transpose(x: Tensor, a0 = -2, a1 = -1): Tensor {
  const i = normalizeAxis('transpose', a0, x.rank);
  const j = normalizeAxis('transpose', a1, x.rank);
  const axes = x.shape.map((_, k) => (k === i ? j : k === j ? i : k));
  return P.permute(x, axes);
}

/** Inserts a size-1 axis at `axis`. */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normalizeAxis('unsqueeze', axis, x.rank + 1);
  return P.reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

/** Makes x row-major (a no-op when it already is). */
export const contiguous = (x: Tensor): Tensor => (x.isContiguous ? x : P.copy(x));

/**
 * NumPy matmul: 1-D operands are promoted (and the added axis removed after),
 * batch axes broadcast. a [..., M, K] · b [..., K, N] -> [..., M, N].
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  check(a.rank >= 1 && b.rank >= 1, 'matmul', () => `operands must have rank >= 1, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const x = a.rank === 1 ? P.reshape(a, [1, a.shape[0]]) : a;
  const y = b.rank === 1 ? P.reshape(b, [b.shape[0], 1]) : b;
  check(x.shape[x.rank - 1] === y.shape[y.rank - 2], 'matmul',
    () => `a ${fmtShape(a.shape)} and b ${fmtShape(b.shape)}: inner dimensions differ (${x.shape[x.rank - 1]} vs ${y.shape[y.rank - 2]})`);
  const batch = broadcastShapes('matmul', x.shape.slice(0, -2), y.shape.slice(0, -2));
  const xb = sameShape(x.shape.slice(0, -2), batch) ? x : P.expand(x, [...batch, ...x.shape.slice(-2)]);
  const yb = sameShape(y.shape.slice(0, -2), batch) ? y : P.expand(y, [...batch, ...y.shape.slice(-2)]);
  let out = P.matmulStrict(xb, yb);
  if (a.rank === 1) out = P.reshape(out, [...out.shape.slice(0, -2), out.shape[out.rank - 1]]);
  if (b.rank === 1) out = P.reshape(out, out.shape.slice(0, -1));
  return out;
}

/** Joins tensors along `axis` (composed of pad and add, so its gradient is slicing). */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  check(xs.length > 0, 'concat', () => 'needs at least one tensor');
  const a = normalizeAxis('concat', axis, xs[0].rank);
  const total = xs.reduce((n, x) => n + x.shape[a], 0);
  let out: Tensor | null = null;
  let at = 0;
  for (const x of xs) {
    check(x.rank === xs[0].rank && x.shape.every((d, i) => i === a || d === xs[0].shape[i]), 'concat',
      () => `shapes ${xs.map((t) => fmtShape(t.shape)).join(', ')} differ off axis ${a}`);
    const pads = x.shape.map((_, i): [number, number] => (i === a ? [at, total - at - x.shape[a]] : [0, 0]));
    const padded = P.pad(x, pads);
    out = out ? P.binary('add', out, padded) : padded;
    at += x.shape[a];
  }
  return out as Tensor;
}

/** Selects slices along `axis` by an int32 index vector: out.shape[axis] = index.length (gather with a broadcast index). */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  const a = normalizeAxis('indexSelect', axis, x.rank);
  check(index.rank === 1, 'indexSelect', () => `index must be 1-D, got ${fmtShape(index.shape)}`);
  const shape = x.shape.map((d, i) => (i === a ? index.shape[0] : d));
  const viewShape = x.shape.map((_, i) => (i === a ? index.shape[0] : 1));
  return P.gather(x, a, P.expand(P.reshape(index, viewShape), shape));
}

/** One-hot rows: [...] int32 class ids -> [..., depth] of `dtype`. */
export function oneHot(index: Tensor, depth: number, dtype: DType = 'float32'): Tensor {
  const classes = arange(0, depth, { dtype: 'int32', device: index.backend });
  return P.cast(eq(unsqueeze(index, -1), classes), dtype);
}
