/**
 * Making tensors: from data, constants, ranges and seeded random draws.
 * Every creator takes `{ dtype, device }`; the defaults are float32 on 'cpu'.
 */

import type { Backend } from '../backends/backend.js';
import { getBackend, type DeviceName } from '../backends/registry.js';
import { random } from '../ops/primitives.js';
import { allocArray, dtypeOfArray, type DataArray, type DType } from './dtype.js';
import { check, fmtShape } from './errors.js';
import type { Distribution, Rng } from './random.js';
import { checkShape, numel, type Shape } from './shape.js';
import { Tensor } from './tensor.js';

export interface CreateOptions {
  dtype?: DType;
  device?: DeviceName | string | Backend;
  requiresGrad?: boolean;
}

export function resolveDevice(device: CreateOptions['device']): Backend {
  if (device === undefined) return getBackend('cpu');
  return typeof device === 'string' ? getBackend(device) : device;
}

type Nested = number | readonly Nested[];

function flatten(data: Nested, shape: number[], out: number[], depth: number): void {
  if (typeof data === 'number') {
    check(depth === shape.length || shape.length === depth, 'tensor', () => 'ragged nested array');
    out.push(data);
    return;
  }
  if (shape.length === depth) shape.push(data.length);
  check(shape[depth] === data.length, 'tensor', () => `ragged nested array: axis ${depth} has lengths ${shape[depth]} and ${data.length}`);
  for (const d of data) flatten(d, shape, out, depth + 1);
}

/**
 * A tensor from a typed array or (nested) numbers. With a flat array, `shape`
 * defaults to [length]; with nested arrays it is inferred.
 */
export function tensor(data: DataArray | Nested, shape?: Shape, opts: CreateOptions = {}): Tensor {
  let flat: DataArray;
  let inferred: number[];
  if (ArrayBuffer.isView(data)) {
    const dtype = opts.dtype ?? dtypeOfArray(data);
    flat = dtype === dtypeOfArray(data) ? data : copyInto(allocArray(dtype, data.length), data);
    inferred = [data.length];
  } else {
    const values: number[] = [];
    inferred = [];
    flatten(data, inferred, values, 0);
    flat = copyInto(allocArray(opts.dtype ?? 'float32', values.length), values);
  }
  const finalShape = shape ?? inferred;
  checkShape('tensor', 'shape', finalShape);
  check(numel(finalShape) === flat.length, 'tensor', () => `${flat.length} values do not fill shape ${fmtShape(finalShape)}`);
  const backend = resolveDevice(opts.device);
  const t = Tensor.fromBuffer(backend, backend.fromArray(flat), finalShape);
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

function copyInto(dst: DataArray, src: ArrayLike<number>): DataArray {
  for (let i = 0; i < src.length; i++) dst[i] = dst instanceof Int32Array ? Math.trunc(src[i]) : src[i];
  return dst;
}

export function full(shape: Shape, value: number, opts: CreateOptions = {}): Tensor {
  checkShape('full', 'shape', shape);
  const data = allocArray(opts.dtype ?? 'float32', numel(shape));
  data.fill(value);
  return tensor(data, shape, opts);
}

export function zeros(shape: Shape, opts: CreateOptions = {}): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: Shape, opts: CreateOptions = {}): Tensor {
  return full(shape, 1, opts);
}

/** A rank-0 tensor. */
export function scalar(value: number, opts: CreateOptions = {}): Tensor {
  return full([], value, opts);
}

/** [start, start+1, ..., end-1] (int32 by default). */
export function arange(start: number, end: number, opts: CreateOptions = {}): Tensor {
  const n = Math.max(0, end - start);
  const data = allocArray(opts.dtype ?? 'int32', n);
  for (let i = 0; i < n; i++) data[i] = start + i;
  return tensor(data, [n], opts);
}

/** A draw from `rng` (it advances by the number of elements). */
export function randomTensor(dist: Distribution, shape: Shape, rng: Rng, opts: CreateOptions = {}): Tensor {
  checkShape(dist, 'shape', shape);
  const t = random(resolveDevice(opts.device), dist, shape, opts.dtype ?? 'float32', rng.seed, rng.take(numel(shape)));
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

export const rand = (shape: Shape, rng: Rng, opts?: CreateOptions): Tensor => randomTensor('uniform', shape, rng, opts);
export const randn = (shape: Shape, rng: Rng, opts?: CreateOptions): Tensor => randomTensor('normal', shape, rng, opts);
export const gumbel = (shape: Shape, rng: Rng, opts?: CreateOptions): Tensor => randomTensor('gumbel', shape, rng, opts);
