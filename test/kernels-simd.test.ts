// Tests for both builds of the wasm kernels (src/backends/cpu/module.ts): 'plain'
// (f32x4.mul + f32x4.add) and 'relaxed' (one fused f32x4.relaxed_madd per
// multiply-accumulate), each with 1 and 2 threads and OpenBLAS off, so every kernel runs
// the wasm build under test. Every kernel is checked against a float64 JS reference on
// seeded random data (tails of the 4-float vectors and 8-row groups, GEMM block edges,
// thread splits); test/cpu-kernels.test.ts covers the edge cases in depth for the
// default build, this file makes sure neither build is left untested whichever is the
// default.
//
// Tolerance (derived, not tuned): inputs are float32, so the float64 reference is exact
// up to 2^-53. A float32 sum of K products in any order, each product rounded or fused
// into its add, satisfies |fl(s) - s| <= gamma(K) · Σ|a_k b_k|, gamma(K) = K u / (1 - K u),
// u = 2^-24 (Higham, Accuracy and Stability, 3.1; an FMA only removes roundings); one
// more u covers an accumulate add or a final rounding. A dropped or wrong term is
// ~Σ|ab| / K, far above that for the K used here (the last test shows such an error
// fails). Attention's bound is derived where it is checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { U32, checkClose, checkGemmCases, describeEachWasmBuild, gamma, positionMajor, randArray, refProduct, rng } from './helpers.js';
import { EXPF4_ULPS, createKernels, type CpuKernels } from '../src/backends/cpu/kernels.js';

/** Copies `data` into a fresh heap block (with one spare float for a sentinel) and returns its address. */
function put(k: CpuKernels, data: Float32Array | Int32Array, spare = 0): number {
  const p = k.heap.alloc((data.length + spare) * 4 || 4);
  if (data instanceof Int32Array) k.heap.i32(p, data.length).set(data);
  else k.heap.f32(p, data.length).set(data);
  return p;
}

// Rows around the 8-row groups, columns around the 4-float vectors, and calls large
// enough (>= 64K floats) to be split across two threads.
const GEMV_SIZES: [number, number][] = [[1, 1], [7, 33], [9, 3], [17, 16], [23, 257], [200, 1024], [64, 1031]];
// [M, N, K]: the 4x8 micro-tile's edges, the KC=256 and NC=2048 block edges, and sizes
// (2MNK >= 2^19) split across threads.
const GEMM_SIZES: [number, number, number][] = [[1, 1, 1], [7, 33, 65], [97, 9, 257], [3, 2050, 5], [129, 65, 33], [200, 150, 70]];

describeEachWasmBuild('wasm kernels', (kernels, simd, threads) => {
  test('reports the build: fma only in the relaxed one', () => {
    const k = kernels();
    assert.equal(k.fma, simd === 'relaxed');
    assert.equal(k.blas, false);
    assert.equal(k.threads, threads);
  });

  test('gemv and gemvT', () => {
    const k = kernels();
    let seed = 100;
    for (const [rows, cols] of GEMV_SIZES) {
      // x and y hold max(rows, cols) floats: gemvT reads rows and writes cols, gemv the other way round.
      const n = Math.max(rows, cols);
      const w = randArray(rows * cols, seed++), x = randArray(n, seed++), y0 = randArray(n, seed++);
      const pW = put(k, w), pX = put(k, x), pY = put(k, y0, 1);
      k.heap.f32(pY + n * 4, 1)[0] = 42;
      k.gemvT(pW, rows, cols, pX, pY);
      checkClose(k.heap.f32(pY, cols), refProduct(cols, 1, rows, (c, r) => w[r * cols + c], (r) => x[r], (c) => y0[c]), `gemvT ${rows}x${cols}`);
      k.gemv(pW, rows, cols, pX, pY);
      checkClose(k.heap.f32(pY, rows), refProduct(rows, 1, cols, (r, c) => w[r * cols + c], (c) => x[c]), `gemv ${rows}x${cols}`);
      assert.equal(k.heap.f32(pY + n * 4, 1)[0], 42, 'wrote past y');
      k.heap.free(pW); k.heap.free(pX); k.heap.free(pY);
    }
  });

  test('gemvRows and axpyRows on gathered rows (duplicates, unsorted, groups of 8 plus tails)', () => {
    const k = kernels();
    let seed = 200;
    for (const [rows, cols] of GEMV_SIZES) {
      const r = rng(seed++);
      const n = Math.min(3 * rows, 37);
      const idx = Int32Array.from({ length: n }, () => Math.floor(r() * rows));
      const w = randArray(rows * cols, seed++), x = randArray(cols, seed++), coef = randArray(n, seed++), y0 = randArray(cols, seed++);
      const pW = put(k, w), pX = put(k, x), pI = put(k, idx), pC = put(k, coef), pY = put(k, y0, 1);
      const pG = put(k, new Float32Array(n));
      k.heap.f32(pY + cols * 4, 1)[0] = 42;
      k.gemvRows(pW, cols, pI, n, pX, pG);
      checkClose(k.heap.f32(pG, n), refProduct(n, 1, cols, (i, c) => w[idx[i] * cols + c], (c) => x[c]), `gemvRows ${rows}x${cols}`);
      k.axpyRows(pW, cols, pI, pC, n, pY);
      checkClose(k.heap.f32(pY, cols), refProduct(cols, 1, n, (c, i) => w[idx[i] * cols + c], (i) => coef[i], (c) => y0[c]), `axpyRows ${rows}x${cols}`);
      assert.equal(k.heap.f32(pY + cols * 4, 1)[0], 42, 'axpyRows wrote past y');
      for (const p of [pW, pX, pI, pC, pY, pG]) k.heap.free(p);
    }
  });

  test('gemm: every transpose, overwrite and accumulate, padded strides', () => {
    const k = kernels();
    checkGemmCases(k, GEMM_SIZES, 300);
  });

  test('gemmSmallM: odd rows, N not a multiple of 16, wide N split across threads', () => {
    const k = kernels();
    let seed = 400;
    for (const [M, N, K] of [[1, 1, 1], [3, 17, 5], [4, 40, 33], [16, 64, 192], [4, 1000, 300], [7, 2063, 130]]) {
      const a = randArray(M * K, seed++), b = randArray(K * N, seed++);
      const pA = put(k, a), pB = put(k, b), pC = put(k, new Float32Array(M * N).fill(Number.NaN), 1);
      k.heap.f32(pC + M * N * 4, 1)[0] = 42;
      k.gemmSmallM(pA, pB, pC, M, N, K);
      checkClose(k.heap.f32(pC, M * N), refProduct(M, N, K, (i, kk) => a[i * K + kk], (kk, j) => b[kk * N + j]), `gemmSmallM ${M}x${N}x${K}`);
      assert.equal(k.heap.f32(pC + M * N * 4, 1)[0], 42, 'gemmSmallM wrote past C');
      k.heap.free(pA); k.heap.free(pB); k.heap.free(pC);
    }
  });

  test('expArray (attention\'s exp): within EXPF4_ULPS ulps on [ln 2^-126, 0], exact at 0, 0 below, NaN for NaN', () => {
    const k = kernels();
    const lo = Math.log(2 ** -126);
    // Every 1/4096 of the range, then points near the edges of the reduction (x·log2 e
    // halfway between integers) and near both ends.
    const xs: number[] = [];
    for (let i = 0; i <= 4096 * 87; i++) xs.push(-i / 4096);
    for (let kk = 0; kk <= 126; kk++) for (const dx of [-1e-6, 0, 1e-6]) xs.push(-(kk + 0.5) * Math.LN2 + dx);
    xs.push(lo + 1e-5, lo - 1e-4, -100, -1e30, Number.NEGATIVE_INFINITY, Number.NaN, -0, 0);
    const x = Float32Array.from(xs), n = x.length;
    const pX = k.heap.alloc(n * 4), pY = k.heap.alloc(n * 4 + 4);
    k.heap.f32(pX, n).set(x);
    k.heap.f32(pY + n * 4, 1)[0] = 42;
    k.expArray(pX, pY, n);
    const y = k.heap.f32(pY, n);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      const v = x[i];
      if (Number.isNaN(v)) { assert.ok(Number.isNaN(y[i]), 'NaN stays NaN'); continue; }
      if (v < Math.fround(-87.336544)) { assert.equal(y[i], 0, `exp(${v}) below the smallest normal is 0`); continue; }
      const want = Math.exp(v);
      if (want < 2 ** -126) continue; // the few x between ln 2^-126 and the threshold: subnormal results
      const ulp = 2 ** (Math.floor(Math.log2(want)) - 23);
      const err = Math.abs(y[i] - want) / ulp;
      worst = Math.max(worst, err);
      if (!(err <= EXPF4_ULPS)) assert.fail(`${simd}: exp(${v}) = ${y[i]}, want ${want}: ${err.toFixed(2)} ulps`);
    }
    assert.equal(y[n - 1], 1, 'exp(0) = 1 exactly');
    assert.equal(y[n - 2], 1, 'exp(-0) = 1 exactly');
    assert.ok(worst > 0.4, `the measurement can see rounding (${worst})`);
    assert.equal(k.heap.f32(pY + n * 4, 1)[0], 42, 'nothing written past y');
    k.heap.free(pX); k.heap.free(pY);
  });

  test('attention: grouped kv heads, head- and position-major caches, odd head size', () => {
    const k = kernels();
    let seed = 500;
    for (const [H, group, T, hd, ctx] of [[1, 1, 1, 4, 1], [2, 1, 7, 12, 8], [4, 2, 9, 16, 12], [16, 1, 40, 64, 48], [6, 3, 33, 7, 40], [3, 1, 70, 9, 72]]) {
      const Hkv = H / group, scale = 1 / Math.sqrt(hd);
      const q = randArray(H * hd, seed++), K = randArray(Hkv * ctx * hd, seed++), V = randArray(Hkv * ctx * hd, seed++);
      for (const pm of [false, true]) {
        const pQ = put(k, q), pK = put(k, pm ? positionMajor(K, Hkv, ctx, hd) : K), pV = put(k, pm ? positionMajor(V, Hkv, ctx, hd) : V);
        const pO = put(k, new Float32Array(H * hd).fill(Number.NaN)), pS = put(k, new Float32Array(H * T));
        k.attention(pQ, pK, pV, pO, pS, H, group, T, hd, pm ? hd : ctx * hd, pm ? Hkv * hd : hd, scale);
        const got = k.heap.f32(pO, H * hd);
        for (let hh = 0; hh < H; hh++) {
          const base = Math.floor(hh / group) * ctx * hd;
          // Scores: a float32 dot of hd terms, times scale, rounded: error at most
          // delta = gamma(hd + 1) · scale · Σ|q k| each. The kernel then forms
          // d_t = s_t - max in float32 (relative error u: at most u·(|s_t - max| + 2·delta)
          // against the exact scores) and e_t = exp(d_t) within eps = EXPF4_ULPS·2^-23
          // relative. Softmax is shift-invariant, so p_t = e_t / Σ e is within a factor
          // e^(±(2·delta + u·(D_t + Dmax)))·(1 ± eps)/(1 ∓ eps) of the exact p_t, where D_t
          // bounds |d_t| and Dmax the largest D; p = e·(1/sum) rounds twice more (the
          // float64 sum: 1e-15 relative). So rho_t = e^(2·delta + u·(D_t + Dmax))·
          // (1 + eps)/(1 - eps)·(1 + u)^2 - 1. The output sums T products p·v from zero:
          // gamma(T)·Σ p̂|v|. So |out - exact| <= Σ_t (rho_t + gamma(T)(1 + rho_t))·p_t|v_t|.
          const s = new Float64Array(T);
          let delta = 0;
          for (let t = 0; t < T; t++) {
            let d = 0, m = 0;
            for (let i = 0; i < hd; i++) { const p = q[hh * hd + i] * K[base + t * hd + i]; d += p; m += Math.abs(p); }
            s[t] = d * scale;
            delta = Math.max(delta, gamma(hd + 1) * scale * m);
          }
          const mx = Math.max(...s);
          const D = Array.from(s, (v) => mx - v + 2 * delta), Dmax = Math.max(...D);
          const eps = EXPF4_ULPS * 2 ** -23;
          const rho = D.map((Dt) => Math.exp(2 * delta + U32 * (Dt + Dmax)) * ((1 + eps) / (1 - eps)) * (1 + U32) ** 2 - 1 + 1e-15);
          let sum = 0;
          for (let t = 0; t < T; t++) { s[t] = Math.exp(s[t] - mx); sum += s[t]; }
          for (let i = 0; i < hd; i++) {
            let o = 0, m = 0;
            for (let t = 0; t < T; t++) {
              const p = s[t] / sum, v = V[base + t * hd + i];
              o += p * v; m += (rho[t] + gamma(T) * (1 + rho[t])) * p * Math.abs(v);
            }
            const err = Math.abs(got[hh * hd + i] - o), tol = m + 1e-30;
            if (!(err <= tol)) assert.fail(`attention ${pm ? 'position' : 'head'}-major H=${H} group=${group} T=${T} hd=${hd}: head ${hh} [${i}]: got ${got[hh * hd + i]}, want ${o} (err ${err.toExponential(2)} > tol ${tol.toExponential(2)})`);
          }
        }
        for (const p of [pQ, pK, pV, pO, pS]) k.heap.free(p);
      }
    }
  });

  test('mulRows and addRows: exact float32 roundings (no multiply-accumulate in either)', () => {
    const k = kernels();
    let seed = 600;
    for (const [rows, n] of [[1, 7], [3, 5], [2, 1027]]) {
      const x = randArray(n, seed++), D = randArray(rows * n, seed++), y0 = randArray(rows * n, seed++);
      const pX = put(k, x), pD = put(k, D), pO = put(k, new Float32Array(rows * n));
      k.mulRows(pX, pD, pO, rows, n);
      let got = k.heap.f32(pO, rows * n);
      for (let i = 0; i < rows * n; i++) assert.equal(got[i], Math.fround(x[i % n] * D[i]), `mulRows ${rows}x${n} [${i}]`);
      k.heap.f32(pO, rows * n).set(y0);
      k.addRows(pO, pX, rows, n);
      got = k.heap.f32(pO, rows * n);
      for (let i = 0; i < rows * n; i++) assert.equal(got[i], Math.fround(y0[i] + x[i % n]), `addRows ${rows}x${n} [${i}]`);
      k.heap.free(pX); k.heap.free(pD); k.heap.free(pO);
    }
  });

  test('im2col and blockArgmax: exact copies and indices', () => {
    const k = kernels();
    let seed = 700;
    for (const [S, M, Fl, Fw] of [[4, 3, 3, 3], [5, 2, 2, 5]]) {
      const d = S * M, width = Fl * Fw * M, half = (Fw - 1) / 2;
      const state = randArray((Fl - 1) * d, seed++), cur = randArray(d, seed++);
      const pS = put(k, state), pC = put(k, cur), pCol = put(k, new Float32Array(S * width).fill(Number.NaN));
      k.im2col(pS, pC, pCol, S, M, Fl, Fw, d);
      const got = k.heap.f32(pCol, S * width);
      for (let s = 0; s < S; s++) for (let i = 0; i < Fl; i++) for (let j = 0; j < Fw; j++) for (let c = 0; c < M; c++) {
        const sm = s + j - half;
        const want = sm < 0 || sm >= S ? 0 : i < Fl - 1 ? state[i * d + sm * M + c] : cur[sm * M + c];
        assert.equal(got[s * width + (i * Fw + j) * M + c], want, `im2col S=${S} M=${M} Fl=${Fl} Fw=${Fw} [${s},${i},${j},${c}]`);
      }
      k.heap.free(pS); k.heap.free(pC); k.heap.free(pCol);
    }
    const nb = 24, N = 64;
    const l = randArray(nb * N, seed);
    l.fill(0.5, 0, N); // a block of ties: its first index
    const pL = put(k, l), pI = put(k, new Int32Array(nb));
    k.blockArgmax(pL, pI, nb, N);
    const idx = k.heap.i32(pI, nb);
    for (let b = 0; b < nb; b++) {
      let best = b * N;
      for (let u = b * N + 1; u < (b + 1) * N; u++) if (l[u] > l[best]) best = u;
      assert.equal(idx[b], best, `blockArgmax block ${b}`);
    }
    k.heap.free(pL); k.heap.free(pI);
  });
});

// Does the relaxed build really fuse? One lane of gemmSmallM (M = 1, K = 2) computes
// fl(a1·b1 + fl(a0·b0)) when fused and fl(fl(a1·b1) + fl(a0·b0)) when not. With
// a0·b0 = -1 and a1 = b1 = 1 + 2^-12, a1·b1 = 1 + 2^-11 + 2^-24 (exact in float64) rounds
// to 1 + 2^-11 in float32 (a tie, to even), so unfused gives 2^-11 and fused 2^-11 + 2^-24.
// relaxed_madd may round twice on hardware without FMA, so fusing is required only where
// V8 emits vfmadd: x64 with the fma CPU flag (Linux: /proc/cpuinfo).
test('relaxed build fuses multiply-add where the CPU has FMA; plain never does', (t) => {
  const unfused = 2 ** -11, fused = 2 ** -11 + 2 ** -24;
  let hasFma: boolean;
  try {
    hasFma = process.arch === 'x64' && /^flags\s*:.*\bfma\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    hasFma = false; // no /proc/cpuinfo: accept either result below
  }
  const e = 1 + 2 ** -12;
  for (const simd of ['plain', 'relaxed'] as const) {
    const k = createKernels({ simd, threads: 1, blas: false });
    try {
      const pA = put(k, Float32Array.of(1, e)), pB = put(k, Float32Array.from({ length: 32 }, (_, i) => (i < 16 ? -1 : e)));
      const pC = put(k, new Float32Array(16));
      k.gemmSmallM(pA, pB, pC, 1, 16, 2);
      const got = Array.from(k.heap.f32(pC, 16));
      if (simd === 'plain') assert.deepEqual(got, new Array<number>(16).fill(unfused), 'plain: mul then add');
      else if (hasFma) assert.deepEqual(got, new Array<number>(16).fill(fused), 'relaxed on an FMA CPU: one rounding');
      else for (const v of got) assert.ok(v === fused || v === unfused, `relaxed: ${v} is neither fused nor unfused`);
      t.diagnostic(`${simd}: ${got[0] === fused ? 'fused' : 'unfused'}`);
    } finally {
      k.dispose();
    }
  }
});

test('checker: rejects a dot product with one term missing, accepts the rounded exact one', () => {
  const K = 1031, a = randArray(K, 1), b = randArray(K, 2);
  const ref = refProduct(1, 1, K, (_, kk) => a[kk], (kk) => b[kk]);
  // An average term is far above the bound, so dropping one of average size fails.
  assert.ok(ref.mag[0] / K > 10 * gamma(K + 1) * ref.mag[0]);
  let j = 0;
  while (Math.abs(a[j] * b[j]) < ref.mag[0] / K) j++;
  assert.throws(() => checkClose([ref.val[0] - a[j] * b[j]], ref, 'dropped term'));
  checkClose([Math.fround(ref.val[0])], ref, 'rounded exact');
});
