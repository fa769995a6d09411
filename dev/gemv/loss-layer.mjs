// Lab: the sparse loss layer's product C[S, M] = A[S, d] · E[d, M] (800m: S 4, d 1024,
// M 8000; E 32 MB), 1 thread, cold E: the unpacked wasm gemmSmallM, OpenBLAS sgemm on E
// [d, M] (NN), and OpenBLAS on Eᵀ [M, d] (NT). node dev/gemv/loss-layer.mjs [reps]
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
const k = createKernels({ threads: 1 });
const reps = Number(process.argv[2] ?? 9);
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const ev = k.heap.alloc(256 << 20); k.heap.f32(ev, 64 << 20).fill(1);
for (const [S, d, M] of [[4, 1024, 8000], [8, 9216, 4000]]) {
  const A = k.heap.alloc(S * d * 4), E = k.heap.alloc(d * M * 4), Et = k.heap.alloc(d * M * 4), C = k.heap.alloc(S * M * 4);
  k.heap.f32(A, S * d).fill(0.5); k.heap.f32(E, d * M).fill(0.01); k.heap.f32(Et, d * M).fill(0.01);
  const t = { small: [], nn: [], nt: [] };
  for (let r = 0; r < reps; r++) {
    k.readBandwidth(ev, 256 << 20);
    let t0 = performance.now(); k.gemmSmallM(A, E, C, S, M, d); t.small.push(performance.now() - t0);
    k.readBandwidth(ev, 256 << 20);
    t0 = performance.now(); k.gemm(false, false, S, M, d, A, d, E, M, C, M, false); t.nn.push(performance.now() - t0);
    k.readBandwidth(ev, 256 << 20);
    t0 = performance.now(); k.gemm(false, true, S, M, d, A, d, Et, d, C, M, false); t.nt.push(performance.now() - t0);
  }
  console.log(`[${S}x${d}]·[${d}x${M}]: gemmSmallM ${med(t.small).toFixed(2)} ms, OpenBLAS NN ${med(t.nn).toFixed(2)} ms, OpenBLAS NT (Eᵀ) ${med(t.nt).toFixed(2)} ms; E read at 1 pass: ${(d * M * 4 / 1e6).toFixed(0)} MB`);
  k.heap.free(A); k.heap.free(E); k.heap.free(Et); k.heap.free(C);
}
k.dispose();
