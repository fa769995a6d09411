// Lab: OpenBLAS cblas_sgemv (through koffi) against the wasm gemv kernel on 1 thread,
// interleaved, cold weights (a 256 MiB read between calls evicts them).
// node dev/gemv/blas-vs-wasm.mjs [reps]
import { createRequire } from 'node:module';
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
const koffi = createRequire(import.meta.url)('koffi');
const lib = koffi.load('libopenblas.so.0');
const sgemv = lib.func('void cblas_sgemv(int, int, int, int, float, const float *, int, const float *, int, float, float *, int)');
lib.func('void openblas_set_num_threads(int)')(1);
const k = createKernels({ threads: 1, blas: false });
const reps = Number(process.argv[2] ?? 9);
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const ev = k.heap.alloc(256 << 20); k.heap.f32(ev, 64 << 20).fill(1);
for (const [rows, cols] of [[1024, 1024], [3072, 1024], [5460, 1024], [32000, 1024], [11008, 4096]]) {
  const W = k.heap.alloc(rows * cols * 4), x = k.heap.alloc(cols * 4), y = k.heap.alloc(rows * 4);
  k.heap.f32(W, rows * cols).fill(0.01); k.heap.f32(x, cols).fill(1);
  const buf = k.heap.memories[0].buffer;
  const wv = new Float32Array(buf, W, rows * cols), xv = new Float32Array(buf, x, cols), yv = new Float32Array(buf, y, rows);
  const tw = [], tb = [], tc = [], tt = [], ta = [];
  const idx = k.heap.alloc(rows * 4); k.heap.i32(idx, rows).set(Int32Array.from({ length: rows }, (_, i) => i));
  const coef = k.heap.alloc(rows * 4); k.heap.f32(coef, rows).fill(0.5);
  const yc = k.heap.alloc(cols * 4);
  const cv = new Float32Array(buf, coef, rows), ycv = new Float32Array(buf, yc, cols);
  for (let r = 0; r < reps; r++) {
    let t0 = performance.now(); k.readBandwidth(ev, 256 << 20); tc.push(256 * 2 ** 20 / ((performance.now() - t0) * 1e6));
    t0 = performance.now(); k.gemv(W, rows, cols, x, y); tw.push(performance.now() - t0);
    k.readBandwidth(ev, 256 << 20);
    t0 = performance.now(); sgemv(101, 111, rows, cols, 1, wv, cols, xv, 1, 0, yv, 1); tb.push(performance.now() - t0);
    k.readBandwidth(ev, 256 << 20);
    t0 = performance.now(); sgemv(101, 112, rows, cols, 1, wv, cols, cv, 1, 0, ycv, 1); tt.push(performance.now() - t0);
    k.readBandwidth(ev, 256 << 20);
    t0 = performance.now(); k.axpyRows(W, cols, idx, coef, rows, yc); ta.push(performance.now() - t0);
  }
  const gb = (ms) => (rows * cols * 4 / (ms * 1e6)).toFixed(1);
  console.log(`${rows}x${cols}: W·x wasm gemv ${gb(med(tw))} GB/s, OpenBLAS ${gb(med(tb))} GB/s; Wᵀ·c wasm axpyRows ${gb(med(ta))}, OpenBLAS ${gb(med(tt))}; read ceiling ${med(tc).toFixed(1)} GB/s`);
}
k.dispose();
