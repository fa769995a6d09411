// `npm run bench -- ops`: the CPU kernels (src/backends/cpu/kernels.ts) against the
// ceilings measured in the same run.
//
// - matmul GFLOP/s on JS arrays (what the tensor core calls; includes copying through
//   the heap for the wasm path): 1024^3 and the shapes of a d_model 512 transformer at
//   batch x length 4096 (forward, and the backward forms dX = dY W^T, dW = X^T dY),
//   WebAssembly SIMD and OpenBLAS (when available) side by side.
// - matrix-vector GB/s (weights bytes / time) for W [rows, cols=4096], rows 4096 and
//   11008: gemv over all rows, gemvRows over 1/8 and 1/64 of the rows (a fresh random
//   sorted index list each repetition), axpyRows over all, 1/8, 1/64; each beside the
//   read ceiling: readBandwidth over 512 MiB with the same threads. Every repetition
//   first reads the 512 MiB buffer (timed: that is the ceiling sample, and it evicts W
//   from the caches), then runs the kernel once (timed). Medians of the repetitions.
import { createKernels, type CpuKernels } from '../src/backends/cpu/kernels.js';
import { median } from './util.js';

export interface OpsOptions { threads: number[]; reps: number }


interface MatmulCase { name: string; tA: boolean; tB: boolean; M: number; N: number; K: number }
// d_model 512, d_ff 2048, B*T = 4096. Forward Y = X W with W stored [in, out];
// backward dX = dY W^T (transB) and dW = X^T dY (transA).
const MATMULS: MatmulCase[] = [
  { name: 'square 1024^3', tA: false, tB: false, M: 1024, N: 1024, K: 1024 },
  { name: 'qkv/out fwd', tA: false, tB: false, M: 4096, N: 512, K: 512 },
  { name: 'qkv/out dX (NT)', tA: false, tB: true, M: 4096, N: 512, K: 512 },
  { name: 'qkv/out dW (TN)', tA: true, tB: false, M: 512, N: 512, K: 4096 },
  { name: 'FF up fwd', tA: false, tB: false, M: 4096, N: 2048, K: 512 },
  { name: 'FF up dX (NT)', tA: false, tB: true, M: 4096, N: 512, K: 2048 },
  { name: 'FF up dW (TN)', tA: true, tB: false, M: 512, N: 2048, K: 4096 },
  { name: 'FF down fwd', tA: false, tB: false, M: 4096, N: 512, K: 2048 },
  { name: 'FF down dX (NT)', tA: false, tB: true, M: 4096, N: 2048, K: 512 },
  { name: 'FF down dW (TN)', tA: true, tB: false, M: 2048, N: 512, K: 4096 },
];

function fill(a: Float32Array, seed: number): Float32Array {
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

function timeMatmul(k: CpuKernels, c: MatmulCase, reps: number): number {
  const a = fill(new Float32Array(c.M * c.K), 1), b = fill(new Float32Array(c.K * c.N), 2), out = new Float32Array(c.M * c.N);
  const lda = c.tA ? c.M : c.K, ldb = c.tB ? c.K : c.N;
  const run = (): void => k.matmul(c.tA, c.tB, c.M, c.N, c.K, a, 0, lda, b, 0, ldb, out, 0, c.N);
  run(); // warm: arena growth, page faults
  const g: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    run();
    g.push((2 * c.M * c.N * c.K) / ((performance.now() - t0) * 1e6));
  }
  return median(g);
}

interface GemvCase { name: string; rows: number; frac: number; kind: 'gemv' | 'gemvRows' | 'axpyRows' }
const COLS = 4096;
const GEMVS: GemvCase[] = [];
for (const rows of [4096, 11008]) {
  GEMVS.push({ name: `gemv ${rows}x${COLS} all rows`, rows, frac: 1, kind: 'gemv' });
  for (const f of [8, 64]) GEMVS.push({ name: `gemvRows ${rows}x${COLS} 1/${f}`, rows, frac: f, kind: 'gemvRows' });
  for (const f of [1, 8, 64]) GEMVS.push({ name: `axpyRows ${rows}x${COLS} ${f === 1 ? 'all rows' : `1/${f}`}`, rows, frac: f, kind: 'axpyRows' });
}

/** A random sorted list of n distinct rows out of `rows`. */
function pick(rows: number, n: number, seed: number): Int32Array {
  const all = Int32Array.from({ length: rows }, (_, i) => i);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = i + (s % (rows - i));
    const t = all[i]; all[i] = all[j]; all[j] = t;
  }
  return all.subarray(0, n).sort();
}

interface Row { name: string; cells: Map<number, string[]> }

/** One matrix-vector row of the table: kernel GB/s, ceiling GB/s, ratio (medians). */
export interface MatVecResult { name: string; gbs: number; ceiling: number; ratio: number; pairedRatio: number }

/**
 * Matrix-vector kernels on `k` against the read ceiling, interleaved: each repetition
 * reads the 512 MiB buffer (timed: the ceiling sample; it also evicts W from the
 * caches), then runs the kernel once on cold W (timed). Repetition 0 is a warm-up.
 * Returns medians; `pairedRatio` is the median of the per-repetition ratios.
 */
export function runMatVec(k: CpuKernels, reps: number, log: (line: string) => void = console.log): MatVecResult[] {
  const h = k.heap;
  const ceilBytes = 512 * 1024 * 1024;
  const pBig = h.alloc(ceilBytes);
  fill(h.f32(pBig, ceilBytes / 4), 3);
  const maxRows = 11008;
  const pW = h.alloc(maxRows * COLS * 4), pX = h.alloc(COLS * 4), pY = h.alloc(maxRows * 4);
  const pI = h.alloc(maxRows * 4), pC = h.alloc(maxRows * 4);
  fill(h.f32(pW, maxRows * COLS), 4); fill(h.f32(pX, COLS), 5); fill(h.f32(pC, maxRows), 6);
  const ceilAll: number[] = [];
  const results: MatVecResult[] = [];
  let sink = 0;
  GEMVS.forEach((c, ci) => {
    const n = c.kind === 'gemv' ? c.rows : Math.floor(c.rows / c.frac);
    const bytes = n * COLS * 4;
    const ceil: number[] = [], got: number[] = [], ratio: number[] = [];
    for (let r = 0; r < reps + 1; r++) {
      h.i32(pI, n).set(c.frac === 1 ? Int32Array.from({ length: n }, (_, i) => i) : pick(c.rows, n, 1000 * ci + r));
      let t0 = performance.now();
      sink += k.readBandwidth(pBig, ceilBytes);
      const tc = performance.now() - t0;
      t0 = performance.now();
      if (c.kind === 'gemv') k.gemv(pW, c.rows, COLS, pX, pY);
      else if (c.kind === 'gemvRows') k.gemvRows(pW, COLS, pI, n, pX, pY);
      else k.axpyRows(pW, COLS, pI, pC, n, pY);
      const tk = performance.now() - t0;
      if (r === 0) continue; // first repetition: warm-up
      ceil.push(ceilBytes / tc / 1e6);
      got.push(bytes / tk / 1e6);
      ratio.push(tc / ceilBytes * bytes / tk);
    }
    ceilAll.push(...ceil);
    const g = median(got), rc = median(ceil);
    results.push({ name: c.name, gbs: g, ceiling: rc, ratio: g / rc, pairedRatio: median(ratio) });
    log(`  ${k.threads} thr  ${c.name.padEnd(28)} ${g.toFixed(1).padStart(6)} GB/s   read ceiling ${rc.toFixed(1)} GB/s   ` +
      `${((100 * g) / rc).toFixed(0)}% (paired ${(100 * median(ratio)).toFixed(0)}%)`);
  });
  log(`  ${k.threads} thr  read ceiling (512 MiB, all samples): median ${median(ceilAll).toFixed(1)} GB/s  (checksum ${sink.toExponential(3)})`);
  h.free(pBig); h.free(pW); h.free(pX); h.free(pY); h.free(pI); h.free(pC);
  return results;
}

export function runOps(opts: OpsOptions): void {
  const { threads, reps } = opts;
  console.log(`ops: threads ${threads.join(',')}, ${reps} repetitions, medians; node ${process.version}`);
  const mm: Row[] = MATMULS.map((c) => ({ name: `${c.name} [${c.M}x${c.K}]x[${c.K}x${c.N}]`, cells: new Map() }));
  const mv: Row[] = GEMVS.map((c) => ({ name: c.name, cells: new Map() }));
  let blasName = '';
  for (const T of threads) {
    // --- matrix-vector, against the read ceiling ---
    const k = createKernels({ threads: T, blas: false });
    runMatVec(k, reps).forEach((res, ci) => {
      mv[ci].cells.set(T, [res.gbs.toFixed(1), res.ceiling.toFixed(1), `${(100 * res.ratio).toFixed(0)}%`]);
    });

    // --- matmul: wasm first, then BLAS (its threads spin for a while after each call) ---
    MATMULS.forEach((c, ci) => {
      const g = timeMatmul(k, c, reps);
      mm[ci].cells.set(T, [g.toFixed(1)]);
      console.log(`  ${T} thr  wasm matmul ${mm[ci].name.padEnd(44)} ${g.toFixed(1).padStart(6)} GFLOP/s  (${(g / T).toFixed(1)}/thread)`);
    });
    k.dispose();
    const kb = createKernels({ threads: T });
    if (kb.blas) {
      blasName = 'OpenBLAS';
      MATMULS.forEach((c, ci) => {
        const g = timeMatmul(kb, c, reps);
        mm[ci].cells.get(T)?.push(g.toFixed(1));
        console.log(`  ${T} thr  BLAS matmul ${mm[ci].name.padEnd(44)} ${g.toFixed(1).padStart(6)} GFLOP/s`);
      });
    } else {
      for (const row of mm) row.cells.get(T)?.push('n/a');
    }
    kb.dispose();
  }

  // --- compact tables ---
  console.log('\nmatmul, GFLOP/s (median), JS arrays in and out' + (blasName ? '' : ' (OpenBLAS not available)'));
  console.log(`| shape | ${threads.map((t) => `${t} thr WASM | ${t} thr BLAS`).join(' | ')} |`);
  console.log(`| --- | ${threads.map(() => '---: | ---:').join(' | ')} |`);
  for (const r of mm) console.log(`| ${r.name} | ${threads.map((t) => (r.cells.get(t) ?? ['', '']).join(' | ')).join(' | ')} |`);
  console.log('\nmatrix-vector, GB/s of weights read (median) | read ceiling in the same run | ratio');
  console.log(`| kernel, W [rows x cols] | ${threads.map((t) => `${t} thr GB/s | ${t} thr ceiling | ${t} thr ratio`).join(' | ')} |`);
  console.log(`| --- | ${threads.map(() => '---: | ---: | ---:').join(' | ')} |`);
  for (const r of mv) console.log(`| ${r.name} | ${threads.map((t) => (r.cells.get(t) ?? ['', '', '']).join(' | ')).join(' | ')} |`);
}
