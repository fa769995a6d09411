// Lab: the same product y[out] = M·x[in] through OpenBLAS sgemv, with M stored as
// [out, in] (NoTrans) or as [in, out] (Trans), 1 thread, cold (a 256 MiB read between).
// node dev/gemv/blas-layout.mjs [reps]
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
const k = createKernels({ threads: 1, blasGemv: true });
const reps = Number(process.argv[2] ?? 9);
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const ev = k.heap.alloc(256 << 20); k.heap.f32(ev, 64 << 20).fill(1);
for (const [out, inn] of [[1024, 1024], [3072, 1024], [5460, 1024], [1024, 2730], [32000, 1024]]) {
  const A = k.heap.alloc(out * inn * 4), B = k.heap.alloc(out * inn * 4), x = k.heap.alloc(inn * 4), y = k.heap.alloc(out * 4);
  k.heap.f32(A, out * inn).fill(0.01); k.heap.f32(B, out * inn).fill(0.01); k.heap.f32(x, inn).fill(1);
  const tn = [], tt = [];
  for (let r = 0; r < reps; r++) {
    k.readBandwidth(ev, 256 << 20);
    let t0 = performance.now(); k.gemv(A, out, inn, x, y); tn.push(performance.now() - t0);
    k.readBandwidth(ev, 256 << 20);
    t0 = performance.now(); k.heap.f32(y, out).fill(0); k.gemvT(B, inn, out, x, y); tt.push(performance.now() - t0);
  }
  const gb = (ms) => (out * inn * 4 / (ms * 1e6)).toFixed(1);
  console.log(`y[${out}] = M x[${inn}]: [out, in] NoTrans ${gb(med(tn))} GB/s, [in, out] Trans ${gb(med(tt))} GB/s`);
  k.heap.free(A); k.heap.free(B); k.heap.free(x); k.heap.free(y);
}
k.dispose();
