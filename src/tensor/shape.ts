/**
 * Shapes, strides and layouts. A layout says where each element of a logical
 * n-d array lives in a flat buffer: element (i0, ..., in-1) is at
 * `offset + Σ ik·strides[k]`. Views (reshape of contiguous data, permute,
 * slice, broadcast) only make new layouts; kernels read through them.
 *
 * Invariants: strides are in elements, not bytes; a broadcast axis has
 * stride 0; a contiguous layout has row-major strides and any offset.
 */

import { check, fmtShape } from './errors.js';

export type Shape = readonly number[];

export interface Layout {
  readonly shape: Shape;
  readonly strides: readonly number[];
  readonly offset: number;
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides: the last axis moves fastest. */
export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function isContiguous(layout: Layout): boolean {
  let s = 1;
  for (let i = layout.shape.length - 1; i >= 0; i--) {
    if (layout.shape[i] !== 1 && layout.strides[i] !== s) return false;
    s *= layout.shape[i];
  }
  return true;
}

export function contiguousLayout(shape: Shape): Layout {
  return { shape, strides: contiguousStrides(shape), offset: 0 };
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** NumPy broadcasting: align right, each pair equal or one of them 1. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    check(da === db || da === 1 || db === 1, op,
      () => `shapes ${fmtShape(a)} and ${fmtShape(b)} do not broadcast (axis ${i - n}: ${da} vs ${db})`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Resolves a possibly negative axis against a rank, with a clear error. */
export function normalizeAxis(op: string, axis: number, rank: number): number {
  check(Number.isInteger(axis) && axis >= -rank && axis < rank, op,
    () => `axis ${axis} is out of range for a tensor of rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

export function checkShape(op: string, arg: string, shape: Shape): void {
  check(shape.every((d) => Number.isInteger(d) && d >= 0), op,
    () => `${arg}: shape ${fmtShape(shape)} must hold non-negative integers`);
}

/**
 * Flat buffer offsets of every element of a layout, in row-major order of the
 * logical index. O(numel) memory: meant for the reference backend, where being
 * obviously right matters more than speed.
 */
export function elementOffsets(layout: Layout): Int32Array {
  const { shape, strides, offset } = layout;
  const n = numel(shape);
  const out = new Int32Array(n);
  if (n === 0) return out;
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let off = offset;
  for (let i = 0; i < n; i++) {
    out[i] = off;
    // Increment the multi-index like an odometer, updating the offset.
    for (let ax = rank - 1; ax >= 0; ax--) {
      idx[ax]++;
      off += strides[ax];
      if (idx[ax] < shape[ax]) break;
      off -= strides[ax] * shape[ax];
      idx[ax] = 0;
    }
  }
  return out;
}
