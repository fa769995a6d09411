// Lab 12: a short matrix read once per token (the Sparse FF controller's C1ᵀ, 96 rows of
// 1024 floats at the 800m shape), cold: the wasm gemv over rows (eight 4 KB streams per
// pass) against gemvPanels (the same floats stored in the order the loop reads them: one
// stream), and OpenBLAS's sgemv. 24 copies, as 24 layers.   node dev/gemv/12_panels_lab.mjs [reps] [rows] [cols]
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
const reps = Number(process.argv[2] ?? 9), rows = Number(process.argv[3] ?? 96), cols = Number(process.argv[4] ?? 1024), L = 24;
const k = createKernels({ threads: 1, blasGemv: false });
const kb = createKernels({ threads: 1 });
const ex = k.exs[0];
const bytes = rows * cols * 4;
const A = k.heap.alloc(L * bytes, 1 << 21), B = k.heap.alloc(L * bytes, 1 << 21);
const x = k.heap.alloc(cols * 4), y = k.heap.alloc(rows * 4);
k.heap.f32(A, L * rows * cols).fill(0.01); k.heap.f32(B, L * rows * cols).fill(0.01); k.heap.f32(x, cols).fill(1);
k.readBandwidth(A, L * bytes); k.readBandwidth(B, L * bytes);
const Ab = kb.heap.alloc(L * bytes, 1 << 21), xb = kb.heap.alloc(cols * 4), yb = kb.heap.alloc(rows * 4);
kb.heap.f32(Ab, L * rows * cols).fill(0.01); kb.heap.f32(xb, cols).fill(1); kb.readBandwidth(Ab, L * bytes);
const med = (a) => { const s = [...a].sort((p, q) => p - q); return s[s.length >> 1]; };
const t = { rows: [], panels: [], blas: [] };
for (let rep = 0; rep < reps; rep++) {
  let t0 = performance.now();
  for (let l = 0; l < L; l++) k.gemv(A + l * bytes, rows, cols, x, y);
  t.rows.push((performance.now() - t0) * 1000 / L);
  t0 = performance.now();
  for (let l = 0; l < L; l++) ex.gemvPanels(B + l * bytes, cols, x, y, 0, rows / 8);
  t.panels.push((performance.now() - t0) * 1000 / L);
  t0 = performance.now();
  for (let l = 0; l < L; l++) kb.gemv(Ab + l * bytes, rows, cols, xb, yb);
  t.blas.push((performance.now() - t0) * 1000 / L);
}
for (const key in t) console.log(`${key.padEnd(6)} ${med(t[key]).toFixed(1)} µs (${(bytes / med(t[key]) / 1e3).toFixed(1)} GB/s)  [${t[key].map((v) => v.toFixed(0)).join(' ')}]`);
k.dispose(); kb.dispose();
