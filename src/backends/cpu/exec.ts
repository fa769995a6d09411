// The part of the CPU kernel library that runs on every thread: the control block
// layout in shared memory, `runShare` (one thread's static share of a job) and
// `runChunks` (claim and run chunks of a job until none are left).
//
// Protocol (main thread = thread 0, workers 1..T-1). SEQ holds (job counter << OP_BITS) | op
// and is the only word a worker waits on; the op travels inside it, so a worker never
// pairs one job's SEQ with another job's op.
// - Static jobs (gemm, exit): the main thread writes the arguments and every thread's
//   range, sets DONE = 0, stores SEQ and notifies. Each worker runs its share and adds
//   1 to DONE; the main thread runs share 0 and waits for DONE = T-1. The main thread
//   never posts a job before every worker finished the previous static one.
// - Chunked jobs (matrix-vector kernels, OpenBLAS parts, read ceiling): the work is cut into NCHUNKS
//   chunks. NEXT holds (tag << 20) | next chunk, tag = job counter mod 2^11. The main
//   thread first stores NEXT = tag << 20 (from then on no claim of an older job can
//   succeed), then the arguments, NCHUNKS, COMPLETE = 0, then SEQ. Every thread
//   (main included) claims chunks by compare-exchange on NEXT, only while the tag is
//   its job's, runs them and adds 1 to COMPLETE; the main thread returns when
//   COMPLETE = NCHUNKS. A worker that wakes late finds nothing to claim and costs
//   nothing; one that is descheduled holds up at most the chunk it claimed. Arguments
//   stay valid while any chunk is unfinished, and a claim is made before they are read.
// - Memories: the heap may span several wasm memories (heap.ts). Every thread holds one
//   instance of the kernels module per memory; a job's pointers are byte offsets in
//   memory ARGS[A_MEM], and it runs on that memory's instance. The control block lives
//   in memory 0. A new memory reaches the workers as an AddMemory static job: the main
//   thread first posts {memory, scratch} on each worker's MessagePort, then the job;
//   each worker takes the message synchronously (receiveMessageOnPort), instantiates
//   the module on it and adds 1 to DONE.
// - OpenBLAS parts (BlasGemv, BlasGemm): chunked jobs whose chunks are single-threaded
//   OpenBLAS calls (blas.ts) on parts of one product. Their arguments are native
//   addresses (valid in every thread of the process), so they need no wasm instance.
//   Chunked rather than static: on a loaded machine a descheduled worker would hold up
//   a static share for a whole scheduler slice (4 ms measured here).
// - Prefetch: a hint the main thread posts without waiting, into one of two slots, so
//   that one can wait while a worker reads the other (the decoder posts the controller's
//   weights, then the next layer's Sparse QKV weights, often before the first is read).
//   Slot k has a state word PF_STATE + k (0 free, 1 posted, 2 claimed) and a descriptor
//   at PF_SLOT[k]: its post number, the number of ranges, then memory, offset, bytes per
//   range. The main thread posts into a free slot, the one after the slot it posted last
//   first (with several workers either may free first); with none free the hint is
//   dropped. It writes the descriptor, stores state 1 and posts the job. A worker that
//   has no prefetch claims the posted slot with the lower post number (compare-exchange
//   1 -> 2; losing that race to another worker, it looks again), copies its ranges and
//   reads them once, so the data is in the shared caches when the main thread gets to
//   it; then it stores 0 and adds 1 to PF_DONE. It reads in pieces of PF_PIECE bytes and looks at SEQ between
//   pieces: a new job is served first, then the prefetch resumes (PrefetchCursor). The
//   main thread never writes a slot's descriptor while its state is not 0.
// - PingPong: a static job in which the main thread and worker 1 pass the word PING back
//   and forth (roundTripNs: where the threads run relative to each other's caches).

import { sgemmInParts, type Blas } from './blas.js';

/** Exports of build/wasm/kernels.wasm (see src/backends/cpu/assembly/kernels.ts). */
export interface KernelExports {
  readSum(p: number, n: number): number;
  gemv(pW: number, cols: number, pX: number, pY: number, r0: number, r1: number): void;
  gemvRows(pW: number, cols: number, ld: number, pIdx: number, pX: number, pY: number, i0: number, i1: number): void;
  axpyRows(pW: number, cols: number, ld: number, pIdx: number, pCoef: number, pY: number, i0: number, i1: number): void;
  zero(pY: number, n: number): void;
  addTo(pY: number, p: number, n: number): void;
  gemmScratchBytes(): number;
  gemm(transA: number, transB: number, K: number, pA: number, lda: number, pB: number, ldb: number,
    pC: number, ldc: number, accumulate: number, i0: number, i1: number, j0: number, j1: number, scratch: number): void;
  gemmSmallM(pA: number, pB: number, pC: number, M: number, N: number, K: number, j0: number, j1: number, kb: number, panels: number): void;
  mulRows(pX: number, pD: number, pOut: number, rows: number, n: number): void;
  addRows(pY: number, pB: number, rows: number, n: number): void;
  blockArgmax(pL: number, pIdx: number, nb: number, N: number): void;
  gemvPanels(pW: number, rows: number, cols: number, pX: number, ldx: number, T: number, pY: number, ldy: number, g0: number, g1: number): void;
  unpanel(pW: number, cols: number, r0: number, r1: number, pOut: number, ldo: number): void;
  screenQuantize(pU: number, r: number, qmax: number, pUq: number, pInfo: number): void;
  pairDotI16(pP: number, groups: number, cols: number, pUq: number, pAcc: number, c0: number, c1: number): void;
  screenArgmax(pAcc: number, pColScale: number, pBias: number, pS: number, pIdx: number, nb: number, N: number,
    pMargin: number, pInfo: number, pC2t: number, r: number, pU: number): number;
  im2col(pState: number, pCur: number, pCol: number, S: number, M: number, Fl: number, Fw: number, d: number): void;
  expArray(pX: number, pY: number, n: number): void;
  attention(pQ: number, pK: number, pV: number, pOut: number, pS: number, H: number, group: number, T: number, hd: number,
    kvStride: number, ld: number, scale: number): void;
  norm(pX: number, pW: number, pB: number, hasBias: number, pOut: number, n: number, eps: number, rms: number): void;
  rope(pV: number, nHeads: number, hd: number, pCos: number, pSin: number): void;
  copyRows(pDst: number, dstStride: number, pSrc: number, srcStride: number, rows: number, n: number): void;
  swiglu(pH: number, pOut: number, n: number): void;
  pingTrips(pWord: number, k0: number, k1: number, patience: number): number;
  pongTrips(pWord: number, k0: number, k1: number, patience: number): number;
}

// Control block: CTL_BYTES bytes at a 64-aligned heap pointer.
export const CTL_BYTES = 4096;
export const MAX_THREADS = 64;
// Int32 indices (each on its own cache line, but for the prefetch slots' states and count:
// written a few times per layer, they share one).
export const SEQ = 0;
export const DONE = 16;
export const ERR = 48;
export const PF_STATE = 32;   // and 33: the prefetch slots' states
export const PF_DONE = 36;    // prefetches read to the end (a count, for diagnostics and tests)
export const NEXT = 768;      // byte 3072
export const COMPLETE = 784;  // byte 3136
export const NCHUNKS = 800;   // byte 3200
export const PING = 816;      // byte 3264: the round-trip probe's word (PingPong)
// Float64 indices.
export const ARGS = 256 / 8;     // 32 arguments
export const RANGES = 512 / 8;   // 4 per thread: lo0, hi0, lo1, hi1
export const RESULTS = 2560 / 8; // 1 per thread
export const PF_MAX_RANGES = 15;
/** The prefetch slots' descriptors: post number, number of ranges, then 3 per range (memory, offset, bytes). */
export const PF_SLOT = [3328 / 8, 3328 / 8 + 2 + 3 * PF_MAX_RANGES] as const;

export const Op = { Exit: 1, Gemv: 2, GemvRows: 3, AxpyRows: 4, Read: 5, Gemm: 6, GemmSmallM: 7, AddMemory: 8, BlasGemv: 9, BlasGemm: 10, Attention: 11, MulRows: 12, Prefetch: 13, BlasGemmBatch: 14, PairDot: 15, GemvPanels: 16, PanelsGemm: 17, PingPong: 18 } as const;
export const TAG_BITS = 11;
/** Bits of SEQ that hold the op (every Op value must fit: see the test in cpu-kernels.test.ts). */
export const OP_BITS = 5;
/** The job counter wraps below this, so (counter << OP_BITS) | op stays a positive int32. */
export const MAX_JOBS = 2 ** (31 - OP_BITS) - 1;
export const CHUNK_BITS = 20;
const CHUNK_MASK = (1 << CHUNK_BITS) - 1;

/** Ops that are cut into chunks claimed from NEXT (the others use static ranges). */
export function isChunked(op: number): boolean {
  return op === Op.Gemv || op === Op.GemvRows || op === Op.AxpyRows || op === Op.Read || op === Op.GemmSmallM ||
    op === Op.BlasGemv || op === Op.BlasGemm || op === Op.Attention || op === Op.MulRows || op === Op.BlasGemmBatch ||
    op === Op.PairDot || op === Op.GemvPanels || op === Op.PanelsGemm;
}

/** Every job: the memory (index) its pointers are offsets in. */
export const A_MEM = 20;

/**
 * Run thread t's static share of the job `op` described in the control block;
 * exs[m] and scratch[m] are this thread's instance and GEMM scratch in memory m.
 */
export function runShare(exs: readonly KernelExports[], op: number, i32: Int32Array, f64: Float64Array, t: number, scratch: readonly number[]): void {
  if (op === Op.PingPong) { pingPong(exs, i32, f64, t); return; }
  const a = ARGS;
  const r = RANGES + 4 * t;
  const lo = f64[r], hi = f64[r + 1];
  if (op !== Op.Gemm) throw new Error(`cpu kernels: unknown op ${op}`);
  const m = f64[a + A_MEM];
  const ex = exs[m];
  const j0 = f64[r + 2], j1 = f64[r + 3];
  if (hi > lo && j1 > j0) {
    ex.gemm(f64[a], f64[a + 1], f64[a + 2], f64[a + 3], f64[a + 4], f64[a + 5], f64[a + 6],
      f64[a + 7], f64[a + 8], f64[a + 9], lo, hi, j0, j1, scratch[m]);
  }
}

// PingPong (static): how far apart in the machine the main thread and worker 1 run.
// One untimed trip (it pays the worker's wake-up), then ARGS[0] trips in batches of
// ARGS[1], through the wasm loops pingTrips / pongTrips on the word PING. RESULTS[0]
// gets the median over batches of the time per trip in nanoseconds. Other workers
// return at once. Either side gives up after PING_PATIENCE polls without an answer
// (RESULTS[0] = -1), so a worker that is descheduled or slow to wake fails the probe
// instead of keeping the other side spinning. (The job itself still waits for every
// worker's DONE, as every job does.)
const PING_PATIENCE = 1 << 28; // polls: about a second here

function pingPong(exs: readonly KernelExports[], i32: Int32Array, f64: Float64Array, t: number): void {
  const word = i32.byteOffset + 4 * PING; // the control block lives in memory 0
  const trips = f64[ARGS], batch = f64[ARGS + 1];
  if (t === 1) {
    exs[0].pongTrips(word, 1, trips + 1, PING_PATIENCE);
    return;
  }
  if (t !== 0) return;
  f64[RESULTS] = -1;
  if (exs[0].pingTrips(word, 1, 1, PING_PATIENCE) !== 0) return;
  const perTrip: number[] = [];
  for (let k = 2; k <= trips + 1; k += batch) {
    const end = Math.min(trips + 1, k + batch - 1);
    const t0 = performance.now();
    if (exs[0].pingTrips(word, k, end, PING_PATIENCE) !== 0) return;
    perTrip.push((performance.now() - t0) * 1e6 / (end - k + 1));
  }
  perTrip.sort((x, y) => x - y);
  f64[RESULTS] = perTrip[perTrip.length >> 1];
}

// Arguments of BlasGemv (native addresses; lengths and strides in elements):
// y = op(A)·x + y for A [M, N] row-major with row stride lda (the caller applies any
// beta to y first). A chunk is [lo, hi) of A's rows, or of its columns when G_COLS is 1
// (Trans only: a short, wide A, whose rows are too few to share well). NoTrans rows,
// Trans columns: the chunk writes y[lo, hi). Trans rows: a partial sum over those rows,
// added into y on thread 0, into partial buffer t-1 on thread t > 0 (its first chunk
// overwrites it and sets RESULTS[t]; the main thread adds the flagged ones into y).
export const G_TRANS = 0, G_M = 1, G_N = 2, G_A = 3, G_LDA = 4, G_X = 5, G_Y = 6, G_COLS = 7;

function blasGemvChunk(blas: Blas, f64: Float64Array, t: number, lo: number, hi: number, first: boolean): void {
  const a = ARGS, lda = f64[a + G_LDA], M = f64[a + G_M], N = f64[a + G_N], A = f64[a + G_A];
  const x = f64[a + G_X], y = f64[a + G_Y];
  if (f64[a + G_TRANS] === 0) {
    blas.sgemvAt(false, hi - lo, N, 1, A + lo * lda * 4, lda, x, 0, y + lo * 4);
  } else if (f64[a + G_COLS] !== 0) {
    blas.sgemvAt(true, M, hi - lo, 1, A + lo * 4, lda, x, 1, y + lo * 4);
  } else if (t === 0) {
    blas.sgemvAt(true, hi - lo, N, 1, A + lo * lda * 4, lda, x + lo * 4, 1, y);
  } else {
    const part = f64[a + A_PART] + (t - 1) * f64[a + A_PSTRIDE];
    blas.sgemvAt(true, hi - lo, N, 1, A + lo * lda * 4, lda, x + lo * 4, first ? 0 : 1, part);
    if (first) f64[RESULTS + t] = 1;
  }
}

// Arguments of BlasGemm (native addresses; strides in elements): C[M,N] = op(A)·op(B) +
// beta·C as in CpuKernels.gemm. A chunk is [lo, hi) of C's rows (M_COLS 0) or columns.
export const M_TRANSA = 0, M_TRANSB = 1, M_K = 2, M_A = 3, M_LDA = 4, M_B = 5, M_LDB = 6, M_C = 7, M_LDC = 8, M_BETA = 9,
  M_M = 10, M_N = 11, M_COLS = 12;

function blasGemmChunk(blas: Blas, f64: Float64Array, lo: number, hi: number): void {
  const a = ARGS, tA = f64[a + M_TRANSA] !== 0, tB = f64[a + M_TRANSB] !== 0;
  const lda = f64[a + M_LDA], ldb = f64[a + M_LDB], ldc = f64[a + M_LDC], byCols = f64[a + M_COLS] !== 0;
  const i0 = byCols ? 0 : lo, i1 = byCols ? f64[a + M_M] : hi, j0 = byCols ? lo : 0, j1 = byCols ? hi : f64[a + M_N];
  const A = f64[a + M_A] + (tA ? i0 : i0 * lda) * 4;
  const B = f64[a + M_B] + (tB ? j0 * ldb : j0) * 4;
  const C = f64[a + M_C] + (i0 * ldc + j0) * 4;
  sgemmInParts(blas, tA, tB, i1 - i0, j1 - j0, f64[a + M_K], A, lda, B, ldb, f64[a + M_BETA], C, ldc);
}

// BlasGemmBatch: independent products, one per chunk, each described by B_FIELDS values
// from RANGES (unused by chunked jobs): transA, transB, M, N, K, A, lda, B, ldb, C, ldc,
// beta (native addresses, strides in elements).
export const B_FIELDS = 12;
export const B_MAX = Math.floor((RESULTS - RANGES) / B_FIELDS);

function blasGemmBatchChunk(blas: Blas, f64: Float64Array, i: number): void {
  const o = RANGES + B_FIELDS * i;
  sgemmInParts(blas, f64[o] !== 0, f64[o + 1] !== 0, f64[o + 2], f64[o + 3], f64[o + 4], f64[o + 5], f64[o + 6], f64[o + 7], f64[o + 8],
    f64[o + 11], f64[o + 9], f64[o + 10]);
}

// Arguments of Attention (byte offsets in memory A_MEM): a chunk is a range of query
// heads, whole groups of `group` (so its kv heads are a range too); thread 0 uses the
// caller's scores scratch, thread t > 0 scratch A_PART + (t-1)·A_PSTRIDE.
export const T_Q = 0, T_K = 1, T_V = 2, T_OUT = 3, T_S = 4, T_GROUP = 5, T_T = 6, T_HD = 7, T_KVSTRIDE = 8, T_SCALE = 9, T_LD = 10;

/** Bytes a worker prefetches between two looks at SEQ (about 2 µs of reading). */
export const PF_PIECE = 64 * 1024;

/** A worker's claimed prefetch, read piece by piece between jobs (see the header). */
export class PrefetchCursor {
  private readonly ranges = new Float64Array(3 * PF_MAX_RANGES);
  private n = 0;
  private r = 0;
  private off = 0;
  private slot = 0;
  /** True between a successful claim() and the step() that finishes. */
  active = false;

  constructor(private readonly exs: readonly KernelExports[], private readonly i32: Int32Array, private readonly f64: Float64Array) {}

  /** Claim the older posted slot (state 1 -> 2) and copy its ranges; false when none is posted (other workers took them). */
  claim(): boolean {
    const i32 = this.i32, f64 = this.f64;
    let k: number;
    for (;;) {
      const posted0 = Atomics.load(i32, PF_STATE) === 1, posted1 = Atomics.load(i32, PF_STATE + 1) === 1;
      if (!posted0 && !posted1) return false;
      k = posted0 && posted1 ? (f64[PF_SLOT[0]] < f64[PF_SLOT[1]] ? 0 : 1) : posted0 ? 0 : 1;
      if (Atomics.compareExchange(i32, PF_STATE + k, 1, 2) === 1) break; // else another worker took it: look again
    }
    const d = PF_SLOT[k];
    this.n = Math.min(PF_MAX_RANGES, f64[d + 1]);
    this.ranges.set(f64.subarray(d + 2, d + 2 + 3 * this.n));
    this.slot = k; this.r = 0; this.off = 0; this.active = true;
    return true;
  }

  /** Read up to `bytes` more of the ranges; at the end, free the slot and count the prefetch done. */
  step(bytes: number): void {
    let left = bytes;
    try {
      while (left > 0 && this.r < this.n) {
        const m = this.ranges[3 * this.r], base = this.ranges[3 * this.r + 1], size = this.ranges[3 * this.r + 2];
        const take = Math.min(left, size - this.off);
        if (take >= 4) this.exs[m].readSum(base + this.off, Math.floor(take / 4));
        this.off += take; left -= take;
        if (this.off >= size) { this.r++; this.off = 0; }
      }
    } catch (e) {
      this.r = this.n; // a bad range ends the hint; the kernels do not depend on it
      throw e;
    } finally {
      if (this.r >= this.n) {
        this.active = false;
        Atomics.store(this.i32, PF_STATE + this.slot, 0);
        Atomics.add(this.i32, PF_DONE, 1);
      }
    }
  }
}

// Argument slots of chunked jobs: ARGS+0 .. +9 op-specific (BlasGemm also 10-12), then:
export const A_N = 13;     // items (rows, indices, columns or floats)
export const A_CHUNK = 14; // items per chunk
export const A_PART = 15;  // axpyRows, BlasGemv: pointer of the partial ys of threads 1.. (byte offset;
export const A_PSTRIDE = 16; //  native address for BlasGemv), and the byte stride between them

/**
 * Claim and run chunks of chunked job `tag` on thread t until none are left (or the
 * job is no longer current). Returns the number of chunks this thread ran. Errors in
 * a chunk are recorded (ERR) and the chunk still counts as complete.
 */
export function runChunks(exs: readonly KernelExports[], op: number, tag: number, i32: Int32Array, f64: Float64Array, t: number,
  blas: () => Blas): number {
  let ran = 0;
  for (;;) {
    const v = Atomics.load(i32, NEXT);
    if (v >>> CHUNK_BITS !== tag) return ran;
    const c = v & CHUNK_MASK;
    const chunks = Atomics.load(i32, NCHUNKS);
    if (c >= chunks) return ran;
    if (Atomics.compareExchange(i32, NEXT, v, v + 1) !== v) continue;
    try {
      runChunk(exs[f64[ARGS + A_MEM]], op, f64, t, c, ran === 0, blas);
    } catch (e) {
      Atomics.store(i32, ERR, 1);
      if (t > 0) console.error('sparselm cpu worker:', e);
    }
    ran++;
    if (Atomics.add(i32, COMPLETE, 1) + 1 === chunks && t > 0) Atomics.notify(i32, COMPLETE);
  }
}

function runChunk(ex: KernelExports, op: number, f64: Float64Array, t: number, c: number, first: boolean, blas: () => Blas): void {
  const a = ARGS;
  const n = f64[a + A_N], chunk = f64[a + A_CHUNK];
  const lo = c * chunk, hi = Math.min(n, lo + chunk);
  switch (op) {
    case Op.Gemv:
      ex.gemv(f64[a], f64[a + 1], f64[a + 2], f64[a + 3], lo, hi);
      break;
    case Op.GemvRows:
      ex.gemvRows(f64[a], f64[a + 1], f64[a + 5], f64[a + 2], f64[a + 3], f64[a + 4], lo, hi);
      break;
    case Op.AxpyRows: {
      // Thread 0 adds into y; thread t > 0 into its own partial y, zeroed on its first
      // chunk and flagged in RESULTS[t] for the main thread to add in.
      const cols = f64[a + 1];
      let pY = f64[a + 4];
      if (t > 0) {
        pY = f64[a + A_PART] + (t - 1) * f64[a + A_PSTRIDE];
        if (first) { ex.zero(pY, cols); f64[RESULTS + t] = 1; }
      }
      ex.axpyRows(f64[a], cols, f64[a + 5], f64[a + 2], f64[a + 3], pY, lo, hi);
      break;
    }
    case Op.Read:
      f64[RESULTS + t] += ex.readSum(f64[a] + lo * 4, hi - lo);
      break;
    case Op.GemmSmallM: // items are columns of C
      ex.gemmSmallM(f64[a], f64[a + 1], f64[a + 2], f64[a + 3], f64[a + 4], f64[a + 5], lo, hi, f64[a + 6], f64[a + 7]);
      break;
    case Op.BlasGemv:
      blasGemvChunk(blas(), f64, t, lo, hi, first);
      break;
    case Op.BlasGemm:
      blasGemmChunk(blas(), f64, lo, hi);
      break;
    case Op.BlasGemmBatch: // items are products
      for (let i = lo; i < hi; i++) blasGemmBatchChunk(blas(), f64, i);
      break;
    case Op.PanelsGemm: { // items are slices of W's rows: each unpacked into this thread's scratch, then its sgemm
      const rows = f64[a + 1], cols = f64[a + 2], slice = f64[a + 8], stride = f64[a + 11];
      const scratch = f64[a + 9] + t * stride, scratchNative = f64[a + 10] + t * stride;
      for (let i = lo; i < hi; i++) {
        const r0 = i * slice, n = Math.min(rows, r0 + slice) - r0;
        ex.unpanel(f64[a], cols, r0, r0 + n, scratch, n);
        sgemmInParts(blas(), false, false, f64[a + 3], n, cols, f64[a + 4], f64[a + 5], scratchNative, n, 0, f64[a + 6] + r0 * 4, f64[a + 7]);
      }
      break;
    }
    case Op.GemvPanels: // items are panels of 8 rows
      ex.gemvPanels(f64[a], f64[a + 1], f64[a + 2], f64[a + 3], f64[a + 4], f64[a + 5], f64[a + 6], f64[a + 7], lo, hi);
      break;
    case Op.PairDot: // items are columns (chunks of whole tiles)
      ex.pairDotI16(f64[a], f64[a + 1], f64[a + 2], f64[a + 3], f64[a + 4], lo, hi);
      break;
    case Op.MulRows: { // items are rows of D and out
      const n = f64[a + 3];
      ex.mulRows(f64[a], f64[a + 1] + lo * n * 4, f64[a + 2] + lo * n * 4, hi - lo, n);
      break;
    }
    case Op.Attention: {
      const hd = f64[a + T_HD], group = f64[a + T_GROUP], kvStride = f64[a + T_KVSTRIDE], kv = (lo / group) * kvStride * 4;
      const S = t === 0 ? f64[a + T_S] : f64[a + A_PART] + (t - 1) * f64[a + A_PSTRIDE];
      ex.attention(f64[a + T_Q] + lo * hd * 4, f64[a + T_K] + kv, f64[a + T_V] + kv, f64[a + T_OUT] + lo * hd * 4, S,
        hi - lo, group, f64[a + T_T], hd, kvStride, f64[a + T_LD], f64[a + T_SCALE]);
      break;
    }
    default:
      throw new Error(`cpu kernels: unknown op ${op}`);
  }
}
