// The matrix-vector part of `npm run bench -- ops` alone (after `npm run build`), for
// quick A/B runs of the promoted kernels: node dev/gemv/07_matvec_bench.mjs [threads] [reps]
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
import { runMatVec } from '../../build/bench/ops.js';

const threads = (process.argv[2] ?? '1,2').split(',').map(Number);
const reps = Number(process.argv[3] ?? 7);
for (const T of threads) {
  const k = createKernels({ threads: T, blas: false });
  runMatVec(k, reps);
  k.dispose();
}
