/**
 * The reference backend: plain TypeScript, every kernel, every dtype.
 *
 * This file is the specification the other backends are tested against, so it
 * is written to be obviously right rather than fast: each kernel lists the
 * flat offsets of its inputs (elementOffsets) and loops over output elements
 * in row-major order. Float reductions and matmul accumulate in float64 and
 * round once on store, so ref is at least as accurate as any fast path.
 */

import type {
  Backend, BinaryOp, CompareOp, HostBuffer, KernelName, Kernels, ReduceOp, UnaryOp, View,
} from '../backend.js';
import { allocArray, dtypeOfArray, type DataArray, type DType } from '../../tensor/dtype.js';
import { sample, type Distribution } from '../../tensor/random.js';
import { contiguousStrides, elementOffsets, numel } from '../../tensor/shape.js';

export function hostBuffer(backend: string, data: DataArray): HostBuffer {
  return { backend, dtype: dtypeOfArray(data), length: data.length, data };
}

/** erf to float64 accuracy (|error| < 1.2e-16 relative), via its Taylor series near 0 and continued fraction beyond. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // erf(x) = 2/sqrt(pi) Σ (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 100; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const r = sum * 1.1283791670955126;
    return x < 0 ? -r : r;
  }
  if (ax > 6) return x < 0 ? -1 : 1;
  // erfc(x) = exp(-x²)/sqrt(pi) · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) (Lentz's continued fraction, evaluated backwards)
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + (n / 2) / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
}

export function unaryFn(op: UnaryOp): (x: number) => number {
  switch (op) {
    case 'neg': return (x) => -x;
    case 'exp': return Math.exp;
    case 'log': return Math.log;
    case 'sqrt': return Math.sqrt;
    case 'sin': return Math.sin;
    case 'cos': return Math.cos;
    case 'tanh': return Math.tanh;
    case 'erf': return erf;
    default: return op satisfies never;
  }
}

export function binaryFn(op: BinaryOp, dtype: DType): (a: number, b: number) => number {
  switch (op) {
    case 'add': return (a, b) => a + b;
    case 'sub': return (a, b) => a - b;
    case 'mul': return dtype === 'int32' ? Math.imul : (a, b) => a * b;
    case 'div': return dtype === 'int32' ? (a, b) => Math.trunc(a / b) : (a, b) => a / b;
    default: return op satisfies never;
  }
}

export function compareFn(op: CompareOp): (a: number, b: number) => boolean {
  switch (op) {
    case 'lt': return (a, b) => a < b;
    case 'le': return (a, b) => a <= b;
    case 'eq': return (a, b) => a === b;
    default: return op satisfies never;
  }
}

/** Descending by value, NaN first, ties by ascending index: the top-k order contract. */
export function topkBefore(va: number, ia: number, vb: number, ib: number): boolean {
  const na = Number.isNaN(va);
  const nb = Number.isNaN(vb);
  if (na || nb) return na && (!nb || ia < ib);
  return va > vb || (va === vb && ia < ib);
}

function makeRefKernels(name: string): Kernels<HostBuffer> {
  const out = (dtype: DType, n: number): HostBuffer => hostBuffer(name, allocArray(dtype, n));

  /** Iterates an axis of a view: calls fn(outIndex, baseOffset) for every position of the other axes. */
  function forEachLine(view: View<HostBuffer>, axis: number, fn: (o: number, base: number) => void): void {
    const { shape, strides, offset } = view.layout;
    const rest = shape.filter((_, i) => i !== axis);
    const restStrides = strides.filter((_, i) => i !== axis);
    const bases = elementOffsets({ shape: rest, strides: restStrides, offset });
    for (let o = 0; o < bases.length; o++) fn(o, bases[o]);
  }

  return {
    unary(op, x) {
      const f = unaryFn(op);
      const ox = elementOffsets(x.layout);
      const r = out(x.buffer.dtype, ox.length);
      for (let i = 0; i < ox.length; i++) r.data[i] = f(x.buffer.data[ox[i]]);
      return r;
    },
    binary(op, a, b) {
      const f = binaryFn(op, a.buffer.dtype);
      const oa = elementOffsets(a.layout);
      const ob = elementOffsets(b.layout);
      const r = out(a.buffer.dtype, oa.length);
      for (let i = 0; i < oa.length; i++) r.data[i] = f(a.buffer.data[oa[i]], b.buffer.data[ob[i]]);
      return r;
    },
    compare(op, a, b) {
      const f = compareFn(op);
      const oa = elementOffsets(a.layout);
      const ob = elementOffsets(b.layout);
      const r = out('int32', oa.length);
      for (let i = 0; i < oa.length; i++) r.data[i] = f(a.buffer.data[oa[i]], b.buffer.data[ob[i]]) ? 1 : 0;
      return r;
    },
    where(cond, a, b) {
      const oc = elementOffsets(cond.layout);
      const oa = elementOffsets(a.layout);
      const ob = elementOffsets(b.layout);
      const r = out(a.buffer.dtype, oa.length);
      for (let i = 0; i < oa.length; i++) {
        r.data[i] = cond.buffer.data[oc[i]] !== 0 ? a.buffer.data[oa[i]] : b.buffer.data[ob[i]];
      }
      return r;
    },
    reduce(op: ReduceOp, x, axis) {
      const n = x.layout.shape[axis];
      const stride = x.layout.strides[axis];
      const r = out(x.buffer.dtype, numel(x.layout.shape.filter((_, i) => i !== axis)));
      const d = x.buffer.data;
      forEachLine(x, axis, (o, base) => {
        let acc = op === 'sum' ? 0 : -Infinity;
        for (let j = 0; j < n; j++) {
          const v = d[base + j * stride];
          if (op === 'sum') acc += v;
          else if (!(acc >= v)) acc = Number.isNaN(acc) ? acc : v; // max propagates NaN
        }
        r.data[o] = acc;
      });
      return r;
    },
    matmul(a, b) {
      const as = a.layout.shape;
      const rank = as.length;
      const M = as[rank - 2];
      const K = as[rank - 1];
      const N = b.layout.shape[rank - 1];
      const batch = as.slice(0, rank - 2);
      const nb = numel(batch);
      const aBase = elementOffsets({ shape: batch, strides: a.layout.strides.slice(0, rank - 2), offset: a.layout.offset });
      const bBase = elementOffsets({ shape: batch, strides: b.layout.strides.slice(0, rank - 2), offset: b.layout.offset });
      const [asm, ask] = [a.layout.strides[rank - 2], a.layout.strides[rank - 1]];
      const [bsk, bsn] = [b.layout.strides[rank - 2], b.layout.strides[rank - 1]];
      const r = out(a.buffer.dtype, nb * M * N);
      const ad = a.buffer.data;
      const bd = b.buffer.data;
      for (let p = 0; p < nb; p++) {
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) {
            let acc = 0;
            for (let k = 0; k < K; k++) acc += ad[aBase[p] + i * asm + k * ask] * bd[bBase[p] + k * bsk + j * bsn];
            r.data[(p * M + i) * N + j] = acc;
          }
        }
      }
      return r;
    },
    gather(x, axis, index) {
      const oi = elementOffsets(index.layout);
      const shape = index.layout.shape;
      const r = out(x.buffer.dtype, oi.length);
      const outStrides = contiguousStrides(shape);
      for (let i = 0; i < oi.length; i++) {
        let off = x.layout.offset;
        for (let ax = 0; ax < shape.length; ax++) {
          const pos = Math.floor(i / outStrides[ax]) % shape[ax];
          off += (ax === axis ? index.buffer.data[oi[i]] : pos) * x.layout.strides[ax];
        }
        r.data[i] = x.buffer.data[off];
      }
      return r;
    },
    scatterAdd(src, axis, index, shape) {
      const os = elementOffsets(src.layout);
      const oi = elementOffsets(index.layout);
      const srcShape = src.layout.shape;
      const r = out(src.buffer.dtype, numel(shape));
      const target = contiguousStrides(shape);
      const srcStrides = contiguousStrides(srcShape);
      for (let i = 0; i < os.length; i++) {
        let off = 0;
        for (let ax = 0; ax < srcShape.length; ax++) {
          const pos = Math.floor(i / srcStrides[ax]) % srcShape[ax];
          off += (ax === axis ? index.buffer.data[oi[i]] : pos) * target[ax];
        }
        r.data[off] += src.buffer.data[os[i]];
      }
      return r;
    },
    topk(x, k) {
      const rank = x.layout.shape.length;
      const n = x.layout.shape[rank - 1];
      const stride = x.layout.strides[rank - 1];
      const rows = numel(x.layout.shape.slice(0, rank - 1));
      const values = out(x.buffer.dtype, rows * k);
      const indices = out('int32', rows * k);
      const d = x.buffer.data;
      forEachLine(x, rank - 1, (row, base) => {
        const order = Array.from({ length: n }, (_, j) => j);
        order.sort((i, j) => (topkBefore(d[base + i * stride], i, d[base + j * stride], j) ? -1 : 1));
        for (let j = 0; j < k; j++) {
          values.data[row * k + j] = d[base + order[j] * stride];
          indices.data[row * k + j] = order[j];
        }
      });
      return [values, indices];
    },
    copy(x) {
      const ox = elementOffsets(x.layout);
      const r = out(x.buffer.dtype, ox.length);
      for (let i = 0; i < ox.length; i++) r.data[i] = x.buffer.data[ox[i]];
      return r;
    },
    cast(x, dtype) {
      const ox = elementOffsets(x.layout);
      const r = out(dtype, ox.length);
      // Typed-array stores round to float32 and truncate to int32 (toward zero) by themselves.
      for (let i = 0; i < ox.length; i++) r.data[i] = dtype === 'int32' ? Math.trunc(x.buffer.data[ox[i]]) : x.buffer.data[ox[i]];
      return r;
    },
    pad(x, pads) {
      const shape = x.layout.shape;
      const outShape = shape.map((d, i) => d + pads[i][0] + pads[i][1]);
      const outStrides = contiguousStrides(outShape);
      const ox = elementOffsets(x.layout);
      const inStrides = contiguousStrides(shape);
      const r = out(x.buffer.dtype, numel(outShape));
      for (let i = 0; i < ox.length; i++) {
        let off = 0;
        for (let ax = 0; ax < shape.length; ax++) off += (Math.floor(i / inStrides[ax]) % shape[ax] + pads[ax][0]) * outStrides[ax];
        r.data[off] = x.buffer.data[ox[i]];
      }
      return r;
    },
    random(dist: Distribution, dtype, length, seed, counterBase) {
      const r = out(dtype, length);
      const bits53 = dtype === 'float64';
      for (let i = 0; i < length; i++) r.data[i] = sample(dist, seed, counterBase + i, bits53);
      return r;
    },
  };
}

export function createRefBackend(): Backend<HostBuffer> {
  const name = 'ref';
  return {
    name,
    host: true,
    supports: (_kernel: KernelName, _dtype: DType) => true,
    kernels: makeRefKernels(name),
    fromArray: (data) => hostBuffer(name, data.slice()),
    toArray: (buffer) => buffer.data,
    free: () => undefined,
  };
}
