// Lab: the plain wasm kernels (f32x4.mul + f32x4.add) against the relaxed-SIMD build
// (one fused f32x4.relaxed_madd per multiply-accumulate), same shapes, OpenBLAS off so
// every call runs the wasm build under test. Plain and relaxed alternate within each
// repetition so both see the same neighbours' load; prints the median over repetitions.
// Each figure is a batch of back-to-back calls (>= ~15 ms), so small operands stay in
// cache from the previous call, as they do in a decode loop that reuses them; the
// gathered rows cycle through 64 different random sets (the whole 24 MiB matrix) so a
// set is not in cache from its last use.
// node dev/gemv/fma.mjs [threads=1] [reps=7]   (after npm run build)
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
import { randArray, rng } from '../../build/test/helpers.js';

const threads = Number(process.argv[2] ?? 1);
const reps = Number(process.argv[3] ?? 7);
const builds = ['plain', 'relaxed'];
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };

function fill(k, p, n, seed) {
  k.heap.f32(p, n).set(randArray(n, seed));
}

// Sorted distinct random rows: the decoder's active set.
function pick(r, rows, n) {
  const s = new Set();
  while (s.size < n) s.add(Math.floor(r() * rows));
  return Int32Array.from([...s].sort((a, b) => a - b));
}

/** One case per kernel and shape: setup(k) returns { call(i), unit, amount } (amount per call in unit). */
const cases = [
  ...[[4096, 4096], [1024, 3072]].map(([rows, cols]) => ({
    name: `gemv ${rows}x${cols}`, unit: 'GB/s', setup(k) {
      const W = k.heap.alloc(rows * cols * 4), x = k.heap.alloc(cols * 4), y = k.heap.alloc(rows * 4);
      fill(k, W, rows * cols, 1); fill(k, x, cols, 2);
      return { call: () => k.gemv(W, rows, cols, x, y), amount: rows * cols * 4 / 1e9 };
    },
  })),
  ...(threads > 1 ? [] : [
    ...['gemvRows', 'axpyRows'].map((op) => ({
      name: `${op} 96 of 6144x1024`, unit: 'GB/s', setup(k) {
        const rows = 6144, cols = 1024, n = 96, sets = 64, r = rng(3);
        const W = k.heap.alloc(rows * cols * 4), x = k.heap.alloc(cols * 4), y = k.heap.alloc(cols * 4), coef = k.heap.alloc(n * 4);
        fill(k, W, rows * cols, 4); fill(k, x, cols, 5); fill(k, coef, n, 6); k.heap.f32(y, cols).fill(0);
        const idx = [];
        for (let s = 0; s < sets; s++) { const p = k.heap.alloc(n * 4); k.heap.i32(p, n).set(pick(r, rows, n)); idx.push(p); }
        const call = op === 'gemvRows'
          ? (i) => k.gemvRows(W, cols, idx[i % sets], n, x, y)
          : (i) => k.axpyRows(W, cols, idx[i % sets], coef, n, y);
        return { call, amount: n * cols * 4 / 1e9 };
      },
    })),
    ...[[4, 8000, 1024], [16, 64, 1024]].map(([M, N, K]) => ({
      name: `gemmSmallM M=${M} N=${N} K=${K}`, unit: 'GFLOP/s', setup(k) {
        const A = k.heap.alloc(M * K * 4), B = k.heap.alloc(K * N * 4), C = k.heap.alloc(M * N * 4);
        fill(k, A, M * K, 7); fill(k, B, K * N, 8);
        return { call: () => k.gemmSmallM(A, B, C, M, N, K), amount: 2 * M * N * K / 1e9 };
      },
    })),
    {
      // Not in the decoder: the packed GEMM's 4x8 micro-tile, for comparison.
      name: 'gemm 1024^3 (packed)', unit: 'GFLOP/s', setup(k) {
        const n = 1024, A = k.heap.alloc(n * n * 4), B = k.heap.alloc(n * n * 4), C = k.heap.alloc(n * n * 4);
        fill(k, A, n * n, 12); fill(k, B, n * n, 13);
        return { call: () => k.gemm(false, false, n, n, n, A, n, B, n, C, n, false), amount: 2 * n ** 3 / 1e9 };
      },
    },
    {
      name: 'attention H=16 hd=64 T=512', unit: 'GFLOP/s', setup(k) {
        const H = 16, hd = 64, T = 512;
        const q = k.heap.alloc(H * hd * 4), K = k.heap.alloc(H * T * hd * 4), V = k.heap.alloc(H * T * hd * 4);
        const out = k.heap.alloc(H * hd * 4), s = k.heap.alloc(T * 4);
        fill(k, q, H * hd, 9); fill(k, K, H * T * hd, 10); fill(k, V, H * T * hd, 11);
        // Scores and the weighted sum: 2 flops per multiply-add, two passes of T·hd per head.
        return { call: () => k.attention(q, K, V, out, s, H, 1, T, hd, T * hd, 1 / 8), amount: 4 * H * T * hd / 1e9 };
      },
    },
  ]),
];

const ks = builds.map((simd) => createKernels({ simd, threads, blas: false }));
for (const [b, k] of ks.entries()) if (k.fma !== (builds[b] === 'relaxed')) throw new Error(`${builds[b]}: fma ${k.fma}`);
console.log(`# node dev/gemv/fma.mjs ${threads} ${reps}  (${threads} thread(s), medians of ${reps}; ${new Date().toISOString()})`);
console.log('| kernel | plain | relaxed (FMA) | relaxed / plain |');
console.log('| --- | --- | --- | --- |');
for (const c of cases) {
  const runs = ks.map((k) => c.setup(k));
  // Calls per batch so that one batch takes ~15 ms (measured on the plain build, after a warm batch).
  let calls = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) runs[0].call(i);
    if (performance.now() - t0 > 15 || calls > 1e6) break;
    calls *= 2;
  }
  const rates = builds.map(() => []);
  for (let r = 0; r < reps; r++) {
    for (const [b, run] of runs.entries()) {
      const t0 = performance.now();
      for (let i = 0; i < calls; i++) run.call(i);
      const s = (performance.now() - t0) / 1e3;
      rates[b].push(run.amount * calls / s);
    }
  }
  const [p, q] = rates.map(med);
  console.log(`| ${c.name} | ${p.toFixed(1)} ${c.unit} | ${q.toFixed(1)} ${c.unit} | ${(q / p).toFixed(2)} |`);
}
for (const k of ks) k.dispose();
