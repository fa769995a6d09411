/**
 * Test helpers: seeded random tensors and float32 arrays, the float32 rounding-error
 * bound gamma(K), float64 reference products for the kernels (and one GEMM check over
 * every transpose and stride case), an allclose matcher whose message shows the worst
 * element, and a float64 finite-difference gradient check.
 */

import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import {
  Tensor, gradients, mul, noGrad, sum, tensor, type DType,
} from '../src/index.js';
import { createKernels, type CpuKernels, type SimdFlavor } from '../src/backends/cpu/kernels.js';
import { sample } from '../src/tensor/random.js';
import { numel } from '../src/tensor/shape.js';

/**
 * One describe() per build of the wasm kernels ('plain', 'relaxed') and thread count (1,
 * 2), each with its own kernels and OpenBLAS off, so every kernel runs the build under
 * test. `tests` registers the tests; they get the kernels from `kernels()` (made when
 * the suite starts, disposed when it ends).
 */
export function describeEachWasmBuild(title: string, tests: (kernels: () => CpuKernels, simd: SimdFlavor, threads: number) => void): void {
  for (const simd of ['plain', 'relaxed'] as const) {
    for (const threads of [1, 2]) {
      describe(`${title}, ${simd} build, ${threads} thread(s)`, () => {
        let k: CpuKernels | null = null;
        before(() => { k = createKernels({ simd, threads, blas: false }); });
        after(() => k?.dispose());
        tests(() => {
          if (k === null) throw new Error('kernels used outside a test');
          return k;
        }, simd, threads);
      });
    }
  }
}

/** Unit roundoff of float32. */
export const U32 = 2 ** -24;

/** Higham's gamma(K) = K·u / (1 - K·u): a float32 sum of K products, in any order, is within gamma(K)·Σ|terms| of the exact sum. */
export const gamma = (k: number): number => (k * U32) / (1 - k * U32);

/**
 * A head-major KV cache [Hkv, ctx, hd] laid out position-major, [ctx, Hkv·hd] (the
 * decoder's layout): attention's kernel reads either, given (kvStride, ld).
 */
export function positionMajor(kv: Float32Array, Hkv: number, ctx: number, hd: number): Float32Array {
  const out = new Float32Array(kv.length);
  for (let g = 0; g < Hkv; g++) for (let t = 0; t < ctx; t++) for (let i = 0; i < hd; i++) out[(t * Hkv + g) * hd + i] = kv[(g * ctx + t) * hd + i];
  return out;
}

/** A seeded uniform generator on [0, 1) (mulberry32-style mixing; not the library's own random op). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A float64 reference for float32 sums: each element's value, its error scale Σ|terms|, and the number of terms. */
export interface SumRef { val: Float64Array; mag: Float64Array; terms: number }

/** |got - val| <= gamma(terms + 1)·mag + tiny per element (one more u: an accumulate add or the final rounding); fails on the first element out of bound. */
export function checkClose(got: ArrayLike<number>, ref: SumRef, what: string): void {
  assert.equal(got.length, ref.val.length, `${what}: length`);
  const g = gamma(ref.terms + 1);
  for (let i = 0; i < ref.val.length; i++) {
    const err = Math.abs(got[i] - ref.val[i]);
    const tol = g * ref.mag[i] + 1e-30;
    if (!(err <= tol)) assert.fail(`${what}: element ${i}: got ${got[i]}, want ${ref.val[i]} (err ${err.toExponential(2)} > tol ${tol.toExponential(2)})`);
  }
}

/** C[i, j] = c0[i, j] + Σ_k a(i, k) · b(k, j) in float64, for i < M, j < N. */
export function refProduct(M: number, N: number, K: number, a: (i: number, k: number) => number, b: (k: number, j: number) => number,
  c0?: (i: number, j: number) => number): SumRef {
  const val = new Float64Array(M * N), mag = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = c0 ? c0(i, j) : 0, m = Math.abs(s);
      for (let k = 0; k < K; k++) {
        const p = a(i, k) * b(k, j);
        s += p;
        m += Math.abs(p);
      }
      val[i * N + j] = s;
      mag[i * N + j] = m;
    }
  }
  return { val, mag, terms: K };
}

/** refProduct of (acc ? C0 : 0) + op(A)·op(B), with arrays stored as CpuKernels.gemm takes them (offsets and row strides in floats). */
export function refGemm(tA: boolean, tB: boolean, M: number, N: number, K: number, a: Float32Array, aOff: number, lda: number,
  b: Float32Array, bOff: number, ldb: number, c0: Float32Array | null, c0Off: number, ldc: number): SumRef {
  return refProduct(M, N, K,
    (i, k) => (tA ? a[aOff + k * lda + i] : a[aOff + i * lda + k]),
    (k, j) => (tB ? b[bOff + j * ldb + k] : b[bOff + k * ldb + j]),
    c0 ? (i, j) => c0[c0Off + i * ldc + j] : undefined);
}

/** The [M, N] block at off with row stride ld. */
export function block(c: Float32Array, off: number, ld: number, M: number, N: number): Float32Array {
  const out = new Float32Array(M * N);
  for (let i = 0; i < M; i++) out.set(c.subarray(off + i * ld, off + i * ld + N), i * N);
  return out;
}

/** Every (transA, transB). */
export const TRANSPOSES: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

/**
 * k.gemm at every [M, N, K] of `sizes`, every transpose, overwriting and accumulating,
 * with padded strides (A [M|K, lda], B [K|N, ldb], C [M, ldc] as documented) against
 * refGemm; C's padding columns must stay untouched and nothing may be written past C.
 */
export function checkGemmCases(k: CpuKernels, sizes: readonly [number, number, number][], seed: number): void {
  const h = k.heap;
  for (const [M, N, K] of sizes) {
    for (const [tA, tB] of TRANSPOSES) {
      for (const acc of [false, true]) {
        const lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 1, ldc = N + 5;
        const aRows = tA ? K : M, bRows = tB ? N : K;
        const a = randArray(aRows * lda, seed++), b = randArray(bRows * ldb, seed++), c0 = randArray(M * ldc, seed++);
        const pA = h.alloc(a.length * 4), pB = h.alloc(b.length * 4), pC = h.alloc(c0.length * 4 + 4);
        h.f32(pA, a.length).set(a); h.f32(pB, b.length).set(b); h.f32(pC, c0.length).set(c0);
        h.f32(pC + c0.length * 4, 1)[0] = 42;
        k.gemm(tA, tB, M, N, K, pA, lda, pB, ldb, pC, ldc, acc);
        const got = h.f32(pC, c0.length);
        const what = `gemm ${M}x${N}x${K} tA=${tA} tB=${tB} acc=${acc}`;
        checkClose(block(got, 0, ldc, M, N), refGemm(tA, tB, M, N, K, a, 0, lda, b, 0, ldb, acc ? c0 : null, 0, ldc), what);
        for (let i = 0; i < M; i++) for (let j = N; j < ldc; j++) assert.equal(got[i * ldc + j], c0[i * ldc + j], `${what}: pad`);
        assert.equal(h.f32(pC + c0.length * 4, 1)[0], 42, `${what}: wrote past C`);
        h.free(pA); h.free(pB); h.free(pC);
      }
    }
  }
}

/** n seeded uniform float32 values in [-1, 1). */
export function randArray(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = 2 * r() - 1;
  return a;
}

/** Deterministic normal data (not through the library's own random op, so tests of that op stay independent). */
export function normalData(shape: readonly number[], seed: number, scale = 1): Float64Array {
  const n = numel(shape);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * sample('normal', seed, i, true);
  return out;
}

export function randT(shape: readonly number[], seed: number, opts: { dtype?: DType; device?: string; requiresGrad?: boolean; scale?: number } = {}): Tensor {
  return tensor(normalData(shape, seed, opts.scale ?? 1), shape, { dtype: opts.dtype ?? 'float64', device: opts.device ?? 'ref', requiresGrad: opts.requiresGrad });
}

/** Moves a tensor to another device/dtype (a leaf copy). */
export function to(x: Tensor, device: string, dtype: DType = x.dtype, requiresGrad = false): Tensor {
  return tensor(Float64Array.from(x.toArray()), x.shape, { device, dtype, requiresGrad });
}

/** |actual - expected| <= atol + rtol·|expected| elementwise, with shapes equal. */
export function assertClose(actual: Tensor | ArrayLike<number>, expected: Tensor | ArrayLike<number>, rtol: number, atol: number, what = ''): void {
  const a = actual instanceof Tensor ? actual.toArray() : actual;
  const e = expected instanceof Tensor ? expected.toArray() : expected;
  if (actual instanceof Tensor && expected instanceof Tensor) {
    assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  }
  assert.equal(a.length, e.length, `${what}: length`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < a.length; i++) {
    const bothNaN = Number.isNaN(a[i]) && Number.isNaN(e[i]);
    const same = a[i] === e[i]; // covers equal infinities
    const excess = Math.abs(a[i] - e[i]) - (atol + rtol * Math.abs(e[i]));
    if (!bothNaN && !same && !(excess <= 0) && (worst < 0 || excess > worstExcess)) { worst = i; worstExcess = excess; }
  }
  if (worst >= 0) {
    assert.fail(`${what}: element ${worst}: got ${a[worst]}, expected ${e[worst]} (rtol ${rtol}, atol ${atol})`);
  }
}

/**
 * Central-difference gradient check in float64 of L = Σ f(inputs) ⊙ R for a
 * fixed random R. h = 1e-6 gives truncation error O(h²·f''') ~ 1e-12 and
 * rounding error O(eps/h) ~ 1e-10 relative to |L|; tolerances below are
 * set from that, scaled by the size of L.
 */
export function gradCheck(name: string, f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: { h?: number; rtol?: number; device?: string } = {}): void {
  const h = opts.h ?? 1e-6;
  const leaves = inputs.map((x) => (x.dtype === 'int32' ? x : to(x, x.device, 'float64', true)));
  const out = f(...leaves);
  const R = randT(out.shape, 999, { device: out.device });
  const L = sum(mul(out, R));
  const wrt = leaves.filter((x) => x.requiresGrad);
  const analytic = gradients(L, wrt);
  const evalL = (xs: Tensor[]): number => noGrad(() => sum(mul(f(...xs), R)).item());
  const scale = Math.max(1, Math.abs(L.item()));
  wrt.forEach((x, w) => {
    const base = Float64Array.from(x.toArray());
    const numeric = new Float64Array(base.length);
    for (let i = 0; i < base.length; i++) {
      const probe = (delta: number): number => {
        const d = base.slice();
        d[i] += delta;
        const xs = leaves.map((t) => (t === x ? tensor(d, x.shape, { dtype: 'float64', device: x.device }) : t));
        return evalL(xs);
      };
      numeric[i] = (probe(h) - probe(-h)) / (2 * h);
    }
    assertClose(analytic[w], numeric, opts.rtol ?? 1e-5, 1e-6 * scale, `${name}: d/d(input ${leaves.indexOf(x)})`);
  });
}
