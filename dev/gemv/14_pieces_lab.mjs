// Lab 14: the same bytes read cold as one contiguous run or as many separate pieces (an
// 800m layer's keys and values at T = 26: 208 KB; as 32 pieces, one per kv head and
// matrix, is what a [kv head][position] cache made attention read). 24 copies, as 24
// layers, with a 256 MiB read between repetitions.
//   node dev/gemv/14_pieces_lab.mjs [bytes] [pieces...]
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
const bytes = Number(process.argv[2] ?? 212992);
const counts = process.argv.length > 3 ? process.argv.slice(3).map(Number) : [1, 2, 32];
const k = createKernels({ threads: 1 });
const ex = k.exs[0];
const L = 24, gap = 256 * 1024; // pieces start 256 KB apart, as kv heads of a 1024-position cache do
const maxPieces = Math.max(...counts);
const base = k.heap.alloc(L * maxPieces * gap + bytes, 1 << 21);
k.heap.f32(base, (L * maxPieces * gap + bytes) / 4).fill(0.01);
const ev = k.heap.alloc(256 << 20); k.heap.f32(ev, 64 << 20).fill(1);
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
for (const pieces of counts) {
  const t = [];
  const each = Math.floor(bytes / pieces / 4); // floats per piece
  for (let rep = 0; rep < 9; rep++) {
    k.readBandwidth(ev, 256 << 20);
    const t0 = performance.now();
    for (let l = 0; l < L; l++) {
      const layer = base + l * maxPieces * gap;
      // One piece: the bytes contiguous; several: each piece at its own 256 KB slot.
      if (pieces === 1) ex.readSum(layer, bytes / 4);
      else for (let p = 0; p < pieces; p++) ex.readSum(layer + p * gap, each);
    }
    t.push((performance.now() - t0) * 1000 / L);
  }
  console.log(`${bytes} B as ${String(pieces).padStart(2)} piece(s): ${med(t).toFixed(1)} µs per layer (${(bytes / med(t) / 1e3).toFixed(1)} GB/s)`);
}
k.dispose();
