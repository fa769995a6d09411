import { createKernels } from '../build/src/backends/cpu/kernels.js';
const k = createKernels({ threads: 1, blas: false });
const S = 96; const pa = k.heap.alloc(S*S*4), pb = k.heap.alloc(S*S*4), pc = k.heap.alloc(S*S*4);
k.heap.f32(pa, S*S).fill(1); k.heap.f32(pb, S*S).fill(1);
const t00 = performance.now();
for (let i = 0; i < 60; i++) {
  const t0 = performance.now();
  k.gemm(false, false, S, S, S, pa, S, pb, S, pc, S, false);
  const t1 = performance.now();
  if (i % 3 == 0) console.log(i, (t1 - t0).toFixed(3), 'ms', (2*S**3/(t1-t0)/1e6).toFixed(1), 'GF at', (t1-t00).toFixed(1));
}
k.dispose();
