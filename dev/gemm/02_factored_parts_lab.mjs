// Lab: Sparse QKV's multiplicative layer, m = (x ⊙ D)·E, as the decoder runs it on one
// thread (mulRows into xs [S, d], then sgemmInParts: OpenBLAS's small-matrix calls along
// K) against variants that looked as if they could hide E's cold read or use the core
// better:
//   - stream: all of E read once (readSum) before the product, so OpenBLAS finds it cached;
//   - stream by part: each K-part of E read just before its call;
//   - rows 32, K 216, K outer: parts of 32 rows of xs (two calls per part of E, the second
//     finding it in L2) instead of all 64 rows and K 108 (17B-class shape only).
// "hot" runs one copy of the weights; "cold" cycles through ~200 MB of copies.
//   node dev/gemm/02_factored_parts_lab.mjs [17b|800m] [reps]
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
import { loadBlas, sgemmInParts, SMALL_MNK } from '../../build/src/backends/cpu/blas.js';
import { nativeAddress } from '../../build/src/backends/cpu/native.js';

const shape = process.argv[2] ?? '17b';
const reps = Number(process.argv[3] ?? 9);
const [S, M, d] = shape === '800m' ? [16, 64, 1024] : [64, 144, 9216];
const k = createKernels({ threads: 1 });
const ex = k.exs[0]; // the raw wasm exports: no staging, same kernels
const blas = loadBlas();
if (blas === null) { console.error('OpenBLAS not available'); process.exit(2); }
const base = nativeAddress(k.heap.memories[0].buffer);
const nat = (p) => base + p;
const med = (a) => { const s = [...a].sort((p, q) => p - q); return s[s.length >> 1]; };

const x = k.heap.alloc(d * 4), xs = k.heap.alloc(S * d * 4, 64), C = k.heap.alloc(S * M * 4, 64);
k.heap.f32(x, d).fill(1.5);
const kPart = Math.floor(SMALL_MNK / (S * M));
const variants = {
  decoder: (D, E) => { ex.mulRows(x, D, xs, S, d); sgemmInParts(blas, false, false, S, M, d, nat(xs), d, nat(E), M, 0, nat(C), M); },
  stream: (D, E) => { ex.mulRows(x, D, xs, S, d); ex.readSum(E, d * M); sgemmInParts(blas, false, false, S, M, d, nat(xs), d, nat(E), M, 0, nat(C), M); },
  'stream by part': (D, E) => {
    ex.mulRows(x, D, xs, S, d);
    const parts = Math.ceil(d / kPart), size = Math.ceil(d / parts);
    for (let k0 = 0; k0 < d; k0 += size) {
      const kk = Math.min(size, d - k0);
      ex.readSum(E + k0 * M * 4, kk * M);
      blas.sgemmAt(false, false, S, M, kk, 1, nat(xs + k0 * 4), d, nat(E + k0 * M * 4), M, k0 === 0 ? 0 : 1, nat(C), M);
    }
  },
};
if (S === 64) {
  variants['rows 32, K 216'] = (D, E) => {
    ex.mulRows(x, D, xs, S, d);
    for (let k0 = 0; k0 < d; k0 += 216) {
      for (let i0 = 0; i0 < S; i0 += 32) {
        blas.sgemmAt(false, false, 32, M, Math.min(216, d - k0), 1, nat(xs + (i0 * d + k0) * 4), d, nat(E + k0 * M * 4), M, k0 === 0 ? 0 : 1, nat(C + i0 * M * 4), M);
      }
    }
  };
}

for (const [label, copies] of [['hot', 1], ['cold', Math.max(4, Math.floor(200e6 / ((S + M) * d * 4)))]]) {
  const Ds = [], Es = [];
  for (let c = 0; c < copies; c++) {
    const D = k.heap.alloc(S * d * 4, 4096), E = k.heap.alloc(d * M * 4, 4096);
    k.heap.f32(D, S * d).fill(0.01); k.heap.f32(E, d * M).fill(0.01);
    Ds.push(D); Es.push(E);
  }
  const t = Object.fromEntries(Object.keys(variants).map((n) => [n, []]));
  for (let r = 0; r < reps; r++) {
    for (const n in variants) {
      const t0 = performance.now();
      for (let c = 0; c < copies; c++) variants[n](Ds[c], Es[c]);
      t[n].push((performance.now() - t0) * 1000 / copies);
    }
  }
  console.log(`${shape}, [${S}, ${d}]·[${d}, ${M}], ${label} (${copies} cop${copies === 1 ? 'y' : 'ies'} of D and E), µs per product:`);
  for (const n in t) console.log(`  ${n.padEnd(16)} ${med(t[n]).toFixed(1)} (${(2 * S * M * d / med(t[n]) / 1e3).toFixed(0)} GFLOP/s)`);
  for (let c = 0; c < copies; c++) { k.heap.free(Ds[c]); k.heap.free(Es[c]); }
}
k.dispose();
