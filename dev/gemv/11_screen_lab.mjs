// Lab 11: the Sparse FF controller's C2 product, float32 (OpenBLAS transposed sgemv, the
// decoder's path before the screen) against the screen's integer product (pairDotI16 on
// int16 pairs in panels, src/decode/screen.ts), each of 24 layers' copy in its own region.
// 24 copies of the 800m C2 (28 MB) still partly fit this machine's L3: the decoder,
// with ~100 MB between two reads of one layer, sees lower rates (dev/decode-kernel-times.mjs).
// Measured while building it (per layer, median of 9): four separate row streams per
// pass read 15-18 GB/s, panels 20 GB/s; float32 sgemv 100-130 µs, panels 50-65 µs.
//   node dev/gemv/11_screen_lab.mjs [reps] [r] [d_ff]
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
const reps = Number(process.argv[2] ?? 9), r = Number(process.argv[3] ?? 96), dff = Number(process.argv[4] ?? 6144), L = 24;
const k = createKernels({ threads: 1 });
const ex = k.exs[0];
const f32 = k.heap.alloc(L * r * dff * 4, 1 << 21), bf = k.heap.alloc(L * (r / 2) * dff * 4, 1 << 21);
// u doubles as the packed pairs of u for pairDotI16: any bits will do for timing.
const u = k.heap.alloc(r * 4), y = k.heap.alloc(dff * 4);
k.heap.f32(f32, L * r * dff).fill(0.01); k.heap.i32(bf, L * (r / 2) * dff).fill(0x3c003c00); k.heap.f32(u, r).fill(1);
k.readBandwidth(f32, L * r * dff * 4); k.readBandwidth(bf, L * (r / 2) * dff * 4);
const med = (a) => { const s = [...a].sort((p, q) => p - q); return s[s.length >> 1]; };
const t = { f32: [], i16: [] };
for (let rep = 0; rep < reps; rep++) {
  let t0 = performance.now();
  for (let l = 0; l < L; l++) k.gemvT(f32 + l * r * dff * 4, r, dff, u, y);
  t.f32.push((performance.now() - t0) * 1000 / L);
  t0 = performance.now();
  for (let l = 0; l < L; l++) ex.pairDotI16(bf + l * (r / 2) * dff * 4, r / 8, dff, u, y, 0, dff);
  t.i16.push((performance.now() - t0) * 1000 / L);
}
for (const key in t) console.log(`${key.padEnd(5)} ${med(t[key]).toFixed(1)} µs/layer (${(r * dff * (key === 'f32' ? 4 : 2) / med(t[key]) / 1e3).toFixed(1)} GB/s)  [${t[key].map((v) => v.toFixed(0)).join(' ')}]`);
k.dispose();
