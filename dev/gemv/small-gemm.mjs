// Lab: OpenBLAS's small-matrix path. OpenBLAS 0.3.21 (Debian, SkylakeX kernels on Zen 4)
// multiplies small products without packing when M·N·K is at most about 10^6; above
// that it packs, which costs more than the product at the decoder's shapes. Here:
// C[M,N] = A[M,K]·B[K,N] by one sgemm call, by calls over K-chunks (accumulating), or
// by calls over N-chunks, each chunk under the threshold; 1 thread, B cold or warm.
//   node dev/gemv/small-gemm.mjs [reps]
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
import { loadBlas } from '../../build/src/backends/cpu/blas.js';
import { nativeAddress } from '../../build/src/backends/cpu/native.js';

const reps = Number(process.argv[2] ?? 31);
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const k = createKernels({ threads: 1 });
const blas = loadBlas();
if (blas === null) { console.error('OpenBLAS not available'); process.exit(2); }
const base = nativeAddress(k.heap.memories[0].buffer);
const nat = (p) => base + p;

/** Time f over `copies` cold-ish copies of B; returns µs per product. */
function time(copies, bytesB, f) {
  const ws = [];
  for (let c = 0; c < copies; c++) { const p = k.heap.alloc(bytesB); k.heap.f32(p, bytesB / 4).fill(0.01); ws.push(p); }
  const ts = [];
  for (let r = 0; r < reps; r++) { const t0 = performance.now(); for (const w of ws) f(w); ts.push((performance.now() - t0) / copies); }
  for (const w of ws) k.heap.free(w);
  return med(ts) * 1000;
}

console.log('one call, by K (M 16, N 64): where the small path ends');
for (const K of [448, 512, 576, 640, 768, 896, 960, 976, 1024]) {
  const M = 16, N = 64, A = k.heap.alloc(M * K * 4), C = k.heap.alloc(M * N * 4);
  const us = time(24, K * N * 4, (w) => blas.sgemmAt(false, false, M, N, K, 1, nat(A), K, nat(w), N, 0, nat(C), N));
  console.log(`  K ${K} (MNK ${(M * N * K / 1e6).toFixed(2)}M): ${us.toFixed(1)} us, ${(2 * M * N * K / us / 1e3).toFixed(0)} GFLOP/s`);
}

const shapes = [[16, 64, 1024, 'K', 512], [16, 128, 576, 'N', 64], [4, 8000, 1024, 'N', 240], [64, 144, 9216, 'K', 96]];
console.log('split into calls under the threshold');
for (const [M, N, K, along, chunk] of shapes) {
  const A = k.heap.alloc(M * K * 4), C = k.heap.alloc(M * N * 4);
  k.heap.f32(A, M * K).fill(0.5);
  const copies = Math.max(2, Math.min(24, Math.floor(200e6 / (K * N * 4))));
  const one = time(copies, K * N * 4, (w) => blas.sgemmAt(false, false, M, N, K, 1, nat(A), K, nat(w), N, 0, nat(C), N));
  const split = time(copies, K * N * 4, (w) => {
    if (along === 'K') {
      for (let k0 = 0; k0 < K; k0 += chunk) {
        const kk = Math.min(chunk, K - k0);
        blas.sgemmAt(false, false, M, N, kk, 1, nat(A + k0 * 4), K, nat(w + k0 * N * 4), N, k0 === 0 ? 0 : 1, nat(C), N);
      }
    } else {
      for (let j0 = 0; j0 < N; j0 += chunk) {
        const nn = Math.min(chunk, N - j0);
        blas.sgemmAt(false, false, M, nn, K, 1, nat(A), K, nat(w + j0 * 4), N, 0, nat(C + j0 * 4), N);
      }
    }
  });
  const wasm = time(copies, K * N * 4, (w) => k.gemmSmallM(A, w, C, M, N, K));
  console.log(`  [${M},${K}]x[${K},${N}] x${copies}: one call ${one.toFixed(1)} us, ${along}-chunks of ${chunk} ${split.toFixed(1)} us, wasm gemmSmallM ${wasm.toFixed(1)} us`);
}
k.dispose();
