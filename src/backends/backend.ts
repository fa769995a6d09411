/**
 * The backend interface: what a device must do to run sparselm's primitive ops.
 *
 * Kernels see buffers and layouts, never tensors or model objects. The tensor
 * layer has already resolved broadcasting (as stride-0 views), negative axes
 * and output shapes, and checked dtypes and ranges; a kernel only computes.
 * Every kernel writes a fresh, contiguous output buffer allocated by the same
 * backend.
 *
 * The reference backend implements every kernel. Faster backends may answer
 * `supports(kernel) === false` for some; see `runKernel` in src/ops for what
 * happens then (host backends share buffers with the reference and fall back
 * to it; a device backend throws an error naming the kernel and the backend).
 */

import type { DataArray, DType } from '../tensor/dtype.js';
import type { Distribution } from '../tensor/random.js';
import type { Layout, Shape } from '../tensor/shape.js';

/** A backend's storage: one flat array of elements of one dtype. */
export interface Buffer {
  readonly backend: string;
  readonly dtype: DType;
  readonly length: number;
}

/** Host buffers (ref, cpu) are plain typed arrays, so host backends share them without copies. */
export interface HostBuffer extends Buffer {
  readonly data: DataArray;
}

/** A buffer read through a layout. */
export interface View<B extends Buffer = Buffer> {
  readonly buffer: B;
  readonly layout: Layout;
}

export type UnaryOp = 'neg' | 'exp' | 'log' | 'sqrt' | 'sin' | 'cos' | 'tanh' | 'erf';
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';
export type CompareOp = 'lt' | 'le' | 'eq';
export type ReduceOp = 'sum' | 'max';

export const UNARY_OPS: readonly UnaryOp[] = ['neg', 'exp', 'log', 'sqrt', 'sin', 'cos', 'tanh', 'erf'];
export const BINARY_OPS: readonly BinaryOp[] = ['add', 'sub', 'mul', 'div'];
export const COMPARE_OPS: readonly CompareOp[] = ['lt', 'le', 'eq'];
export const REDUCE_OPS: readonly ReduceOp[] = ['sum', 'max'];

/**
 * The kernels. Shapes in comments; every `x`, `a`, `b` is a view whose shape is
 * already the one stated (broadcasting resolved by the caller).
 */
export interface Kernels<B extends Buffer = Buffer> {
  /** out[i] = op(x[i]); out has x's shape and dtype (float). */
  unary(op: UnaryOp, x: View<B>): B;
  /** out[i] = a[i] op b[i]; a, b same shape and dtype. int32 div truncates toward zero. */
  binary(op: BinaryOp, a: View<B>, b: View<B>): B;
  /** out[i] = (a[i] op b[i]) ? 1 : 0, as int32. NaN compares false. */
  compare(op: CompareOp, a: View<B>, b: View<B>): B;
  /** out[i] = cond[i] != 0 ? a[i] : b[i]; cond int32; a, b same dtype. */
  where(cond: View<B>, a: View<B>, b: View<B>): B;
  /** Reduce over `axis`: out has x's shape without that axis. max of an empty axis is -Infinity, sum 0. */
  reduce(op: ReduceOp, x: View<B>, axis: number): B;
  /** Batched matmul: a [...batch, M, K], b [...batch, K, N] (identical batch shapes) -> [...batch, M, N]. */
  matmul(a: View<B>, b: View<B>): B;
  /** take-along-axis: out[..i..] = x[..index[..i..]..] along `axis`; index int32 with index.shape == out shape. */
  gather(x: View<B>, axis: number, index: View<B>): B;
  /** out = zeros(shape); out[..index[..i..]..] += src[..i..] along `axis`; src and index share a shape. */
  scatterAdd(src: View<B>, axis: number, index: View<B>, shape: Shape): B;
  /**
   * The k largest entries along the last axis: values [..., k] (x's dtype) and
   * indices [..., k] (int32). Order: descending value; ties go to the lower
   * index first; NaN counts as larger than every number.
   */
  topk(x: View<B>, k: number): [B, B];
  /** A contiguous copy of a view. */
  copy(x: View<B>): B;
  /** A contiguous copy converted to `dtype` (float to int32 truncates toward zero). */
  cast(x: View<B>, dtype: DType): B;
  /** Zero padding: pads[axis] = [before, after]. */
  pad(x: View<B>, pads: readonly (readonly [number, number])[]): B;
  /** `length` draws of `dist` for counters counterBase..counterBase+length-1 (src/tensor/random.ts). */
  random(dist: Distribution, dtype: DType, length: number, seed: number, counterBase: number): B;
}

export type KernelName = keyof Kernels;

export const KERNEL_NAMES: readonly KernelName[] = [
  'unary', 'binary', 'compare', 'where', 'reduce', 'matmul', 'gather', 'scatterAdd', 'topk', 'copy', 'cast', 'pad', 'random',
];

export interface Backend<B extends Buffer = Buffer> {
  readonly name: string;
  /** True when buffers are HostBuffers (typed arrays in this thread). */
  readonly host: boolean;
  /** Does this backend have its own kernel for `kernel` on inputs of `dtype`? */
  supports(kernel: KernelName, dtype: DType): boolean;
  /** The backend's own kernels; total for ref, possibly partial elsewhere (see `supports`). */
  readonly kernels: Partial<Kernels<B>>;
  /** A buffer holding a copy of `data`. */
  fromArray(data: DataArray): B;
  /** The buffer's contents as a typed array (a copy for device backends; may alias for host ones). */
  toArray(buffer: B): DataArray;
  /** Releases a buffer's memory now (host buffers: a no-op, the garbage collector owns them). */
  free(buffer: B): void;
}
