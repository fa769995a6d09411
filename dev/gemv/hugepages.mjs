// Lab: do transparent huge pages (madvise MADV_HUGEPAGE on the wasm memory, through
// koffi) speed up gathered rows and dense streams? Two kernel sets, one advised,
// alternated in one run. node dev/gemv/hugepages.mjs [reps]
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
const koffi = createRequire(import.meta.url)('koffi');
const libc = koffi.load('libc.so.6');
const memmove = libc.func('void *memmove(void *, const void *, size_t)');
const madvise = libc.func('int madvise(uintptr_t, size_t, int)');
const reps = Number(process.argv[2] ?? 7);
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const sets = [];
for (const huge of [false, true]) {
  const k = createKernels({ threads: 1, blas: false });
  if (huge) {
    const u = new Uint8Array(k.heap.memories[0].buffer, 0, 1);
    const base = Number(koffi.address(memmove(u, u, 0)));
    console.log('madvise', madvise(base, 2 ** 32, 14));
  }
  const rows = 4096, cols = 4096;
  const W = k.heap.alloc(rows * cols * 4, 2 ** 21), x = k.heap.alloc(cols * 4), y = k.heap.alloc(rows * 4), idx = k.heap.alloc(rows * 4);
  k.heap.f32(W, rows * cols).fill(0.01); k.heap.f32(x, cols).fill(1);
  const ev = k.heap.alloc(256 << 20); k.heap.f32(ev, 64 << 20).fill(1);
  sets.push({ k, W, x, y, idx, ev, huge, t: { all: [], r8: [], r64: [], ceil: [] } });
}
const smaps = readFileSync('/proc/self/smaps_rollup', 'utf8').match(/AnonHugePages:\s+(\d+)/);
console.log('AnonHugePages kB', smaps?.[1]);
let seed = 1;
const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
for (let r = 0; r < reps; r++) {
  for (const s of sets) {
    const { k, W, x, y, idx, ev } = s;
    for (const [name, frac] of [['all', 1], ['r8', 1 / 8], ['r64', 1 / 64]]) {
      const list = []; for (let i = 0; i < 4096; i++) if (frac === 1 || rnd() < frac) list.push(i);
      k.heap.i32(idx, list.length).set(list);
      let t0 = performance.now(); k.readBandwidth(ev, 256 << 20); if (name === 'all') s.t.ceil.push(256 * 2 ** 20 / ((performance.now() - t0) * 1e6));
      t0 = performance.now();
      if (frac === 1) k.gemv(W, 4096, 4096, x, y); else k.gemvRows(W, 4096, idx, list.length, x, y);
      s.t[name].push(list.length * 4096 * 4 / ((performance.now() - t0) * 1e6));
    }
  }
}
for (const s of sets) console.log(`${s.huge ? 'huge pages' : '4K pages  '}: gemv ${med(s.t.all).toFixed(1)} GB/s, gemvRows 1/8 ${med(s.t.r8).toFixed(1)}, 1/64 ${med(s.t.r64).toFixed(1)}; read ceiling ${med(s.t.ceil).toFixed(1)}`);
for (const s of sets) s.k.dispose();
