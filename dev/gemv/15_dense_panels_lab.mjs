// Lab 15: the dense llama-style token's products (the model of `npm run bench -- llamacpp`:
// 24 layers of wqkv [3072, 1024], wo [1024, 1024], gate+up [5460, 1024], down [1024, 2730],
// then the output [32000, 1024]; 1.47 GB, so every matrix is cold), on 1 or 2 threads, as the
// decoder runs them today (OpenBLAS sgemv on [in, out]) against the wasm gemvPanels on the
// same floats stored in 8-row panels (rows padded to a multiple of 8, columns to 4).
// Rounds alternate the two; prints medians of ms per token and GB/s.
//   node dev/gemv/15_dense_panels_lab.mjs [rounds] [threads]
import { createKernels } from '../../build/src/backends/cpu/kernels.js';

const rounds = Number(process.argv[2] ?? 7), threads = Number(process.argv[3] ?? 1);
const L = 24, d = 1024, dff = 2730, V = 32000;
const up = (n, m) => Math.ceil(n / m) * m;
// [out, in] per product, in the order of a token.
const shapes = [];
for (let l = 0; l < L; l++) shapes.push([3 * d, d], [d, d], [2 * dff, d], [d, dff]);
shapes.push([V, d]);
const k = createKernels({ threads });
const mats = shapes.map(([out, inn]) => {
  const blas = k.heap.alloc(out * inn * 4, 4096), pr = up(out, 8), pc = up(inn, 4), panels = k.heap.alloc(pr * pc * 4, 4096);
  k.heap.f32(blas, out * inn).fill(0.01); k.heap.f32(panels, pr * pc).fill(0.01);
  return { out, inn, pr, pc, blas, panels };
});
const x = k.heap.alloc(up(3 * dff, 4) * 4, 64), y = k.heap.alloc(V * 4, 64);
k.heap.f32(x, up(3 * dff, 4)).fill(1);
const bytes = shapes.reduce((s, [o, i]) => s + o * i * 4, 0);
const med = (a) => { const s = [...a].sort((p, q) => p - q); return s[s.length >> 1]; };
const t = { blas: [], panels: [] };
for (let r = 0; r <= rounds; r++) {
  let t0 = performance.now();
  for (const m of mats) k.gemvT(m.blas, m.inn, m.out, x, y, false);
  const tb = performance.now() - t0;
  t0 = performance.now();
  for (const m of mats) k.gemvPanels(m.panels, m.pr, m.pc, x, y);
  const tp = performance.now() - t0;
  if (r > 0) { t.blas.push(tb); t.panels.push(tp); }
}
const ratio = t.blas.map((b, i) => t.panels[i] / b);
for (const key in t) console.log(`${key.padEnd(7)} ${med(t[key]).toFixed(1)} ms/token (${(bytes / med(t[key]) / 1e6).toFixed(1)} GB/s)  [${t[key].map((v) => v.toFixed(1)).join(' ')}]`);
console.log(`panels / blas time: ${med(ratio).toFixed(3)} (rounds ${Math.min(...ratio).toFixed(3)}-${Math.max(...ratio).toFixed(3)})`);
k.dispose();
