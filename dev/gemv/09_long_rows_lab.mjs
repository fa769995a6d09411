// Lab 9: gathered rows at the 17B shape (rows of 9216 floats, 36 KB) against the same
// bytes read as a contiguous gemv, and against a plain read. Is the gather slow because
// rows are scattered, or because the wasm matrix-vector loop is slow on one thread?
// Cold caches (a 512 MiB read between calls). Pages touched recently: see lab 10 for
// what untouched pages cost on this VM. node dev/gemv/09_long_rows_lab.mjs [reps] [cols] [GiB of W]
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
const reps = Number(process.argv[2] ?? 9), cols = Number(process.argv[3] ?? 9216);
const gib = Number(process.argv[4] ?? 1.5), rows = Math.floor((gib * 2 ** 30) / (cols * 4)), n = 256;
const k = createKernels({ threads: 1 });
const W = k.heap.alloc(rows * cols * 4, 2 ** 21), x = k.heap.alloc(cols * 4), y = k.heap.alloc(Math.max(rows, cols, 1 << 17) * 4), idx = k.heap.alloc(n * 4);
const ev = k.heap.alloc(512 << 20);
k.heap.f32(W, rows * cols).fill(0.01); k.heap.f32(x, cols).fill(1); k.heap.f32(ev, 128 << 20).fill(1);
const yv = k.heap.f32(y, cols);
let seed = 1;
const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
const iv = new Int32Array(k.heap.memories[0].buffer, idx, n);
const med = (a) => { const s = [...a].sort((p, q) => p - q); return s[s.length >> 1]; };
const evict = () => k.gemv(ev, 1 << 17, 1024, x, y); // 512 MiB streamed
const t = { gather: [], gatherAxpy: [], contig: [], contigT: [] };
for (let r = 0; r < reps; r++) {
  // one neuron per block of rows/n, as Sparse FF picks them
  const B = Math.floor(rows / n);
  for (let b = 0; b < n; b++) iv[b] = b * B + Math.floor(rnd() * B);
  const start = Math.floor(rnd() * (rows - n));
  const gb = n * cols * 4;
  evict(); let t0 = performance.now(); k.gemvRows(W, cols, idx, n, x, y); t.gather.push(gb / (performance.now() - t0) / 1e6);
  for (let b = 0; b < n; b++) iv[b] = b * B + Math.floor(rnd() * B);
  evict(); yv.fill(0); t0 = performance.now(); k.axpyRows(W, cols, idx, x, n, y); t.gatherAxpy.push(gb / (performance.now() - t0) / 1e6);
  evict(); t0 = performance.now(); k.gemv(W + start * cols * 4, n, cols, x, y); t.contig.push(gb / (performance.now() - t0) / 1e6);
  evict(); t0 = performance.now(); k.gemvT(W + start * cols * 4, n, cols, x, y, false); t.contigT.push(gb / (performance.now() - t0) / 1e6);
}
console.log(`cols ${cols}, ${n} rows of ${rows}, GB/s median of ${reps}, blas=${k.blas !== null}:`);
for (const key in t) console.log(`  ${key.padEnd(11)} ${med(t[key]).toFixed(1)}  (${t[key].map((v) => v.toFixed(1)).join(' ')})`);
k.dispose();
