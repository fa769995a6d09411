const i32 = new Int32Array(new SharedArrayBuffer(64));
for (let r = 0; r < 3; r++) { const t = performance.now(); let s = 0; for (let k = 0; k < (1 << 20); k++) s += Atomics.load(i32, 0); console.log(((performance.now() - t) * 1000 / 16).toFixed(1), 'us per 65536 loads'); }
import { createKernels } from '../build/src/backends/cpu/kernels.js';
const k = createKernels({ threads: 2, blas: false });
const p = k.heap.alloc(1 << 20);
for (const gap of [0, 1, 5, 20]) {
  const ts = [];
  for (let r = 0; r < 200; r++) { const t0 = performance.now(); while (performance.now() - t0 < gap) {} const t = performance.now(); k.readBandwidth(p, 1 << 18); ts.push(performance.now() - t); }
  ts.sort((a, b) => a - b); console.log(`gap ${gap} ms: 256 KiB read call median ${(ts[100] * 1000).toFixed(1)} us`);
}
const k1 = createKernels({ threads: 1, blas: false }); const p1 = k1.heap.alloc(1 << 20);
const ts = []; for (let r = 0; r < 200; r++) { const t = performance.now(); k1.readBandwidth(p1, 1 << 18); ts.push(performance.now() - t); }
ts.sort((a, b) => a - b); console.log(`1 thread: ${(ts[100] * 1000).toFixed(1)} us`);
k.dispose(); k1.dispose();
