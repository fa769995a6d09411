// Lab 10: the first read of a page after it was written is slow on this VM. Gathered
// rows at the 17B shape (256 rows of 36 KB, one per block of a 1.5 GiB W) right after W
// was filled, then after one read per 4 KiB page of W, then after a quiet spell.
// Measured 2026-11-28 (1 thread): after the fill 0.5-8 GB/s, climbing as the gathers
// themselves reach more pages; after the touch pass (~25 ms for 1.5 GiB) 15-20 GB/s from
// the first call. The cost is per 4 KiB page and host-side (the guest has THP on W and
// no swap; its own page faults are long done). DecodeEngine.touchPages() pays it at load.
//   node dev/gemv/10_cold_pages.mjs [GiB of W] [quiet seconds]
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
const gib = Number(process.argv[2] ?? 1.5), quiet = Number(process.argv[3] ?? 15);
const cols = 9216, n = 256, rows = Math.floor((gib * 2 ** 30) / (cols * 4));
const k = createKernels({ threads: 1 });
const W = k.heap.alloc(rows * cols * 4, 2 ** 21), x = k.heap.alloc(cols * 4);
const y = k.heap.alloc(Math.max(rows, cols, 1 << 17) * 4), idx = k.heap.alloc(n * 4), ev = k.heap.alloc(512 << 20);
k.heap.f32(W, rows * cols).fill(0.01); k.heap.f32(x, cols).fill(1); k.heap.f32(ev, 128 << 20).fill(1);
const iv = k.heap.i32(idx, n), wv = k.heap.f32(W, rows * cols);
let seed = 1;
const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
const evict = () => k.gemv(ev, 1 << 17, 1024, x, y); // 512 MiB through the caches
const gather = () => {
  const B = Math.floor(rows / n);
  for (let b = 0; b < n; b++) iv[b] = b * B + Math.floor(rnd() * B);
  evict();
  const t0 = performance.now();
  k.gemvRows(W, cols, idx, n, x, y);
  return ((n * cols * 4) / (performance.now() - t0) / 1e6).toFixed(1);
};
// The guest's own page faults during the gathers (zero here: the slow first read is not a guest fault).
const line = (tag) => {
  const f0 = process.resourceUsage();
  const g = Array.from({ length: 8 }, gather).join(' ');
  const f1 = process.resourceUsage();
  console.log(`${tag.padEnd(26)} GB/s: ${g}   (guest page faults: ${f1.minorPageFault - f0.minorPageFault} minor, ${f1.majorPageFault - f0.majorPageFault} major)`);
};
line('after the fill');
let sum = 0;
const t0 = performance.now();
for (let i = 0; i < wv.length; i += 1024) sum += wv[i];
console.log(`touch pass: ${(performance.now() - t0).toFixed(0)} ms (sum ${sum.toFixed(0)})`);
line('after the touch pass');
await new Promise((r) => setTimeout(r, quiet * 1000));
line(`after ${quiet} s quiet`);
k.dispose();
