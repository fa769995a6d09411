import { createKernels } from '../build/src/backends/cpu/kernels.js';
for (const threads of [1, 2]) for (const blas of [false, true]) {
  const k = createKernels({ threads, blas });
  const M = 129, N = 65, K = 33;
  const a = Float32Array.from({ length: M * K }, () => Math.random() - 0.5);
  const b = Float32Array.from({ length: K * N }, () => Math.random() - 0.5);
  const c = new Float32Array(M * N);
  k.matmul(false, false, M, N, K, a, 0, K, b, 0, N, c, 0, N);
  let err = 0;
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) { let s = 0; for (let p = 0; p < K; p++) s += a[i*K+p]*b[p*N+j]; err = Math.max(err, Math.abs(s - c[i*N+j])); }
  const n = 1 << 24; const p = k.heap.alloc(n * 4); k.heap.f32(p, n).fill(1);
  const t0 = performance.now(); const s = k.readBandwidth(p, n * 4); const t1 = performance.now();
  // big matmul
  const S = 1024; const A = new Float32Array(S*S).fill(0.5), B = new Float32Array(S*S).fill(0.25), C = new Float32Array(S*S);
  k.matmul(false,false,S,S,S,A,0,S,B,0,S,C,0,S);
  const t2 = performance.now(); for (let r = 0; r < 3; r++) k.matmul(false,false,S,S,S,A,0,S,B,0,S,C,0,S); const t3 = performance.now();
  console.log({ threads, blas: k.blas, err, s, readGBs: n*4/(t1-t0)/1e6, gflops: 3*2*S**3/(t3-t2)/1e6, c0: C[0] });
  k.dispose();
}
