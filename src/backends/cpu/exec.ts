// The part of the CPU kernel library that runs on every thread: the control block
// layout in shared memory and `runShare`, which executes one thread's share of a job.
//
// Protocol (main thread = thread 0, workers 1..T-1): the main thread writes the op,
// its arguments and every thread's range into the control block, sets DONE = 0 and
// bumps SEQ (Atomics, so the plain writes before it are visible to whoever reads SEQ),
// then Atomics.notify(SEQ). Each worker waits for SEQ to change (spinning briefly,
// then Atomics.wait), runs its share, and Atomics.add(DONE, 1). The main thread runs
// share 0 and waits for DONE = T-1. Every worker takes part in every dispatched job
// (possibly with an empty range), so no worker can fall a job behind.

/** Exports of build/wasm/kernels.wasm (see src/backends/cpu/assembly/kernels.ts). */
export interface KernelExports {
  readSum(p: number, n: number): number;
  gemv(pW: number, cols: number, pX: number, pY: number, r0: number, r1: number): void;
  gemvRows(pW: number, cols: number, pIdx: number, pX: number, pY: number, i0: number, i1: number): void;
  axpyRows(pW: number, cols: number, pIdx: number, pCoef: number, n: number, pY: number, c0: number, c1: number): void;
  gemmScratchBytes(): number;
  gemm(transA: number, transB: number, K: number, pA: number, lda: number, pB: number, ldb: number,
    pC: number, ldc: number, accumulate: number, i0: number, i1: number, j0: number, j1: number, scratch: number): void;
}

// Control block: CTL_BYTES bytes at a 64-aligned heap pointer.
export const CTL_BYTES = 4096;
export const MAX_THREADS = 64;
// Int32 indices (each on its own cache line).
export const SEQ = 0;
export const DONE = 16;
export const OP = 32;
export const ERR = 48;
// Float64 indices.
export const ARGS = 256 / 8;     // 32 arguments
export const RANGES = 512 / 8;   // 4 per thread: lo0, hi0, lo1, hi1
export const RESULTS = 2560 / 8; // 1 per thread

export const Op = { Exit: 1, Gemv: 2, GemvRows: 3, AxpyRows: 4, Read: 5, Gemm: 6 } as const;

/** Run thread t's share of the job described in the control block. */
export function runShare(ex: KernelExports, i32: Int32Array, f64: Float64Array, t: number, scratch: number): void {
  const a = ARGS;
  const r = RANGES + 4 * t;
  const lo = f64[r], hi = f64[r + 1];
  switch (i32[OP]) {
    case Op.Gemv:
      if (hi > lo) ex.gemv(f64[a], f64[a + 1], f64[a + 2], f64[a + 3], lo, hi);
      break;
    case Op.GemvRows:
      if (hi > lo) ex.gemvRows(f64[a], f64[a + 1], f64[a + 2], f64[a + 3], f64[a + 4], lo, hi);
      break;
    case Op.AxpyRows:
      if (hi > lo) ex.axpyRows(f64[a], f64[a + 1], f64[a + 2], f64[a + 3], f64[a + 4], f64[a + 5], lo, hi);
      break;
    case Op.Read:
      f64[RESULTS + t] = hi > lo ? ex.readSum(f64[a] + lo * 4, hi - lo) : 0;
      break;
    case Op.Gemm: {
      const j0 = f64[r + 2], j1 = f64[r + 3];
      if (hi > lo && j1 > j0) {
        ex.gemm(f64[a], f64[a + 1], f64[a + 2], f64[a + 3], f64[a + 4], f64[a + 5], f64[a + 6],
          f64[a + 7], f64[a + 8], f64[a + 9], lo, hi, j0, j1, scratch);
      }
      break;
    }
    default:
      throw new Error(`cpu kernels: unknown op ${i32[OP]}`);
  }
}
