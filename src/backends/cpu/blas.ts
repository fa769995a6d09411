// Optional OpenBLAS path for dense matmul and matrix-vector products: cblas_sgemm,
// cblas_sgemv and cblas_saxpy through the koffi FFI.
//
// What it is: a loader that returns null (never throws) when koffi is not installed,
// when no OpenBLAS shared library can be opened, or when the symbols are missing, so
// callers fall back to the WebAssembly kernels. koffi passes typed arrays by pointer,
// no copy. The decoder's per-token calls use the *At forms instead, which take native
// addresses as numbers (a wasm memory's base address, from native.ts, plus a byte
// offset: shared memories never move, also when they grow), so a call creates no
// typed-array views (the decoder allocates nothing per token).
// Threads: OpenBLAS runs single-threaded, set once at load (openblas_set_num_threads is
// process-global). With more than one thread the CPU kernels split a product into
// parts and each of their threads (main and workers, each of which loads this module)
// calls OpenBLAS on its part (exec.ts); OpenBLAS's own threads would compete with ours
// for the cores and sleep between calls (a wake costs 50-200 us here).
// What it is not: a general BLAS binding; only these three calls.
import { createRequire } from 'node:module';

type Koffi = typeof import('koffi');

export interface Blas {
  /** C[M,N] = alpha·op(A)·op(B) + beta·C, row-major, strides in elements; arrays start at the matrix origin. */
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    a: Float32Array, lda: number, b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number): void;
  /** sgemm on native addresses (native.ts nativeAddress plus a byte offset). */
  sgemmAt(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    a: number, lda: number, b: number, ldb: number, beta: number, c: number, ldc: number): void;
  /** y = alpha·op(A)·x + beta·y for A [M, N] row-major (lda in elements); op(A) = Aᵀ when trans. Unit strides; native addresses. */
  sgemvAt(trans: boolean, M: number, N: number, alpha: number, a: number, lda: number, x: number, beta: number, y: number): void;
  /** y[n] += alpha·x[n]; native addresses. */
  saxpyAt(n: number, alpha: number, x: number, y: number): void;
  readonly library: string;
}

const CANDIDATES = ['libopenblas.so.0', 'libopenblas.so', '/usr/lib/x86_64-linux-gnu/libopenblas.so.0', 'libopenblas.dylib', 'libopenblas.dll'];
const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

let cached: Blas | null | undefined;

/** Load OpenBLAS once per process; null when unavailable. */
export function loadBlas(): Blas | null {
  if (cached !== undefined) return cached;
  cached = null;
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch {
    return cached;
  }
  for (const name of CANDIDATES) {
    try {
      const lib = koffi.load(name);
      const sgemm = lib.func('void cblas_sgemm(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int)');
      const sgemmAt = lib.func('void cblas_sgemm(int, int, int, int, int, int, float, uintptr_t, int, uintptr_t, int, float, uintptr_t, int)');
      const sgemvAt = lib.func('void cblas_sgemv(int, int, int, int, float, uintptr_t, int, uintptr_t, int, float, uintptr_t, int)');
      const saxpyAt = lib.func('void cblas_saxpy(int, float, uintptr_t, int, uintptr_t, int)');
      const setThreads = lib.func('void openblas_set_num_threads(int)');
      setThreads(1); // see the header
      cached = {
        library: name,
        sgemm(transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc) {
          sgemm(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
        },
        sgemmAt(transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc) {
          sgemmAt(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
        },
        sgemvAt(trans, M, N, alpha, a, lda, x, beta, y) {
          sgemvAt(ROW_MAJOR, trans ? TRANS : NO_TRANS, M, N, alpha, a, lda, x, 1, beta, y, 1);
        },
        saxpyAt(n, alpha, x, y) {
          saxpyAt(n, alpha, x, 1, y, 1);
        },
      };
      return cached;
    } catch {
      // try the next name
    }
  }
  return cached;
}

/**
 * OpenBLAS multiplies a product without packing its operands when M·N·K is at most
 * SMALL_MNK (the "small matrix" kernels of its SkylakeX build, which this Zen 4 machine
 * uses). Measured here (`node dev/gemv/small-gemm.mjs`): 110 GFLOP/s up to K = 976 at M 16,
 * N 64, then 50 GFLOP/s at K = 1024, where packing starts.
 */
export const SMALL_MNK = 1_000_000;
/** Parts are no thinner than this along the split side (else the calls cost more than they save). */
const MIN_PART = 64;

/**
 * C[M,N] = op(A)·op(B) + beta·C as `blas.sgemmAt` (native addresses, strides in
 * elements), but a product whose M·N·K exceeds SMALL_MNK and whose M·N or M·K is
 * small is cut into parts under it: along K (each part adds into C, which stays in
 * cache) when M·N is small, else along N when M·K is. The decoder's factored layers
 * and convolutions are such products; measured (`node dev/gemv/small-gemm.mjs`, 1
 * thread): [16, 1024]·[1024, 64] 53 -> 20 µs in two K parts; the 17B-class
 * multiplicative layer [64, 9216]·[9216, 144] 2.43 -> 1.98 ms in 86 parts of 108. Large
 * products (training) go through unchanged.
 */
export function sgemmInParts(blas: Blas, transA: boolean, transB: boolean, M: number, N: number, K: number,
  a: number, lda: number, b: number, ldb: number, beta: number, c: number, ldc: number): void {
  if (M * N * K <= SMALL_MNK) {
    blas.sgemmAt(transA, transB, M, N, K, 1, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const kPart = Math.floor(SMALL_MNK / (M * N));
  if (kPart >= MIN_PART) {
    // Equal parts, so none is a thin remainder.
    const parts = Math.ceil(K / kPart), size = Math.ceil(K / parts);
    for (let k0 = 0; k0 < K; k0 += size) {
      const kk = Math.min(size, K - k0);
      const ak = a + (transA ? k0 * lda : k0) * 4, bk = b + (transB ? k0 : k0 * ldb) * 4;
      blas.sgemmAt(transA, transB, M, N, kk, 1, ak, lda, bk, ldb, k0 === 0 ? beta : 1, c, ldc);
    }
    return;
  }
  const nPart = Math.floor(SMALL_MNK / (M * K));
  if (nPart >= MIN_PART) {
    const parts = Math.ceil(N / nPart), size = Math.ceil(N / parts / 16) * 16;
    for (let j0 = 0; j0 < N; j0 += size) {
      const nn = Math.min(size, N - j0);
      blas.sgemmAt(transA, transB, M, nn, K, 1, a, lda, b + (transB ? j0 * ldb : j0) * 4, ldb, beta, c + j0 * 4, ldc);
    }
    return;
  }
  blas.sgemmAt(transA, transB, M, N, K, 1, a, lda, b, ldb, beta, c, ldc);
}
