/**
 * The cpu backend: the fast host backend for training and decoding in Node
 * and browsers.
 *
 * Buffers are plain typed arrays, shared with the reference backend, so any
 * kernel cpu does not claim in `supports` runs the reference kernel on the
 * same memory with no copy (src/backends/registry.ts, `kernelFor`). What cpu
 * implements itself:
 * - float32 matmul on the WebAssembly SIMD kernels (worker threads over shared
 *   memory), or OpenBLAS through FFI when present (./kernels.ts,
 *   docs/cpu-backend.md); float64 matmul in a cache-friendly JS loop;
 * - elementwise, compare, where, copy: tight loops over the innermost axis of
 *   any strided layout, with a flat loop when everything is contiguous;
 * - reductions over any axis (outer × axis × inner loops on contiguous data);
 * - top-k by a bounded heap per row (O(n log k) instead of a full sort).
 * - zero padding, line by line.
 * gather, scatterAdd, cast and random use the reference kernels.
 *
 * Every kernel here is tested against the reference in test/backends.test.ts.
 */

import type { Backend, HostBuffer, KernelName, Kernels, View } from '../backend.js';
import { hostBuffer, topkBefore } from '../ref/index.js';
import { binaryLine, compareLine, unaryLine, type BinaryLine } from './loops.js';
import { allocArray, type DataArray, type DType } from '../../tensor/dtype.js';
import { contiguousStrides, isContiguous, numel, type Layout } from '../../tensor/shape.js';
import { createKernels, type CpuKernels } from './kernels.js';

const NAME = 'cpu';

function out(dtype: DType, n: number): HostBuffer {
  return hostBuffer(NAME, allocArray(dtype, n));
}

/** True when the view is row-major from its offset (so element i is data[offset + i]). */
function flat(v: View<HostBuffer>): boolean {
  return isContiguous(v.layout);
}

/**
 * Merges axes that every layout walks contiguously (stride[k] = stride[k+1]·shape[k+1])
 * and drops size-1 axes, so lines are as long as the layouts allow: a copy of a
 * [.., 32, 1] view becomes one loop of 32·.. elements instead of lines of one.
 */
function coalesce(shape: readonly number[], layouts: readonly Layout[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = layouts.map(() => []);
  for (let ax = 0; ax < shape.length; ax++) {
    if (shape[ax] === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && layouts.every((l, j) => outStrides[j][last] === l.strides[ax] * shape[ax])) {
      outShape[last] *= shape[ax];
      layouts.forEach((l, j) => { outStrides[j][last] = l.strides[ax]; });
    } else {
      outShape.push(shape[ax]);
      layouts.forEach((l, j) => outStrides[j].push(l.strides[ax]));
    }
  }
  return { shape: outShape, strides: outStrides };
}

/**
 * Calls body(offsets, n, strides) once per innermost line of `shape` (after
 * coalescing): offsets[j] is layout j's offset of the line's first element,
 * strides[j] its step along the line. Lines come in row-major order.
 */
function forEachLine(fullShape: readonly number[], layouts: readonly Layout[], body: (offsets: number[], n: number, strides: number[]) => void, lineIsLastAxis = false): void {
  const offsets = layouts.map((l) => l.offset);
  if (numel(fullShape) === 0) return;
  let { shape, strides } = coalesce(fullShape, layouts);
  if (lineIsLastAxis) {
    // Lines must be exactly the last axis (top-k works per row): coalesce only the axes before it.
    const r = fullShape.length;
    const outer = coalesce(fullShape.slice(0, r - 1), layouts.map((l) => ({ ...l, shape: l.shape.slice(0, r - 1), strides: l.strides.slice(0, r - 1) })));
    shape = [...outer.shape, fullShape[r - 1]];
    strides = outer.strides.map((st, j) => [...st, layouts[j].strides[r - 1]]);
  }
  const rank = shape.length;
  if (rank === 0) { body(offsets, 1, layouts.map(() => 0)); return; }
  const n = shape[rank - 1];
  const inner = strides.map((s) => s[rank - 1]);
  const lines = numel(shape) / n;
  const idx = new Array<number>(rank - 1).fill(0);
  for (let line = 0; line < lines; line++) {
    body(offsets, n, inner);
    for (let ax = rank - 2; ax >= 0; ax--) {
      idx[ax]++;
      for (let j = 0; j < layouts.length; j++) offsets[j] += strides[j][ax];
      if (idx[ax] < shape[ax]) break;
      for (let j = 0; j < layouts.length; j++) offsets[j] -= strides[j][ax] * shape[ax];
      idx[ax] = 0;
    }
  }
}

function contiguousCopy(x: View<HostBuffer>): DataArray {
  const r = allocArray(x.buffer.dtype, numel(x.layout.shape));
  const d = x.buffer.data;
  let o = 0;
  forEachLine(x.layout.shape, [x.layout], ([off], n, [s]) => {
    for (let i = 0; i < n; i++) r[o++] = d[off + i * s];
  });
  return r;
}

/** The data of x in row-major order starting at index 0 of the returned array's `start`. */
function rowMajor(x: View<HostBuffer>): { data: DataArray; start: number } {
  return flat(x) ? { data: x.buffer.data, start: x.layout.offset } : { data: contiguousCopy(x), start: 0 };
}

function makeCpuKernels(getKernels: () => CpuKernels): Partial<Kernels<HostBuffer>> {
  /** out = line(a, b) over equal-shaped views, one innermost line at a time (one line when both are flat). */
  const map2 = (a: View<HostBuffer>, b: View<HostBuffer>, r: DataArray, line: BinaryLine): void => {
    const ad = a.buffer.data;
    const bd = b.buffer.data;
    if (flat(a) && flat(b)) { line(r, 0, ad, a.layout.offset, 1, bd, b.layout.offset, 1, r.length); return; }
    let o = 0;
    forEachLine(a.layout.shape, [a.layout, b.layout], ([ao, bo], n, [as, bs]) => {
      line(r, o, ad, ao, as, bd, bo, bs, n);
      o += n;
    });
  };

  return {
    unary(op, x) {
      const line = unaryLine(op);
      const r = out(x.buffer.dtype, numel(x.layout.shape));
      const d = x.buffer.data;
      if (flat(x)) { line(r.data, 0, d, x.layout.offset, 1, r.length); return r; }
      let o = 0;
      forEachLine(x.layout.shape, [x.layout], ([off], n, [s]) => { line(r.data, o, d, off, s, n); o += n; });
      return r;
    },
    binary(op, a, b) {
      const r = out(a.buffer.dtype, numel(a.layout.shape));
      map2(a, b, r.data, binaryLine(op, a.buffer.dtype === 'int32'));
      return r;
    },
    compare(op, a, b) {
      const r = out('int32', numel(a.layout.shape));
      map2(a, b, r.data, compareLine(op));
      return r;
    },
    where(cond, a, b) {
      const r = out(a.buffer.dtype, numel(a.layout.shape));
      const [cd, ad, bd] = [cond.buffer.data, a.buffer.data, b.buffer.data];
      if (flat(cond) && flat(a) && flat(b)) {
        const [co, ao, bo] = [cond.layout.offset, a.layout.offset, b.layout.offset];
        for (let i = 0; i < r.length; i++) r.data[i] = cd[co + i] !== 0 ? ad[ao + i] : bd[bo + i];
        return r;
      }
      let o = 0;
      forEachLine(a.layout.shape, [cond.layout, a.layout, b.layout], ([co, ao, bo], n, [cs, as, bs]) => {
        for (let i = 0; i < n; i++) r.data[o++] = cd[co + i * cs] !== 0 ? ad[ao + i * as] : bd[bo + i * bs];
      });
      return r;
    },
    reduce(op, x, axis) {
      const shape = x.layout.shape;
      const n = shape[axis];
      const outer = numel(shape.slice(0, axis));
      const inner = numel(shape.slice(axis + 1));
      const { data, start } = rowMajor(x);
      const r = out(x.buffer.dtype, outer * inner);
      // Float accumulation in a Float64Array row, rounded once on store (as in ref).
      if (inner === 1) {
        // Reducing the last axis: one running scalar per row.
        for (let o = 0; o < outer; o++) {
          const base = start + o * n;
          let acc = op === 'sum' ? 0 : -Infinity;
          if (op === 'sum') for (let j = 0; j < n; j++) acc += data[base + j];
          else for (let j = 0; j < n; j++) { const v = data[base + j]; if (!(acc >= v) && !Number.isNaN(acc)) acc = v; }
          r.data[o] = acc;
        }
        return r;
      }
      const acc = new Float64Array(inner);
      for (let o = 0; o < outer; o++) {
        acc.fill(op === 'sum' ? 0 : -Infinity);
        for (let j = 0; j < n; j++) {
          const base = start + (o * n + j) * inner;
          if (op === 'sum') for (let i = 0; i < inner; i++) acc[i] += data[base + i];
          else for (let i = 0; i < inner; i++) { const v = data[base + i]; if (!(acc[i] >= v) && !Number.isNaN(acc[i])) acc[i] = v; }
        }
        r.data.set(acc, o * inner);
      }
      return r;
    },
    matmul(a, b) {
      const rank = a.layout.shape.length;
      const M = a.layout.shape[rank - 2];
      const K = a.layout.shape[rank - 1];
      const N = b.layout.shape[rank - 1];
      const batchShape = a.layout.shape.slice(0, rank - 2);
      const nb = numel(batchShape);
      const r = out(a.buffer.dtype, nb * M * N);
      if (nb === 0 || M === 0 || N === 0) return r;
      // Each operand is used as stored when one of its last two axes has stride 1 (plain or transposed); else copied.
      const operand = (v: View<HostBuffer>, rows: number, cols: number) => {
        const s = v.layout.strides;
        const [sr, sc] = [s[rank - 2], s[rank - 1]];
        if (sc === 1 && sr >= Math.max(cols, 1)) return { data: v.buffer.data, layout: v.layout, trans: false, ld: sr };
        if (sr === 1 && sc >= Math.max(rows, 1)) return { data: v.buffer.data, layout: v.layout, trans: true, ld: sc };
        const data = contiguousCopy(v);
        return { data, layout: { shape: v.layout.shape, strides: contiguousStrides(v.layout.shape), offset: 0 }, trans: false, ld: cols };
      };
      const A = operand(a, M, K);
      const B = operand(b, K, N);
      const batchA: number[] = [];
      const batchB: number[] = [];
      forEachBatch(batchShape, A.layout, B.layout, (ao, bo) => { batchA.push(ao); batchB.push(bo); });
      if (a.buffer.dtype === 'float32') {
        const kernels = getKernels();
        for (let p = 0; p < nb; p++) {
          kernels.matmul(A.trans, B.trans, M, N, K, A.data as Float32Array, batchA[p], A.ld, B.data as Float32Array, batchB[p], B.ld, r.data as Float32Array, p * M * N, N);
        }
      } else {
        for (let p = 0; p < nb; p++) matmulF64(A, B, batchA[p], batchB[p], M, N, K, r.data, p * M * N);
      }
      return r;
    },
    topk(x, k) {
      const rows = numel(x.layout.shape.slice(0, -1));
      const values = out(x.buffer.dtype, rows * k);
      const indices = out('int32', rows * k);
      const d = x.buffer.data;
      const heapV = new Float64Array(k);
      const heapI = new Int32Array(k);
      let row = 0;
      forEachLine(x.layout.shape, [x.layout], ([off], len, [s]) => {
        // A heap of the k best so far with the worst at the root; `topkBefore` is the order contract.
        let size = 0;
        const worse = (i: number, j: number): boolean => topkBefore(heapV[j], heapI[j], heapV[i], heapI[i]);
        const siftDown = (i: number): void => {
          for (;;) {
            const l = 2 * i + 1;
            const rr = l + 1;
            let m = i;
            if (l < size && worse(l, m)) m = l;
            if (rr < size && worse(rr, m)) m = rr;
            if (m === i) return;
            [heapV[i], heapV[m]] = [heapV[m], heapV[i]];
            [heapI[i], heapI[m]] = [heapI[m], heapI[i]];
            i = m;
          }
        };
        for (let j = 0; j < len && k > 0; j++) {
          const v = d[off + j * s];
          if (size < k) {
            let i = size++;
            heapV[i] = v; heapI[i] = j;
            while (i > 0) {
              const p = (i - 1) >> 1;
              if (!worse(i, p)) break;
              [heapV[i], heapV[p]] = [heapV[p], heapV[i]];
              [heapI[i], heapI[p]] = [heapI[p], heapI[i]];
              i = p;
            }
          } else if (topkBefore(v, j, heapV[0], heapI[0])) {
            heapV[0] = v; heapI[0] = j;
            siftDown(0);
          }
        }
        // Pop worst-first into the tail, giving best-first order.
        for (let t = k - 1; t >= 0; t--) {
          values.data[row * k + t] = heapV[0];
          indices.data[row * k + t] = heapI[0];
          size--;
          heapV[0] = heapV[size]; heapI[0] = heapI[size];
          siftDown(0);
        }
        row++;
      }, true);
      return [values, indices];
    },
    copy: (x) => hostBuffer(NAME, contiguousCopy(x)),
    pad(x, pads) {
      const shape = x.layout.shape;
      const outShape = shape.map((d, i) => d + pads[i][0] + pads[i][1]);
      const r = out(x.buffer.dtype, numel(outShape));
      // The unpadded region of the output, as a layout, filled by a strided copy.
      const strides = contiguousStrides(outShape);
      const region: Layout = { shape, strides, offset: pads.reduce((o, [before], i) => o + before * strides[i], 0) };
      const d = x.buffer.data;
      forEachLine(shape, [x.layout, region], ([xo, ro], n, [xs, rs]) => {
        for (let i = 0; i < n; i++) r.data[ro + i * rs] = d[xo + i * xs];
      });
      return r;
    },
  };
}

/** Offsets of each batch item's matrix in two layouts (batch axes are all but the last two). */
function forEachBatch(batchShape: readonly number[], la: Layout, lb: Layout, fn: (ao: number, bo: number) => void): void {
  const nb = numel(batchShape);
  const rank = batchShape.length;
  const idx = new Array<number>(rank).fill(0);
  let ao = la.offset;
  let bo = lb.offset;
  for (let p = 0; p < nb; p++) {
    fn(ao, bo);
    for (let ax = rank - 1; ax >= 0; ax--) {
      idx[ax]++;
      ao += la.strides[ax];
      bo += lb.strides[ax];
      if (idx[ax] < batchShape[ax]) break;
      ao -= la.strides[ax] * batchShape[ax];
      bo -= lb.strides[ax] * batchShape[ax];
      idx[ax] = 0;
    }
  }
}

interface MatOperand { data: DataArray; trans: boolean; ld: number }

/** float64 C[M,N] = op(A)·op(B), i-k-j order so the inner loop streams rows of B and C. */
function matmulF64(A: MatOperand, B: MatOperand, ao: number, bo: number, M: number, N: number, K: number, c: DataArray, co: number): void {
  const at = (i: number, k: number): number => A.data[ao + (A.trans ? k * A.ld + i : i * A.ld + k)];
  const bRow = new Float64Array(N);
  for (let i = 0; i < M; i++) {
    const row = new Float64Array(N);
    for (let k = 0; k < K; k++) {
      const aik = at(i, k);
      if (B.trans) for (let j = 0; j < N; j++) bRow[j] = B.data[bo + j * B.ld + k];
      else for (let j = 0; j < N; j++) bRow[j] = B.data[bo + k * B.ld + j];
      for (let j = 0; j < N; j++) row[j] += aik * bRow[j];
    }
    c.set(row, co + i * N);
  }
}

const OWN: ReadonlySet<KernelName> = new Set<KernelName>(['unary', 'binary', 'compare', 'where', 'reduce', 'matmul', 'topk', 'copy', 'pad']);

export interface CpuBackendOptions { threads?: number; blas?: boolean }

export function createCpuBackend(opts: CpuBackendOptions = {}): Backend<HostBuffer> & { readonly matmulKernels: () => CpuKernels } {
  let kernels: CpuKernels | null = null;
  // Workers start on the first float32 matmul, not at import.
  const getKernels = (): CpuKernels => (kernels ??= createKernels(opts));
  return {
    name: NAME,
    host: true,
    supports: (kernel: KernelName, _dtype: DType) => OWN.has(kernel),
    kernels: makeCpuKernels(getKernels),
    fromArray: (data) => hostBuffer(NAME, data.slice()),
    toArray: (buffer) => buffer.data,
    free: () => undefined,
    matmulKernels: getKernels,
  };
}
