// Synchronous, multi-threaded float32 kernels over one shared WebAssembly.Memory.
//
// What it is: the CPU backend's fast path. One kernels module (build/wasm/kernels.wasm,
// AssemblyScript + SIMD) is instantiated on the main thread and on T-1 worker threads,
// all over the same shared memory. A call splits its work into T ranges, wakes the
// workers through a control block in shared memory (Atomics.notify; no postMessage per
// call: the decoder calls these ~100 times per token), runs range 0 itself, then waits
// (Atomics.wait is allowed on Node's main thread). Dense products (gemm, matmul, gemv,
// gemvT) go to OpenBLAS through koffi when that is available (optional; blas.ts): with
// T threads each thread calls single-threaded OpenBLAS on its part (exec.ts).
// What it is not: asynchronous, or safe to call from two threads at once; the
// workers serve exactly one CpuKernels. Kernels receive buffers and strides, never
// tensors. Memory layout: float32 row-major; "ld" = row stride in elements.
// Memories: the heap may span several 4 GiB wasm memories (heap.ts; a 17B-class block
// is 4.4 GB). Pointers are heap addresses (memory index · 2^32 + offset). A call runs in
// the memory of its *home* operand (the matrix, cache or weight it streams); any other
// operand that lies elsewhere is copied into that memory's staging area first and, when
// written, copied back after: O(rows + cols) floats against the matrix's rows · cols.
// Invariants: every pointer passed to a resident-pointer kernel is a `heap` address;
// float pointers are 4-aligned (16-aligned is faster); outputs must not overlap inputs.
import { availableParallelism } from 'node:os';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { loadBlas, sgemmInParts, type Blas } from './blas.js';
import { adviseHugePages, nativeAddress } from './native.js';
import {
  A_CHUNK, A_MEM, MAX_JOBS, OP_BITS, A_N, A_PART, A_PSTRIDE, ARGS, B_FIELDS, B_MAX, CHUNK_BITS, COMPLETE, CTL_BYTES, DONE, ERR, PF_DONE, PF_MAX_RANGES, PF_SLOT, PF_STATE, G_A, G_COLS, G_LDA, G_M, G_N, G_TRANS, G_X,
  G_Y, M_A, M_B, M_BETA, M_C, M_COLS, M_K, M_LDA, M_LDB, M_LDC, M_M, M_N, M_TRANSA, M_TRANSB, T_GROUP, T_HD, T_K, T_KVSTRIDE, T_LD, T_OUT, T_Q, T_S, T_SCALE, T_T, T_V, MAX_THREADS, NCHUNKS, NEXT, Op,
  PING, RANGES, RESULTS, SEQ, TAG_BITS, runChunks, runShare, type KernelExports,
} from './exec.js';
import { MAX_PAGES, SharedHeap, memoryOf, newSharedMemory, offsetOf, type WasmHeap } from './heap.js';
import { kernelsModule, type SimdFlavor } from './module.js';
import { wasm, type WasmMemory, type WasmModule } from './wasm-api.js';

export type { WasmHeap } from './heap.js';
export { MEMORY_SPAN, memoryOf, offsetOf } from './heap.js';
export type { WasmMemory } from './wasm-api.js';
export type { SimdFlavor } from './module.js';

export interface KernelOptions {
  /** Threads including the main thread; default os.availableParallelism(). */
  threads?: number;
  /** Use OpenBLAS (via koffi) for dense matmul/gemm, each thread on its part; default: when available. */
  blas?: boolean;
  /** Bytes one wasm memory may hold before the heap opens another (default 4 GiB; tests set a few MiB). */
  memoryBytes?: number;
  /**
   * Dense matrix-vector products (gemv, gemvT) through OpenBLAS's sgemv, the threads
   * splitting the matrix's rows. Default: when OpenBLAS is on (its native AVX-512 loop
   * streams 5-35% faster than the wasm one on one thread, dev/gemv/blas-vs-wasm.mjs, and
   * 20-30% faster on two, dev/gemv/worker-blas.mjs).
   */
  blasGemv?: boolean;
  /** Ask for transparent huge pages on the wasm memories (Linux, through koffi; default true; see native.ts). */
  hugePages?: boolean;
  /** Which build of the wasm kernels (module.ts); default 'auto', or the SPARSELM_SIMD environment variable. */
  simd?: SimdFlavor;
  /**
   * Where the threads run (see checkPlacement): 'auto' (default) measures it, 'shared'
   * takes them to share a last-level cache, 'apart' takes them not to.
   */
  placement?: Placement;
}

export type Placement = 'auto' | 'shared' | 'apart';

export interface CpuKernels {
  readonly threads: number;
  /** True when the OpenBLAS path is active for gemm/matmul. */
  readonly blas: boolean;
  /** True when gemv and gemvT go to OpenBLAS. */
  readonly blasGemv: boolean;
  /** True when the OS accepted the huge-page advice for every memory. */
  readonly hugePages: boolean;
  /** True when the wasm kernels fuse multiply-add (the relaxed-SIMD build, module.ts). */
  readonly fma: boolean;
  /** True while the threads are taken to run without a shared last-level cache (checkPlacement). */
  readonly threadsApart: boolean;
  /** Allocator over the shared memory all resident-pointer kernels read and write. */
  readonly heap: WasmHeap;
  /**
   * C[M,N] (+)= op(A)[M,K] · op(B)[K,N] on heap byte pointers.
   * transA=false: A stored [M, lda]; transA=true: A stored [K, lda], used transposed.
   * transB=false: B stored [K, ldb]; transB=true: B stored [N, ldb], used transposed.
   * C stored [M, ldc]; accumulate=false overwrites C, true adds to it.
   */
  gemm(transA: boolean, transB: boolean, M: number, N: number, K: number, pA: number, lda: number,
    pB: number, ldb: number, pC: number, ldc: number, accumulate: boolean): void;
  /**
   * Independent products at once, as `gemm` each: `list` holds GEMM_FIELDS numbers per
   * product: transA, transB (0/1), M, N, K, pA, lda, pB, ldb, pC, ldc, accumulate (0/1).
   * With OpenBLAS and several threads, the threads take whole products (the decoder's
   * three Sparse QKV convolutions: each too small to split well, together worth sharing).
   */
  gemmBatch(list: readonly number[]): void;
  /** y[rows] = W[rows, cols] · x[cols]. */
  gemv(pW: number, rows: number, cols: number, pX: number, pY: number): void;
  /** y[cols] (+)= W[rows, cols]ᵀ · x[rows] (every row; axpyRows without an index list); accumulate (default true) adds to y, false overwrites it. */
  gemvT(pW: number, rows: number, cols: number, pX: number, pY: number, accumulate?: boolean): void;
  /**
   * y[rows] = W[rows, cols] · x[cols] with W stored in panels of 8 rows, in the order the
   * kernel reads them: float32 [ceil(rows/8)][ceil(cols/4)][8 rows][4 columns], zero-padded
   * (`toPanels`, `panelsInto`). x is read at cols floats only; y gets rows floats. The
   * threads share the panels.
   */
  gemvPanels(pW: number, rows: number, cols: number, pX: number, pY: number): void;
  /**
   * Y[t, :] = W · X[t, :] for t < T, W [rows, cols] in gemvPanels' layout; X's rows ldx
   * floats apart, Y's ldy (the decoder's prefill: each panel read from memory once).
   */
  gemmPanels(pW: number, rows: number, cols: number, T: number, pX: number, ldx: number, pY: number, ldy: number): void;
  /** y[i] = W[idx[i], :] · x[cols] for i < nIdx; W's rows ld floats apart (default cols); idx int32 [nIdx], y [nIdx]. */
  gemvRows(pW: number, cols: number, pIdx: number, nIdx: number, pX: number, pY: number, ld?: number): void;
  /** y[cols] += Σ_{i<nIdx} coef[i] · W[idx[i], :]; W's rows ld floats apart (default cols); idx int32 [nIdx], coef float32 [nIdx]. */
  axpyRows(pW: number, cols: number, pIdx: number, pCoef: number, nIdx: number, pY: number, ld?: number): void;
  /** Sum of `bytes/4` floats at p, read by all threads (measures the read ceiling); returns the sum. */
  /**
   * C[M,N] = A[M,K] · B[K,N], all contiguous on the heap, for small M (a few rows
   * against a wide B: the decoder's factored layers and convolutions). B is streamed
   * without packing, once per pair of A rows; threads split the columns. B is row-major,
   * or with bPanels in column panels (toColumnPanels: [N/16][K][16], N a multiple of 16),
   * where each 16 columns the kernel reads together are one contiguous run.
   */
  gemmSmallM(pA: number, pB: number, pC: number, M: number, N: number, K: number, bPanels?: boolean): void;
  /**
   * Batch-1 causal attention, all H heads in one call; the threads share the heads when
   * there are enough (whole groups per thread, at least ATT_PAR_MIN multiply-adds).
   * Head h uses kv head
   * g = floor(h / group): s = (q_h · K[g, t]) · scale for t < T, p = softmax(s), out_h =
   * Σ_t p[t]·V[g, t]. q: [H, hd]; K, V: position t of kv head g at (g·kvStride + t·ld)
   * floats (head-major [Hkv, ctx, hd]: kvStride = ctx·hd, ld = hd; position-major [ctx,
   * Hkv·hd]: kvStride = hd, ld = Hkv·hd: read as one stream); out: [H, hd]; pS: H·T
   * floats of scratch.
   */
  attention(pQ: number, pK: number, pV: number, pOut: number, pS: number, H: number, group: number, T: number, hd: number,
    kvStride: number, ld: number, scale: number): void;
  /** out[r, i] = x[i] · D[r, i] for r < rows, i < n (contiguous rows; the threads share the rows from 2^16 floats). */
  mulRows(pX: number, pD: number, pOut: number, rows: number, n: number): void;
  /** y[r, i] += b[i] for r < rows, i < n (contiguous rows; on the calling thread). */
  addRows(pY: number, pB: number, rows: number, n: number): void;
  /**
   * Causal im2col of one token for a convolution over (length Fl, modules S of M floats),
   * width Fw (odd): col[s, (i·Fw + j)·M + c] = row_i[(s + j - (Fw-1)/2)·M + c], 0 outside the
   * modules; row_i = state row i (rows of d floats) for i < Fl-1, cur for i = Fl-1.
   * col: [S, Fl·Fw·M]. On the calling thread.
   */
  im2col(pState: number, pCur: number, pCol: number, S: number, M: number, Fl: number, Fw: number, d: number): void;
  /**
   * y[i] = exp(x[i]) for i < n (float32), as attention's softmax computes it (its scores
   * minus their maximum, so x ≤ 0): within EXPF4_ULPS units in the last place; 0 below
   * ln 2^-126; NaN for NaN. On the calling thread.
   */
  expArray(pX: number, pY: number, n: number): void;
  /** idx[b] (int32) = argmax of l[b·N .. (b+1)·N) for b < nb, ties to the lower index. On the calling thread. */
  blockArgmax(pL: number, pIdx: number, nb: number, N: number): void;
  /**
   * The Sparse FF controller's screen, step 1 (assembly/kernels.ts, "screened argmax"):
   * quantize u (float32 [r]) to int16 pairs, |uq| ≤ qmax, into pUq (uint32 [ceil(r/2)])
   * and write its scale and norms into pInfo (float64 [4]). On the calling thread.
   */
  screenQuantize(pU: number, r: number, qmax: number, pUq: number, pInfo: number): void;
  /**
   * Step 2: acc[j] (int32 [cols]) = Σ_p dot(P[p, j], uq pair p), P in panels: tiles of
   * SCREEN_TILE columns (the last one narrower), each uint32 [groups][w/4][4 pairs][4
   * columns] for its w columns; cols a multiple of 4. The threads share whole tiles, so
   * each reads one contiguous run.
   */
  pairDotI16(pP: number, groups: number, cols: number, pUq: number, pAcc: number): void;
  /**
   * Step 3: idx[b] = argmax over block b of bias[j] + u·C2ᵀ[j, :] (ties to the lower index)
   * from the screened logits (written to pS, float32 [nb·N]), recomputing exactly, from
   * C2ᵀ (float32 [nb·N, r]), only the neurons the screen cannot rule out. margin: float64
   * [3·nb]. Returns the number of neurons recomputed. On the calling thread.
   */
  screenArgmax(pAcc: number, pColScale: number, pBias: number, pS: number, pIdx: number, nb: number, N: number,
    pMargin: number, pInfo: number, pC2t: number, r: number, pU: number): number;
  /**
   * out[n] = layernorm(x)·w + b (pB = null: no bias) or, when rms, x/rms(x)·w; eps inside
   * the square root. Mean and variance in float64, each output rounded once. On the
   * calling thread.
   */
  norm(pX: number, pW: number, pB: number | null, pOut: number, n: number, eps: number, rms: boolean): void;
  /**
   * RoPE on nHeads rows of hd floats at pV, in place: each pair (v[2i], v[2i+1]) rotated
   * by the angle with cosine cos[i] and sine sin[i]; pCosSin holds hd/2 float64 cosines
   * then hd/2 float64 sines. On the calling thread.
   */
  rope(pV: number, nHeads: number, hd: number, pCosSin: number): void;
  /** dst row r = src row r (n floats) for r < rows; rows dstStride and srcStride floats apart. On the calling thread. */
  copyRows(pDst: number, dstStride: number, pSrc: number, srcStride: number, rows: number, n: number): void;
  /**
   * SwiGLU's activation: out[u] = silu(h[u])·h[n + u] for u < n (h: [2n], gate then up),
   * in float64, rounded once; out may be h. On the calling thread.
   */
  swiglu(pH: number, pOut: number, n: number): void;
  readBandwidth(p: number, bytes: number): number;
  /**
   * How long one cache line takes to go from the main thread to worker 1 and back, in
   * nanoseconds: the median over at least 10 batches (of up to 100) of `trips` round
   * trips, after one that wakes the worker; 0 on one thread.
   * It tells where the threads run: about 100 ns when they share a last-level cache,
   * several times that when they do not (a VM's two vCPUs can land on different dies of
   * the host, and move), and then a worker's prefetch cannot warm the main thread's
   * cache (docs/decode.md). Throws if the worker does not answer within about a second
   * (it was descheduled, or is slow to wake).
   */
  roundTripNs(trips?: number): number;
  /**
   * With placement 'auto' and two or more threads: if the last look is older than
   * maxAgeMs (default 100), measure roundTripNs(100) (10-40 us) and set threadsApart when
   * it is APART_NS or more; a probe the worker did not answer keeps the last verdict (a
   * decoder step does not fail because a worker was descheduled). While apart,
   * prefetch() does nothing (a worker would warm a cache the calling thread does not
   * read) and a small gemmBatch (under 2^24 flops) runs on the calling thread alone;
   * everything else still splits by its own measure (each thread has its own path to
   * memory). Returns threadsApart.
   */
  checkPlacement(maxAgeMs?: number): boolean;
  /**
   * A hint: a worker reads these ranges (address, bytes pairs) once, in the background,
   * so that they are in the shared caches when a later call reads them, after the one
   * posted before it. Returns at once; does nothing on one thread, while the threads are
   * apart (checkPlacement), or while two earlier prefetches are still unread (up to
   * PF_MAX_RANGES pairs).
   */
  prefetch(ranges: readonly number[]): void;
  /** How many prefetches a worker has read to the end (always 0 on one thread). */
  prefetchesDone(): number;
  /**
   * c[M,N] = op(a)[M,K] · op(b)[K,N] on JS arrays (overwrites c). Strides/offsets as in gemm,
   * in elements: a stored from aOff as [M, lda] (or [K, lda] if transA), b from bOff as
   * [K, ldb] (or [N, ldb] if transB), c from cOff as [M, ldc]. Copies through a heap
   * arena for the wasm path; calls BLAS directly on the arrays when blas is on.
   */
  matmul(transA: boolean, transB: boolean, M: number, N: number, K: number, a: Float32Array, aOff: number, lda: number,
    b: Float32Array, bOff: number, ldb: number, c: Float32Array, cOff: number, ldc: number): void;
  /** Stop the workers and drop the BLAS handle use; the object is unusable afterwards. */
  dispose(): void;
}

// Below these sizes a call runs on the main thread alone: waking a worker costs a few
// microseconds, about the time to read 64K floats or do 2^19 flops.
const PAR_MIN_FLOATS = 1 << 16;
const PAR_MIN_FLOPS = 1 << 19;
// Attention shares its heads from this many multiply-adds (q·k and p·v: 2·H·T·hd);
// it also computes H·T exponentials.
const ATT_PAR_MIN = 1 << 16;
/**
 * Columns per tile of the controller screen's panels (pairDotI16; the kernel's constant of
 * the same name must match): a thread's share is whole tiles, one contiguous run of
 * memory (with [groups][cols/4] panels, a share of the columns was one piece per group,
 * and on two threads the product ran slower than on one).
 */
export const SCREEN_TILE = 256;
/**
 * The largest error of attention's exp (assembly/kernels.ts expf4) in units in the last
 * place of its result, for x in [ln 2^-126, 0] (test/kernels-simd.test.ts measures it, in both builds).
 */
export const EXPF4_ULPS = 2;
/** Numbers per product in CpuKernels.gemmBatch's list: the control block's layout (exec.ts), heap addresses for its native ones. */
export const GEMM_FIELDS = B_FIELDS;
// gemmSmallM on one thread: rows of B per block (see the kernel), for a B at least
// SMALLM_WIDE_N columns wide, whose panel rows (a B row, 4 KB or more, apart) share one
// L1 set. A narrower B is walked once down all K: its rows are a few cache lines apart
// and spread over the sets. Measured hot, relaxed build (2026-11-29): [16, 576]·[576, 64]
// 50 GFLOP/s walked, 14.6 in blocks of 8; [16, 1024]·[1024, 64] 50 against 40; the loss
// layer's [4, 1024]·[1024, 8000] 27 walked, 33 in blocks of 8. Without OpenBLAS (browsers)
// the 800m Sparse FF + QKV block, one thread: 0.943x and 0.971x (paired, 15 rounds).
const SMALLM_ROWS = 8;
const SMALLM_WIDE_N = 1024;
// OpenBLAS GEMMs are shared between threads from this many flops (about 40 µs of one
// core's work): below it, two threads were slower than one here (the decoder's 800m
// Sparse QKV products, [16, 1024]·[1024, 64]: 21 µs on one thread, 42 on two).
const BLAS_GEMM_PAR_MIN_FLOPS = 1 << 22;
// gemmPanels goes through OpenBLAS (slices of W unpacked, UNPACK_BYTES each) from this many
// rows of X: the unpacking reads W once more, which few rows do not repay.
const PANELS_BLAS_MIN_ROWS = 4;
const UNPACK_BYTES = 1 << 20;

/** Floats that W [rows, cols] takes in gemvPanels' layout (rows padded to 8, cols to 4). */
export function panelsLength(rows: number, cols: number): number {
  return Math.ceil(rows / 8) * panelFloats(cols);
}

// gemvPanels' layout, [ceil(rows/8)][ceil(cols/4)][8 rows][4 columns]: W[r, c] is at
// rowStart(r, panelFloats(cols)) + (c >> 2)·32 + (c & 3).
const panelFloats = (cols: number): number => 32 * Math.ceil(cols / 4);
const rowStart = (r: number, ps: number): number => (r >> 3) * ps + (r & 7) * 4;

/**
 * W [rows, cols] (row-major) in gemvPanels' layout: [ceil(rows/8)][ceil(cols/4)][8 rows][4
 * columns], with zero rows and columns as padding.
 */
export function toPanels(w: Float32Array, rows: number, cols: number): Float32Array {
  if (w.length !== rows * cols) throw new RangeError(`cpu kernels: toPanels needs [rows, cols], got ${w.length} values for ${rows} x ${cols}`);
  const out = new Float32Array(panelsLength(rows, cols));
  const ps = panelFloats(cols);
  for (let r = 0; r < rows; r++) {
    const base = rowStart(r, ps);
    for (let c = 0; c < cols; c++) out[base + (c >> 2) * 32 + (c & 3)] = w[r * cols + c];
  }
  return out;
}

/**
 * B [K, N] (row-major) in gemmSmallM's column panels: [N/16][K][16], panel p holding
 * columns [16p, 16p + 16) row after row. N must be a multiple of 16.
 */
export function toColumnPanels(b: Float32Array, K: number, N: number): Float32Array {
  if (b.length !== K * N) throw new RangeError(`cpu kernels: toColumnPanels needs [K, N], got ${b.length} values for ${K} x ${N}`);
  if (N % 16 !== 0) throw new RangeError(`cpu kernels: toColumnPanels needs N a multiple of 16, got ${N}`);
  const out = new Float32Array(K * N);
  for (let p = 0; p < N / 16; p++) {
    for (let k = 0; k < K; k++) out.set(b.subarray(k * N + 16 * p, k * N + 16 * p + 16), (p * K + k) * 16);
  }
  return out;
}

/** out[0, cols) = row r of W [rows, cols] stored in gemvPanels' layout (w from toPanels or panelsInto). */
export function panelRow(w: Float32Array, cols: number, r: number, out: Float32Array): void {
  const base = rowStart(r, panelFloats(cols));
  for (let c = 0; c < cols; c++) out[c] = w[base + (c >> 2) * 32 + (c & 3)];
}

// Row r of a panels matrix (ps floats per panel) from column j of an input-major source [cols, out].
function rowFromColumn(dst: Float32Array, ps: number, cols: number, data: Float32Array, out: number, j: number, r: number): void {
  const base = rowStart(r, ps);
  for (let c = 0; c < cols; c++) dst[base + (c >> 2) * 32 + (c & 3)] = data[c * out + j];
}

/**
 * Writes into `dst` (panelsLength(Σ out_k, cols) floats, zero-filled here) the panels of
 * W [Σ out_k, cols] whose rows are the columns of the input-major matrices `mats` (each
 * [cols, out_k], row-major: a dense layer's weight as y = x·M), one after another: the
 * decoder's dense products (Q, K and V stacked; the gate and up projections stacked).
 */
export function panelsInto(dst: Float32Array, cols: number, mats: readonly { data: Float32Array; cols: number }[]): void {
  const rows = mats.reduce((s, m) => s + m.cols, 0);
  if (dst.length !== panelsLength(rows, cols)) throw new RangeError(`cpu kernels: panelsInto needs ${panelsLength(rows, cols)} floats, got ${dst.length}`);
  dst.fill(0);
  const ps = panelFloats(cols);
  let r0 = 0;
  for (const { data, cols: out } of mats) {
    if (data.length !== cols * out) throw new RangeError(`cpu kernels: panelsInto needs [${cols}, ${out}], got ${data.length} values`);
    // A panel (8 rows of W, 8 source columns) at a time, reading 8 consecutive floats of
    // each source row: the lines a panel touches serve the next one from cache, and the
    // 8 stores per source row are unrolled (the 17B-class matrices, 4.4 GB, load in about
    // a third of the time of a column-at-a-time walk). Rows of a panel shared by two
    // matrices (r0 not a multiple of 8) go one at a time.
    let j = 0;
    for (; j < out && ((r0 + j) & 7) !== 0; j++) rowFromColumn(dst, ps, cols, data, out, j, r0 + j);
    for (; j + 8 <= out; j += 8) {
      const base = rowStart(r0 + j, ps); // row r0 + j is a panel's first
      for (let c = 0; c < cols; c++) {
        const s = c * out + j, d = base + (c >> 2) * 32 + (c & 3);
        dst[d] = data[s]; dst[d + 4] = data[s + 1]; dst[d + 8] = data[s + 2]; dst[d + 12] = data[s + 3];
        dst[d + 16] = data[s + 4]; dst[d + 20] = data[s + 5]; dst[d + 24] = data[s + 6]; dst[d + 28] = data[s + 7];
      }
    }
    for (; j < out; j++) rowFromColumn(dst, ps, cols, data, out, j, r0 + j);
    r0 += out;
  }
}

/**
 * Chunks of n items (multiples of `align`, about `per` per thread) for T threads, and how
 * evenly they load the threads: the ideal share n/T over the largest share a thread gets
 * when the chunks are dealt out in turn (1 = even).
 */
function evenChunks(n: number, align: number, T: number, per: number): { chunk: number; count: number; efficiency: number } {
  const chunk = Math.max(align, Math.ceil(n / (T * per) / align) * align);
  const count = Math.ceil(n / chunk);
  const largest = Math.min(n, Math.ceil(count / T) * chunk);
  return { chunk, count, efficiency: n / T / largest };
}
// Workers poll for 2 ms after each job before sleeping (costs that much CPU when idle).
const WORKER_SPIN_MS = 2;
// roundTripNs measured on this machine: 64-150 ns between threads that share a
// last-level cache, 320-470 ns between vCPUs on different dies of the host.
export const APART_NS = 200;
// While the threads are apart, a gemmBatch of fewer flops runs on the calling thread: the
// 800m block's three convolutions (2.8 MFLOP, ~28 us) gain less from a second die than
// the hand-overs cost; the 17B-class block's (56 MFLOP) still split.
const APART_BATCH_MIN_FLOPS = 2 ** 24;
const MAIN_SPIN = 1 << 20;

/** The flops of a gemmBatch list of n products (2·M·N·K each). */
function batchFlops(list: readonly number[], n: number): number {
  let flops = 0;
  for (let i = 0; i < n; i++) flops += 2 * list[GEMM_FIELDS * i + 2] * list[GEMM_FIELDS * i + 3] * list[GEMM_FIELDS * i + 4];
  return flops;
}

/** Split [0, n) into `parts` ranges whose inner boundaries are multiples of `align`. */
function split(n: number, parts: number, align: number): number[] {
  const b = [0];
  for (let t = 1; t < parts; t++) b.push(Math.min(n, Math.round((n * t) / parts / align) * align));
  b.push(n);
  return b;
}

function checkInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`cpu kernels: ${name} must be a non-negative integer, got ${v}`);
}

/** What the main thread keeps per memory (offsets are byte offsets in that memory). */
interface MemoryState {
  /** GEMM scratch of thread t, for t < threads (workers get theirs when started or through AddMemory). */
  scratch: number[];
  /** axpyRows: the partial ys of threads 1.. (address) and its size. */
  partial: number; partialBytes: number;
  /** Staging area for operands that live in another memory (address) and its size. */
  stage: number; stageBytes: number;
  /** attention: the scores scratch of threads 1.. (address) and its size. */
  scores: number; scoresBytes: number;
  /** gemmPanels through OpenBLAS: a slice of W unpacked from its panels (address) and its size. */
  unpacked: number; unpackedBytes: number;
}

class Kernels implements CpuKernels {
  readonly threads: number;
  readonly blas: boolean;
  readonly blasGemv: boolean;
  hugePages: boolean;
  readonly fma: boolean;
  threadsApart: boolean;
  readonly heap: SharedHeap;
  private readonly placement: Placement;
  private placementCheckedAt = -Infinity;
  private readonly module: WasmModule;
  private readonly mems: MemoryState[] = [];
  private readonly exs: KernelExports[] = []; // the main thread's kernels instance per memory
  private readonly scratch0: number[] = []; // the main thread's scratch offset per memory (runShare's argument)
  private readonly nativeBases: number[] = []; // OpenBLAS: native address of each memory's byte 0
  private readonly blasLib: Blas | null;
  private readonly blasOrThrow = (): Blas => {
    if (this.blasLib === null) throw new Error('cpu kernels: an OpenBLAS job without OpenBLAS (a bug)');
    return this.blasLib;
  };
  // BlasGemv (transposed): the partial ys of threads 1.. in memory 0 (address), its size.
  private blasPartial = 0;
  private blasPartialBytes = 0;
  private readonly workers: Worker[] = [];
  private readonly ports: MessagePort[] = [];
  private readonly ctl: number;
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private arena = 0;
  private iota = 0; // int32 0, 1, .. iotaLength-1: gemvT's index list on the wasm path
  private iotaLength = 0;
  private jobs = 0;
  // Prefetches posted: each post's number orders the two slots (exec.ts); the next tries slot prefetchPosts % 2 first.
  private prefetchPosts = 0;
  private arenaBytes = 0;
  private disposed = false;
  // The call being set up (begin/place/end): its memory, staging bytes used, and the
  // written operands to copy back as (address, offset in the call's memory, bytes).
  private callMem = 0;
  private callBound = 0;
  private stageUsed = 0;
  private readonly backs: number[] = [];

  constructor(opts: KernelOptions) {
    const threads = opts.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) throw new RangeError(`cpu kernels: threads must be 1..${MAX_THREADS}`);
    this.threads = threads;
    this.blasLib = opts.blas === false ? null : loadBlas();
    // Calls on heap addresses pass native addresses (blas.ts); without them, no OpenBLAS.
    if (this.blasLib !== null && nativeAddress(new SharedArrayBuffer(16)) === null) this.blasLib = null;
    this.blas = this.blasLib !== null;
    this.blasGemv = this.blas && (opts.blasGemv ?? true);
    this.hugePages = opts.hugePages ?? true;
    this.placement = opts.placement ?? 'auto';
    if (!['auto', 'shared', 'apart'].includes(this.placement)) throw new RangeError(`cpu kernels: placement must be auto, shared or apart, not ${String(this.placement)}`);
    this.threadsApart = threads > 1 && this.placement === 'apart';
    const env = process.env.SPARSELM_SIMD;
    const km = kernelsModule(opts.simd ?? (env === 'plain' || env === 'relaxed' ? env : 'auto'));
    const module = (this.module = km.module);
    this.fma = km.fma;
    const memory = newSharedMemory();
    this.heap = new SharedHeap(memory, (mem, m) => this.addMemory(mem, m), opts.memoryBytes);
    this.addMemory(memory, 0);
    this.ctl = this.heap.alloc(CTL_BYTES, 64);
    this.i32 = new Int32Array(memory.buffer, this.ctl, CTL_BYTES / 4);
    this.f64 = new Float64Array(memory.buffer, this.ctl, CTL_BYTES / 8);
    this.i32.fill(0);
    warmUp(module, this.exs[0], this.heap);
    for (let t = 1; t < threads; t++) {
      const { port1, port2 } = new MessageChannel();
      const w = new Worker(new URL('./worker.js', import.meta.url), {
        workerData: { module, memory, ctl: this.ctl, index: t, workers: threads - 1, scratch: this.mems[0].scratch[t], spinMs: WORKER_SPIN_MS, port: port2 },
        transferList: [port2],
      });
      w.unref();
      port1.unref();
      this.workers.push(w);
      this.ports.push(port1);
    }
  }

  // Instantiate the kernels on memory m (the main thread now; the workers, once
  // started, through an AddMemory job: exec.ts) with every thread's GEMM scratch there.
  private addMemory(memory: WasmMemory, m: number): void {
    // Before any page of it is touched beyond the first few (the advice applies to later faults).
    if (this.hugePages) this.hugePages = adviseHugePages(memory.buffer, MAX_PAGES * 65536);
    const ex = new wasm.Instance(this.module, { env: { memory } }).exports as unknown as KernelExports;
    const sb = ex.gemmScratchBytes();
    const scratch: number[] = [];
    for (let t = 0; t < this.threads; t++) scratch.push(offsetOf(this.heap.allocIn(m, sb, 64)));
    this.mems.push({ scratch, partial: 0, partialBytes: 0, stage: 0, stageBytes: 0, scores: 0, scoresBytes: 0, unpacked: 0, unpackedBytes: 0 });
    this.exs.push(ex);
    this.scratch0.push(scratch[0]);
    if (this.blasLib !== null) this.nativeBases.push(nativeAddress(memory.buffer) ?? 0);
    if (m === 0 || this.workers.length === 0) return;
    for (let t = 1; t < this.threads; t++) this.ports[t - 1].postMessage({ memory, scratch: scratch[t] });
    this.run(Op.AddMemory, true);
  }

  // ---- staging (see the header): begin(m, bound) before placing a call's operands,
  // place() each operand, end() after the call.

  // Start a call in memory m whose staged operands need at most `bound` bytes.
  private begin(m: number, bound: number): void {
    if (this.disposed) throw new Error('cpu kernels: used after dispose()');
    this.callMem = m;
    this.stageUsed = 0;
    this.backs.length = 0;
    this.callBound = bound + 4 * 64; // each placed operand is rounded up to 64 bytes
  }

  // The offset in the call's memory of the operand of `bytes` at address p: p's own
  // offset when it lies there, else a place in the staging area (filled from p when
  // `read`; copied back to p by end() when `written`).
  private place(p: number, bytes: number, read: boolean, written: boolean): number {
    const m = this.callMem;
    if (memoryOf(p) === m) return offsetOf(p);
    const s = this.mems[m];
    // The staging area grows only before a call's first staged operand (so earlier ones never move).
    if (this.stageUsed === 0 && this.callBound > s.stageBytes) {
      this.heap.free(s.stage);
      s.stageBytes = Math.max(this.callBound, Math.ceil(s.stageBytes * 1.5));
      s.stage = this.heap.allocIn(m, s.stageBytes, 64);
    }
    if (this.stageUsed + bytes > s.stageBytes) throw new Error('cpu kernels: staging bound too small (a bug in the caller of begin)');
    const off = offsetOf(s.stage) + this.stageUsed;
    this.stageUsed += Math.ceil(bytes / 64) * 64;
    if (bytes > 0 && read) new Uint8Array(this.heap.memories[m].buffer, off, bytes).set(this.bytesAt(p, bytes));
    if (written) this.backs.push(p, off, bytes);
    return off;
  }

  private bytesAt(p: number, bytes: number): Uint8Array {
    return new Uint8Array(this.heap.memories[memoryOf(p)].buffer, offsetOf(p), bytes);
  }

  // Copy the call's written staged operands back.
  private end(): void {
    const b = this.backs;
    for (let i = 0; i < b.length; i += 3) {
      if (b[i + 2] > 0) this.bytesAt(b[i], b[i + 2]).set(new Uint8Array(this.heap.memories[this.callMem].buffer, b[i + 1], b[i + 2]));
    }
    b.length = 0;
  }

  // Post a job: SEQ carries the op (see exec.ts).
  private post(op: number): void {
    Atomics.store(this.i32, SEQ, (this.jobs << OP_BITS) | op);
    Atomics.notify(this.i32, SEQ);
  }

  // Start a new job number; returns its tag (exec.ts).
  private nextJob(): number {
    this.jobs = this.jobs >= MAX_JOBS ? 1 : this.jobs + 1;
    return this.jobs & ((1 << TAG_BITS) - 1);
  }

  // Run a static job (gemm) whose args/ranges are in the control block on all threads.
  private run(op: number, parallel: boolean): void {
    if (this.disposed) throw new Error('cpu kernels: used after dispose()');
    const i32 = this.i32;
    if (!parallel || this.threads === 1) {
      if (op !== Op.AddMemory) runShare(this.exs, op, this.i32, this.f64, 0, this.scratch0);
      return;
    }
    this.nextJob();
    Atomics.store(i32, DONE, 0);
    this.post(op);
    let err: unknown;
    try {
      if (op !== Op.AddMemory) runShare(this.exs, op, this.i32, this.f64, 0, this.scratch0);
    } catch (e) {
      err = e;
    }
    // Always wait for the workers, even after an error: they are reading our arguments.
    const want = this.threads - 1;
    let d = Atomics.load(i32, DONE);
    for (let k = 0; d !== want && k < MAIN_SPIN; k++) d = Atomics.load(i32, DONE);
    while (d !== want) {
      Atomics.wait(i32, DONE, d, 1000);
      d = Atomics.load(i32, DONE);
    }
    if (err !== undefined) throw err;
    this.checkWorkerError();
  }

  private checkWorkerError(): void {
    if (Atomics.load(this.i32, ERR) !== 0) {
      Atomics.store(this.i32, ERR, 0);
      throw new Error('cpu kernels: a kernel failed (see stderr for workers)');
    }
  }

  // Run a chunked job (exec.ts): op-specific args are in the control block; n items,
  // `chunk` items per chunk. Single-threaded calls run the whole range as one chunk.
  private runChunked(op: number, n: number, chunk: number, parallel: boolean): void {
    if (this.disposed) throw new Error('cpu kernels: used after dispose()');
    const i32 = this.i32, f64 = this.f64;
    for (let t = 0; t < this.threads; t++) f64[RESULTS + t] = 0;
    if (!parallel || this.threads === 1) chunk = Math.max(1, n);
    const chunks = Math.ceil(n / chunk);
    if (chunks === 0) return;
    if (chunks >= 1 << CHUNK_BITS) throw new RangeError('cpu kernels: too many chunks');
    const tag = this.nextJob();
    f64[ARGS + A_MEM] = this.callMem;
    // NEXT first: from here on no claim of an older job can succeed (exec.ts).
    Atomics.store(i32, NEXT, tag << CHUNK_BITS);
    f64[ARGS + A_N] = n; f64[ARGS + A_CHUNK] = chunk;
    Atomics.store(i32, NCHUNKS, chunks);
    Atomics.store(i32, COMPLETE, 0);
    if (chunks > 1) this.post(op);
    runChunks(this.exs, op, tag, i32, f64, 0, this.blasOrThrow);
    // Wait only for chunks that workers claimed and have not finished.
    let d = Atomics.load(i32, COMPLETE);
    for (let k = 0; d !== chunks && k < MAIN_SPIN; k++) d = Atomics.load(i32, COMPLETE);
    while (d !== chunks) {
      Atomics.wait(i32, COMPLETE, d, 1000);
      d = Atomics.load(i32, COMPLETE);
    }
    this.checkWorkerError();
  }

  // Set thread t's ranges: [lo, hi) (and [lo2, hi2) for gemm columns).
  private range(t: number, lo: number, hi: number, lo2 = 0, hi2 = 0): void {
    const r = RANGES + 4 * t;
    this.f64[r] = lo; this.f64[r + 1] = hi; this.f64[r + 2] = lo2; this.f64[r + 3] = hi2;
  }

  // Items per chunk of a matrix-vector job: whole groups of 8 rows, about 8 chunks per
  // thread (so a descheduled thread holds up little), at most 64 rows (1 MiB at 4096).
  private rowChunk(n: number): number {
    return Math.min(64, Math.max(8, Math.ceil(n / (8 * this.threads) / 8) * 8));
  }

  // The native address of heap address p (for OpenBLAS, which reads any memory).
  private native(p: number): number {
    return this.nativeBases[memoryOf(p)] + offsetOf(p);
  }

  // y = op(W)·x + beta·y (beta 0 or 1) through OpenBLAS, W [rows, cols]. The threads
  // claim chunks of W's rows (for Wᵀ·x the main thread then adds the workers' partial
  // ys), or for a short, wide Wᵀ of its columns (exec.ts BlasGemv). Two threads here
  // (dev/gemv/worker-blas.mjs): rows 28 GB/s against columns 23 for [1024, 3072];
  // columns 28-30 against rows 19-21 for the Sparse FF controller's [96, 6144], and 30
  // against 27 for [1024, 32000].
  private blasMatvec(trans: boolean, pW: number, rows: number, cols: number, pX: number, pY: number, beta: number): void {
    if (this.disposed) throw new Error('cpu kernels: used after dispose()');
    const blas = this.blasOrThrow();
    const W = this.native(pW), x = this.native(pX), y = this.native(pY);
    const byCols = trans && cols >= 8 * rows;
    const n = byCols ? cols : rows, T = this.threads;
    if (T === 1 || rows * cols < PAR_MIN_FLOATS || n < 16 * T) {
      blas.sgemvAt(trans, rows, cols, 1, W, cols, x, beta, y);
      return;
    }
    const a = this.f64;
    const stride = Math.ceil((cols * 4) / 64) * 64;
    if (trans && !byCols && stride * (T - 1) > this.blasPartialBytes) {
      this.heap.free(this.blasPartial);
      this.blasPartialBytes = stride * (T - 1);
      this.blasPartial = this.heap.allocIn(0, this.blasPartialBytes, 64);
    }
    // Trans chunks add into y (exec.ts), so beta 0 becomes a zeroed y first.
    if (trans && beta === 0) this.exs[memoryOf(pY)].zero(offsetOf(pY), cols);
    a[ARGS + G_TRANS] = trans ? 1 : 0; a[ARGS + G_M] = rows; a[ARGS + G_N] = cols; a[ARGS + G_A] = W; a[ARGS + G_LDA] = cols;
    a[ARGS + G_X] = x; a[ARGS + G_Y] = y; a[ARGS + G_COLS] = byCols ? 1 : 0;
    a[ARGS + A_PART] = this.native(this.blasPartial); a[ARGS + A_PSTRIDE] = stride;
    // Two chunks per thread: a late or descheduled thread's work is taken over by the others.
    const align = byCols ? 16 : 8;
    this.runChunked(Op.BlasGemv, n, Math.ceil(n / (2 * T) / align) * align, true);
    if (trans && !byCols) for (let t = 1; t < T; t++) if (a[RESULTS + t] !== 0) blas.saxpyAt(cols, 1, this.native(this.blasPartial) + (t - 1) * stride, y);
  }

  // C = op(A)·op(B) + beta·C through OpenBLAS on heap addresses; the threads claim
  // chunks of C's rows or columns, whichever side splits more evenly (exec.ts BlasGemm).
  private blasGemm(transA: boolean, transB: boolean, M: number, N: number, K: number, pA: number, lda: number,
    pB: number, ldb: number, pC: number, ldc: number, beta: number): void {
    if (this.disposed) throw new Error('cpu kernels: used after dispose()');
    const blas = this.blasOrThrow();
    const A = this.native(pA), B = this.native(pB), C = this.native(pC), T = this.threads;
    const flops = 2 * M * N * K;
    if (T === 1 || flops < BLAS_GEMM_PAR_MIN_FLOPS) {
      sgemmInParts(blas, transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
      return;
    }
    // One chunk per thread while the parts are small (each call packs its operands), two when large.
    const per = flops >= 64 * PAR_MIN_FLOPS ? 2 : 1;
    const rows = evenChunks(M, 4, T, per), cols = evenChunks(N, 16, T, per);
    const byCols = cols.efficiency > rows.efficiency || (cols.efficiency === rows.efficiency && N > M);
    const { chunk, count } = byCols ? cols : rows;
    if (count < 2) {
      sgemmInParts(blas, transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
      return;
    }
    const a = this.f64;
    a[ARGS + M_TRANSA] = transA ? 1 : 0; a[ARGS + M_TRANSB] = transB ? 1 : 0; a[ARGS + M_K] = K;
    a[ARGS + M_A] = A; a[ARGS + M_LDA] = lda; a[ARGS + M_B] = B; a[ARGS + M_LDB] = ldb; a[ARGS + M_C] = C; a[ARGS + M_LDC] = ldc;
    a[ARGS + M_BETA] = beta; a[ARGS + M_M] = M; a[ARGS + M_N] = N; a[ARGS + M_COLS] = byCols ? 1 : 0;
    this.runChunked(Op.BlasGemm, byCols ? N : M, chunk, true);
  }

  gemmBatch(list: readonly number[]): void {
    const n = list.length / GEMM_FIELDS;
    if (!Number.isInteger(n) || n > B_MAX) throw new RangeError(`cpu kernels: gemmBatch takes up to ${B_MAX} products of ${GEMM_FIELDS} numbers`);
    if (this.blasLib === null || this.threads === 1 || n < 2 || (this.threadsApart && batchFlops(list, n) < APART_BATCH_MIN_FLOPS)) {
      for (let i = 0; i < n; i++) {
        const g = GEMM_FIELDS * i;
        this.gemm(list[g] !== 0, list[g + 1] !== 0, list[g + 2], list[g + 3], list[g + 4], list[g + 5], list[g + 6], list[g + 7], list[g + 8],
          list[g + 9], list[g + 10], list[g + 11] !== 0);
      }
      return;
    }
    if (this.disposed) throw new Error('cpu kernels: used after dispose()');
    const f = this.f64;
    for (let i = 0; i < n; i++) {
      const g = GEMM_FIELDS * i, o = RANGES + g;
      checkInt('M', list[g + 2]); checkInt('N', list[g + 3]); checkInt('K', list[g + 4]);
      checkInt('lda', list[g + 6]); checkInt('ldb', list[g + 8]); checkInt('ldc', list[g + 10]);
      f[o] = list[g]; f[o + 1] = list[g + 1]; f[o + 2] = list[g + 2]; f[o + 3] = list[g + 3]; f[o + 4] = list[g + 4];
      f[o + 5] = this.native(list[g + 5]); f[o + 6] = list[g + 6]; f[o + 7] = this.native(list[g + 7]); f[o + 8] = list[g + 8];
      f[o + 9] = this.native(list[g + 9]); f[o + 10] = list[g + 10]; f[o + 11] = list[g + 11] !== 0 ? 1 : 0;
    }
    this.runChunked(Op.BlasGemmBatch, n, 1, true);
  }

  gemv(pW: number, rows: number, cols: number, pX: number, pY: number): void {
    checkInt('rows', rows); checkInt('cols', cols);
    if (this.blasGemv && rows > 0 && cols > 0) {
      this.blasMatvec(false, pW, rows, cols, pX, pY, 0);
      return;
    }
    const a = this.f64;
    this.begin(memoryOf(pW), (cols + rows) * 4);
    a[ARGS] = offsetOf(pW); a[ARGS + 1] = cols; a[ARGS + 2] = this.place(pX, cols * 4, true, false); a[ARGS + 3] = this.place(pY, rows * 4, false, true);
    this.runChunked(Op.Gemv, rows, this.rowChunk(rows), rows * cols >= PAR_MIN_FLOATS);
    this.end();
  }

  gemvT(pW: number, rows: number, cols: number, pX: number, pY: number, accumulate = true): void {
    checkInt('rows', rows); checkInt('cols', cols);
    if (this.blasGemv && rows > 0 && cols > 0) {
      this.blasMatvec(true, pW, rows, cols, pX, pY, accumulate ? 1 : 0);
      return;
    }
    if (!accumulate) this.heap.f32(pY, cols).fill(0);
    if (rows > this.iotaLength) {
      this.heap.free(this.iota);
      this.iotaLength = Math.max(rows, Math.ceil(this.iotaLength * 1.5));
      this.iota = this.heap.alloc(this.iotaLength * 4, 64);
      const v = this.heap.i32(this.iota, this.iotaLength);
      for (let i = 0; i < v.length; i++) v[i] = i;
    }
    this.axpyRows(pW, cols, this.iota, pX, rows, pY);
  }

  gemvPanels(pW: number, rows: number, cols: number, pX: number, pY: number): void {
    this.gemmPanels(pW, rows, cols, 1, pX, cols, pY, rows);
  }

  // gemmPanels for a chunk of tokens: slices of about 1 MiB of W's rows, each unpacked
  // from its panels into Wᵀ's [cols, slice rows] (wasm, into the thread's cache) and
  // multiplied by OpenBLAS's sgemm (~60 GFLOP/s a core for 16 rows of X, against ~20 for
  // gemmPanels' wasm dots). The threads take whole slices, each into its own scratch: one
  // job per matrix (a job per slice, ~1400 for the llama-style model, lost the second
  // thread whenever it was descheduled).
  private gemmPanelsBlas(pW: number, rows: number, cols: number, T: number, pX: number, ldx: number, pY: number, ldy: number): void {
    if (this.disposed) throw new Error('cpu kernels: used after dispose()');
    const m = memoryOf(pW), s = this.mems[m];
    const slice = Math.max(8, Math.floor(UNPACK_BYTES / (cols * 4) / 8) * 8);
    const stride = Math.ceil((Math.min(slice, Math.ceil(rows / 8) * 8) * cols * 4) / 4096) * 4096;
    if (stride * this.threads > s.unpackedBytes) {
      this.heap.free(s.unpacked);
      s.unpackedBytes = stride * this.threads;
      s.unpacked = this.heap.allocIn(m, s.unpackedBytes, 4096);
    }
    const a = this.f64, slices = Math.ceil(rows / slice);
    a[ARGS] = offsetOf(pW); a[ARGS + 1] = rows; a[ARGS + 2] = cols; a[ARGS + 3] = T; a[ARGS + 4] = this.native(pX); a[ARGS + 5] = ldx;
    a[ARGS + 6] = this.native(pY); a[ARGS + 7] = ldy; a[ARGS + 8] = slice;
    a[ARGS + 9] = offsetOf(s.unpacked); a[ARGS + 10] = this.native(s.unpacked); a[ARGS + 11] = stride;
    this.callMem = m;
    this.runChunked(Op.PanelsGemm, slices, 1, true);
  }

  gemmPanels(pW: number, rows: number, cols: number, T: number, pX: number, ldx: number, pY: number, ldy: number): void {
    checkInt('rows', rows); checkInt('cols', cols); checkInt('T', T); checkInt('ldx', ldx); checkInt('ldy', ldy);
    if (ldx < cols || ldy < rows) throw new RangeError(`cpu kernels: gemmPanels needs ldx >= cols and ldy >= rows, got ${ldx} < ${cols} or ${ldy} < ${rows}`);
    if (rows === 0 || T === 0) return;
    if (this.blasLib !== null && T >= PANELS_BLAS_MIN_ROWS && cols > 0) {
      this.gemmPanelsBlas(pW, rows, cols, T, pX, ldx, pY, ldy);
      return;
    }
    const a = this.f64, panels = Math.ceil(rows / 8);
    const xBytes = ((T - 1) * ldx + cols) * 4, yBytes = ((T - 1) * ldy + rows) * 4;
    this.begin(memoryOf(pW), xBytes + yBytes);
    a[ARGS] = offsetOf(pW); a[ARGS + 1] = rows; a[ARGS + 2] = cols; a[ARGS + 3] = this.place(pX, xBytes, true, false); a[ARGS + 4] = ldx;
    a[ARGS + 5] = T; a[ARGS + 6] = this.place(pY, yBytes, false, true); a[ARGS + 7] = ldy;
    // Shared when W is worth reading on several threads, or its products are worth computing on them.
    const par = rows * cols >= PAR_MIN_FLOATS || 2 * T * rows * cols >= PAR_MIN_FLOPS;
    this.runChunked(Op.GemvPanels, panels, Math.max(1, Math.ceil(panels / (2 * this.threads))), par);
    this.end();
  }

  gemvRows(pW: number, cols: number, pIdx: number, nIdx: number, pX: number, pY: number, ld = cols): void {
    checkInt('cols', cols); checkInt('nIdx', nIdx); checkInt('ld', ld);
    const a = this.f64;
    this.begin(memoryOf(pW), (2 * nIdx + cols) * 4);
    a[ARGS] = offsetOf(pW); a[ARGS + 1] = cols; a[ARGS + 2] = this.place(pIdx, nIdx * 4, true, false);
    a[ARGS + 3] = this.place(pX, cols * 4, true, false); a[ARGS + 4] = this.place(pY, nIdx * 4, false, true); a[ARGS + 5] = ld;
    this.runChunked(Op.GemvRows, nIdx, this.rowChunk(nIdx), nIdx * cols >= PAR_MIN_FLOATS);
    this.end();
  }

  axpyRows(pW: number, cols: number, pIdx: number, pCoef: number, nIdx: number, pY: number, ld = cols): void {
    checkInt('cols', cols); checkInt('nIdx', nIdx); checkInt('ld', ld);
    const a = this.f64;
    const m = memoryOf(pW), s = this.mems[m];
    const par = nIdx * cols >= PAR_MIN_FLOATS && this.threads > 1;
    // Threads split the index list; thread t > 0 sums into its own partial y (whole rows
    // stay one stream each), added into y here afterwards.
    const stride = Math.ceil((cols * 4) / 64) * 64;
    if (par && stride * (this.threads - 1) > s.partialBytes) {
      this.heap.free(s.partial);
      s.partialBytes = stride * (this.threads - 1);
      s.partial = this.heap.allocIn(m, s.partialBytes, 64);
    }
    this.begin(m, (2 * nIdx + cols) * 4);
    const y = this.place(pY, cols * 4, true, true);
    a[ARGS] = offsetOf(pW); a[ARGS + 1] = cols; a[ARGS + 2] = this.place(pIdx, nIdx * 4, true, false);
    a[ARGS + 3] = this.place(pCoef, nIdx * 4, true, false); a[ARGS + 4] = y; a[ARGS + 5] = ld;
    a[ARGS + A_PART] = offsetOf(s.partial); a[ARGS + A_PSTRIDE] = stride;
    this.runChunked(Op.AxpyRows, nIdx, this.rowChunk(nIdx), par);
    if (par) for (let t = 1; t < this.threads; t++) if (a[RESULTS + t] !== 0) this.exs[m].addTo(y, offsetOf(s.partial) + (t - 1) * stride, cols);
    this.end();
  }

  gemmSmallM(pA: number, pB: number, pC: number, M: number, N: number, K: number, bPanels = false): void {
    checkInt('M', M); checkInt('N', N); checkInt('K', K);
    if (bPanels && N % 16 !== 0) throw new RangeError(`cpu kernels: gemmSmallM with B in column panels needs N a multiple of 16, got ${N}`);
    if (M === 0 || N === 0) return;
    const a = this.f64;
    this.begin(memoryOf(pB), (M * K + M * N) * 4);
    a[ARGS] = this.place(pA, M * K * 4, true, false); a[ARGS + 1] = offsetOf(pB); a[ARGS + 2] = this.place(pC, M * N * 4, false, true);
    a[ARGS + 3] = M; a[ARGS + 4] = N; a[ARGS + 5] = K;
    // Chunks of whole 16-column panels, about 8 per thread.
    const chunk = Math.max(16, Math.ceil(N / (8 * this.threads) / 16) * 16);
    const par = M * N * K >= PAR_MIN_FLOPS && this.threads > 1;
    // Rows of B per block (assembly/kernels.ts): 8 for a wide row-major B on one thread;
    // one walk down all of B for a narrow one, for one in column panels (each panel is one
    // contiguous run: no set conflicts), or when threads share it (blocks were slower
    // there, measured with dev/gemv/loss-layer.mjs).
    a[ARGS + 6] = par || bPanels || N < SMALLM_WIDE_N ? K : SMALLM_ROWS;
    a[ARGS + 7] = bPanels ? 1 : 0;
    this.runChunked(Op.GemmSmallM, N, chunk, par);
    this.end();
  }

  attention(pQ: number, pK: number, pV: number, pOut: number, pS: number, H: number, group: number, T: number, hd: number,
    kvStride: number, ld: number, scale: number): void {
    checkInt('H', H); checkInt('group', group); checkInt('T', T); checkInt('hd', hd); checkInt('kvStride', kvStride); checkInt('ld', ld);
    if (group < 1 || H % group !== 0) throw new RangeError(`cpu kernels: attention group ${group} must divide H = ${H}`);
    const m = memoryOf(pK), kvBytes = T === 0 ? 0 : ((H / group - 1) * kvStride + (T - 1) * ld + hd) * 4;
    this.begin(m, kvBytes + (2 * H * hd + H * T) * 4);
    const v = this.place(pV, kvBytes, true, false), q = this.place(pQ, H * hd * 4, true, false);
    const out = this.place(pOut, H * hd * 4, false, true), sc = this.place(pS, H * T * 4, false, false);
    const kvHeads = H / group;
    if (this.threads === 1 || kvHeads < 2 || 2 * H * T * hd < ATT_PAR_MIN) {
      this.exs[m].attention(q, offsetOf(pK), v, out, sc, H, group, T, hd, kvStride, ld, scale);
    } else {
      const s = this.mems[m], stride = Math.ceil((H * T * 4) / 64) * 64;
      if (stride * (this.threads - 1) > s.scoresBytes) {
        this.heap.free(s.scores);
        s.scoresBytes = Math.max(stride * (this.threads - 1), Math.ceil(s.scoresBytes * 1.5));
        s.scores = this.heap.allocIn(m, s.scoresBytes, 64);
      }
      const a = this.f64;
      a[ARGS + T_Q] = q; a[ARGS + T_K] = offsetOf(pK); a[ARGS + T_V] = v; a[ARGS + T_OUT] = out; a[ARGS + T_S] = sc;
      a[ARGS + T_GROUP] = group; a[ARGS + T_T] = T; a[ARGS + T_HD] = hd; a[ARGS + T_KVSTRIDE] = kvStride; a[ARGS + T_LD] = ld; a[ARGS + T_SCALE] = scale;
      a[ARGS + A_PART] = offsetOf(s.scores); a[ARGS + A_PSTRIDE] = stride;
      // About two chunks per thread, whole groups each.
      const chunk = Math.ceil(kvHeads / (2 * this.threads)) * group;
      this.runChunked(Op.Attention, H, chunk, true);
    }
    this.end();
  }

  mulRows(pX: number, pD: number, pOut: number, rows: number, n: number): void {
    checkInt('rows', rows); checkInt('n', n);
    const m = memoryOf(pD);
    this.begin(m, (n + rows * n) * 4);
    const x = this.place(pX, n * 4, true, false), out = this.place(pOut, rows * n * 4, false, true);
    if (this.threads === 1 || rows < 2 || rows * n < PAR_MIN_FLOATS) {
      this.exs[m].mulRows(x, offsetOf(pD), out, rows, n);
    } else {
      // The 17B-class multiplicative layer's x⊙D: 64 rows of 9216 (2.4 MB in, 2.4 MB out).
      const a = this.f64;
      a[ARGS] = x; a[ARGS + 1] = offsetOf(pD); a[ARGS + 2] = out; a[ARGS + 3] = n;
      this.runChunked(Op.MulRows, rows, Math.max(1, Math.ceil(rows / (4 * this.threads))), true);
    }
    this.end();
  }

  addRows(pY: number, pB: number, rows: number, n: number): void {
    checkInt('rows', rows); checkInt('n', n);
    const m = memoryOf(pY);
    this.begin(m, n * 4);
    this.exs[m].addRows(offsetOf(pY), this.place(pB, n * 4, true, false), rows, n);
    this.end();
  }

  im2col(pState: number, pCur: number, pCol: number, S: number, M: number, Fl: number, Fw: number, d: number): void {
    checkInt('S', S); checkInt('M', M); checkInt('Fl', Fl); checkInt('Fw', Fw); checkInt('d', d);
    if (Fl < 1 || Fw < 1 || Fw % 2 !== 1) throw new RangeError(`cpu kernels: im2col needs Fl >= 1 and an odd Fw, got ${Fl}, ${Fw}`);
    const m = memoryOf(pCol);
    this.begin(m, (Fl * d) * 4);
    const state = this.place(pState, (Fl - 1) * d * 4, true, false), cur = this.place(pCur, d * 4, true, false);
    this.exs[m].im2col(state, cur, offsetOf(pCol), S, M, Fl, Fw, d);
    this.end();
  }

  expArray(pX: number, pY: number, n: number): void {
    checkInt('n', n);
    const m = memoryOf(pY);
    this.begin(m, n * 4);
    this.exs[m].expArray(this.place(pX, n * 4, true, false), offsetOf(pY), n);
    this.end();
  }

  blockArgmax(pL: number, pIdx: number, nb: number, N: number): void {
    checkInt('nb', nb); checkInt('N', N);
    if (N < 1) throw new RangeError(`cpu kernels: blockArgmax needs N >= 1, got ${N}`);
    const m = memoryOf(pL);
    this.begin(m, nb * 4);
    this.exs[m].blockArgmax(offsetOf(pL), this.place(pIdx, nb * 4, false, true), nb, N);
    this.end();
  }

  screenQuantize(pU: number, r: number, qmax: number, pUq: number, pInfo: number): void {
    checkInt('r', r); checkInt('qmax', qmax);
    if (qmax < 1 || qmax > 32767 || r * qmax * qmax >= 2 ** 31) throw new RangeError(`cpu kernels: screenQuantize needs 1 <= qmax <= 32767 and r·qmax² < 2^31, got r ${r}, qmax ${qmax}`);
    const m = memoryOf(pUq);
    this.begin(m, (r + 8) * 4);
    const u = this.place(pU, r * 4, true, false), info = this.place(pInfo, 32, false, true);
    this.exs[m].screenQuantize(u, r, qmax, offsetOf(pUq), info);
    this.end();
  }

  pairDotI16(pP: number, groups: number, cols: number, pUq: number, pAcc: number): void {
    checkInt('groups', groups); checkInt('cols', cols);
    if (cols % 4 !== 0) throw new RangeError(`cpu kernels: pairDotI16 needs a multiple of 4 columns, got ${cols}`);
    if (cols === 0) return;
    const a = this.f64;
    this.begin(memoryOf(pP), (4 * groups + cols) * 4);
    a[ARGS] = offsetOf(pP); a[ARGS + 1] = groups; a[ARGS + 2] = cols;
    a[ARGS + 3] = this.place(pUq, 16 * groups, true, false); a[ARGS + 4] = this.place(pAcc, cols * 4, false, true);
    // Whole tiles, about 4 chunks per thread.
    const { chunk } = evenChunks(cols, SCREEN_TILE, this.threads, 4);
    this.runChunked(Op.PairDot, cols, chunk, groups * cols * 4 >= PAR_MIN_FLOATS);
    this.end();
  }

  screenArgmax(pAcc: number, pColScale: number, pBias: number, pS: number, pIdx: number, nb: number, N: number,
    pMargin: number, pInfo: number, pC2t: number, r: number, pU: number): number {
    checkInt('nb', nb); checkInt('N', N); checkInt('r', r);
    if (N < 1) throw new RangeError(`cpu kernels: screenArgmax needs N >= 1, got ${N}`);
    const n = nb * N, m = memoryOf(pC2t);
    // Eight staged operands: begin() covers the 64-byte rounding of four, the last 256 bytes the rest.
    this.begin(m, (4 * n + 7 * nb + 8 + r) * 4 + 256);
    const acc = this.place(pAcc, n * 4, true, false), scale = this.place(pColScale, n * 4, true, false);
    const bias = this.place(pBias, n * 4, true, false), sc = this.place(pS, n * 4, false, true);
    const idx = this.place(pIdx, nb * 4, false, true), margin = this.place(pMargin, nb * 24, true, false);
    const info = this.place(pInfo, 32, true, false), u = this.place(pU, r * 4, true, false);
    const count = this.exs[m].screenArgmax(acc, scale, bias, sc, idx, nb, N, margin, info, offsetOf(pC2t), r, u);
    this.end();
    return count;
  }

  norm(pX: number, pW: number, pB: number | null, pOut: number, n: number, eps: number, rms: boolean): void {
    checkInt('n', n);
    const m = memoryOf(pX);
    this.begin(m, 3 * n * 4);
    const w = this.place(pW, n * 4, true, false), b = pB === null ? 0 : this.place(pB, n * 4, true, false);
    const out = this.place(pOut, n * 4, false, true);
    this.exs[m].norm(offsetOf(pX), w, b, pB === null ? 0 : 1, out, n, eps, rms ? 1 : 0);
    this.end();
  }

  rope(pV: number, nHeads: number, hd: number, pCosSin: number): void {
    checkInt('nHeads', nHeads); checkInt('hd', hd);
    if (hd % 2 !== 0) throw new RangeError(`cpu kernels: rope needs an even head size, got ${hd}`);
    const m = memoryOf(pV);
    this.begin(m, hd * 8);
    const t = this.place(pCosSin, hd * 8, true, false);
    this.exs[m].rope(offsetOf(pV), nHeads, hd, t, t + (hd / 2) * 8);
    this.end();
  }

  copyRows(pDst: number, dstStride: number, pSrc: number, srcStride: number, rows: number, n: number): void {
    checkInt('dstStride', dstStride); checkInt('srcStride', srcStride); checkInt('rows', rows); checkInt('n', n);
    if (rows === 0 || n === 0) return;
    const m = memoryOf(pDst), srcBytes = ((rows - 1) * srcStride + n) * 4;
    this.begin(m, srcBytes);
    this.exs[m].copyRows(offsetOf(pDst), dstStride, this.place(pSrc, srcBytes, true, false), srcStride, rows, n);
    this.end();
  }

  prefetch(ranges: readonly number[]): void {
    const n = ranges.length / 2;
    if (!Number.isInteger(n) || n > PF_MAX_RANGES) throw new RangeError(`cpu kernels: prefetch takes up to ${PF_MAX_RANGES} (address, bytes) pairs`);
    if (this.threads === 1 || this.disposed || this.threadsApart) return;
    // A free slot, the one after the slot posted last first (with several workers either
    // may free first); none free: the hint is dropped. Post numbers order the slots (exec.ts).
    let k = this.prefetchPosts % 2;
    if (Atomics.load(this.i32, PF_STATE + k) !== 0) k = 1 - k;
    if (Atomics.load(this.i32, PF_STATE + k) !== 0) return;
    const f = this.f64, d = PF_SLOT[k];
    f[d] = ++this.prefetchPosts; f[d + 1] = n;
    for (let r = 0; r < n; r++) {
      const p = ranges[2 * r], o = d + 2 + 3 * r;
      f[o] = memoryOf(p); f[o + 1] = offsetOf(p); f[o + 2] = ranges[2 * r + 1];
    }
    Atomics.store(this.i32, PF_STATE + k, 1);
    this.nextJob();
    this.post(Op.Prefetch);
  }

  prefetchesDone(): number {
    return Atomics.load(this.i32, PF_DONE);
  }

  swiglu(pH: number, pOut: number, n: number): void {
    checkInt('n', n);
    const m = memoryOf(pH);
    this.begin(m, n * 4);
    this.exs[m].swiglu(offsetOf(pH), this.place(pOut, n * 4, false, true), n);
    this.end();
  }

  readBandwidth(p: number, bytes: number): number {
    checkInt('bytes', bytes);
    const n = Math.floor(bytes / 4);
    this.begin(memoryOf(p), 0);
    this.f64[ARGS] = offsetOf(p);
    // Chunks of 1 MiB, claimed like the matrix-vector kernels' rows.
    this.runChunked(Op.Read, n, 1 << 18, n >= PAR_MIN_FLOATS);
    let s = 0;
    for (let t = 0; t < this.threads; t++) s += this.f64[RESULTS + t];
    return s;
  }

  roundTripNs(trips = 2000): number {
    checkInt('trips', trips);
    const ns = this.probeRoundTrip(trips);
    if (ns < 0) throw new Error('cpu kernels: worker 1 did not answer the round-trip probe within about a second');
    return ns;
  }

  // roundTripNs' measurement: the median ns per trip, 0 on one thread, -1 when worker 1
  // did not answer (PingPong's patience ran out: exec.ts).
  private probeRoundTrip(trips: number): number {
    if (this.threads === 1 || trips === 0) return 0;
    // A probe that gave up may have left 1 (a first ping never answered): the worker must
    // not take that for this probe's first ping.
    Atomics.store(this.i32, PING, 0);
    this.f64[ARGS] = trips; this.f64[ARGS + 1] = Math.max(1, Math.min(100, Math.floor(trips / 10)));
    this.run(Op.PingPong, true);
    return this.f64[RESULTS];
  }

  checkPlacement(maxAgeMs = 100): boolean {
    if (this.threads === 1 || this.placement !== 'auto') return this.threadsApart;
    const now = performance.now();
    if (now - this.placementCheckedAt < maxAgeMs) return this.threadsApart;
    const ns = this.probeRoundTrip(100);
    if (ns >= 0) this.threadsApart = ns >= APART_NS;
    this.placementCheckedAt = performance.now();
    return this.threadsApart;
  }

  gemm(transA: boolean, transB: boolean, M: number, N: number, K: number, pA: number, lda: number,
    pB: number, ldb: number, pC: number, ldc: number, accumulate: boolean): void {
    checkInt('M', M); checkInt('N', N); checkInt('K', K);
    if (M === 0 || N === 0) return;
    if (this.disposed) throw new Error('cpu kernels: used after dispose()');
    if (this.blasLib !== null && K > 0) {
      this.blasGemm(transA, transB, M, N, K, pA, lda, pB, ldb, pC, ldc, accumulate ? 1 : 0);
      return;
    }
    // Home: the largest operand's memory (the weight, in the decoder's prefill).
    const span = (rows: number, ld: number, cols: number): number => (rows === 0 ? 0 : ((rows - 1) * ld + cols) * 4);
    const bytesA = transA ? span(K, lda, M) : span(M, lda, K), bytesB = transB ? span(N, ldb, K) : span(K, ldb, N), bytesC = span(M, ldc, N);
    const homeBytes = Math.max(bytesA, bytesB, bytesC);
    const home = homeBytes === bytesA ? pA : homeBytes === bytesB ? pB : pC;
    this.begin(memoryOf(home), bytesA + bytesB + bytesC - homeBytes);
    const oA = this.place(pA, bytesA, true, false), oB = this.place(pB, bytesB, true, false), oC = this.place(pC, bytesC, accumulate, true);
    this.wasmGemm(transA, transB, M, N, K, oA, lda, oB, ldb, oC, ldc, accumulate);
    this.end();
  }

  // The wasm gemm on offsets in memory callMem (set by begin).
  private wasmGemm(transA: boolean, transB: boolean, M: number, N: number, K: number, pA: number, lda: number,
    pB: number, ldb: number, pC: number, ldc: number, accumulate: boolean): void {
    const a = this.f64;
    a[ARGS + A_MEM] = this.callMem;
    a[ARGS] = transA ? 1 : 0; a[ARGS + 1] = transB ? 1 : 0; a[ARGS + 2] = K;
    a[ARGS + 3] = pA; a[ARGS + 4] = lda; a[ARGS + 5] = pB; a[ARGS + 6] = ldb;
    a[ARGS + 7] = pC; a[ARGS + 8] = ldc; a[ARGS + 9] = accumulate ? 1 : 0;
    const par = 2 * M * N * K >= PAR_MIN_FLOPS && this.threads > 1;
    const parts = par ? this.threads : 1;
    // Split the longer side: each thread packs its own copy of the other operand.
    if (M >= N) {
      const b = split(M, parts, 4);
      for (let t = 0; t < parts; t++) this.range(t, b[t], b[t + 1], 0, N);
    } else {
      const b = split(N, parts, 8);
      for (let t = 0; t < parts; t++) this.range(t, 0, M, b[t], b[t + 1]);
    }
    for (let t = parts; t < this.threads; t++) this.range(t, 0, 0, 0, 0);
    this.run(Op.Gemm, par);
  }

  matmul(transA: boolean, transB: boolean, M: number, N: number, K: number, a: Float32Array, aOff: number, lda: number,
    b: Float32Array, bOff: number, ldb: number, c: Float32Array, cOff: number, ldc: number): void {
    checkInt('M', M); checkInt('N', N); checkInt('K', K);
    if (M === 0 || N === 0) return;
    const aRows = transA ? K : M, aCols = transA ? M : K;
    const bRows = transB ? N : K, bCols = transB ? K : N;
    if (aRows > 0 && (lda < aCols || aOff + (aRows - 1) * lda + aCols > a.length)) throw new RangeError('matmul: a too short for its shape');
    if (bRows > 0 && (ldb < bCols || bOff + (bRows - 1) * ldb + bCols > b.length)) throw new RangeError('matmul: b too short for its shape');
    if (ldc < N || cOff + (M - 1) * ldc + N > c.length) throw new RangeError('matmul: c too short for its shape');
    // One thread, or too little work to share: OpenBLAS on the arrays themselves.
    if (this.blasLib !== null && K > 0 && (this.threads === 1 || 2 * M * N * K < PAR_MIN_FLOPS)) {
      if (this.disposed) throw new Error('cpu kernels: used after dispose()');
      this.blasLib.sgemm(transA, transB, M, N, K, 1, a.subarray(aOff), lda, b.subarray(bOff), ldb, 0, c.subarray(cOff), ldc);
      return;
    }
    // Copy the used parts compactly into the arena: A as [aRows, aCols], B as [bRows, bCols], C as [M, N].
    const na = aRows * aCols, nb = bRows * bCols, nc = M * N;
    const pa = this.ensureArena((na + nb + nc) * 4 + 128);
    const pb = pa + Math.ceil((na * 4) / 64) * 64;
    const pc = pb + Math.ceil((nb * 4) / 64) * 64;
    const h = this.heap;
    copyIn(h.f32(pa, na), a, aOff, lda, aRows, aCols);
    copyIn(h.f32(pb, nb), b, bOff, ldb, bRows, bCols);
    // Several threads: the workers see only the heap, so the operands go through the arena.
    if (this.blasLib !== null && K > 0) {
      this.blasGemm(transA, transB, M, N, K, pa, aCols, pb, bCols, pc, N, 0);
    } else {
      this.begin(memoryOf(pa), 0); // the arena is one block: all three in one memory
      this.wasmGemm(transA, transB, M, N, K, offsetOf(pa), aCols, offsetOf(pb), bCols, offsetOf(pc), N, false);
    }
    const cv = h.f32(pc, nc);
    if (ldc === N) c.set(cv, cOff);
    else for (let i = 0; i < M; i++) c.set(cv.subarray(i * N, (i + 1) * N), cOff + i * ldc);
  }

  private ensureArena(bytes: number): number {
    if (bytes > this.arenaBytes) {
      this.heap.free(this.arena);
      this.arenaBytes = Math.max(bytes, Math.ceil(this.arenaBytes * 1.5));
      this.arena = this.heap.alloc(this.arenaBytes, 64);
    }
    return this.arena;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.workers.length > 0) {
      this.nextJob();
      this.post(Op.Exit);
      for (const w of this.workers) void w.terminate();
    }
    for (const p of this.ports) p.close();
    this.workers.length = 0;
    this.ports.length = 0;
  }
}

// V8 first runs wasm with its baseline compiler (Liftoff, ~3-5x slower here) and
// tiers a function up to TurboFan only after it has run a while; a call already
// running never switches. The compiled code belongs to the module, which all
// instances and workers share, so once per module (build) we call every kernel (the
// decoder's per-token ones too) on small data until tier-up has had time to finish
// (it takes ~5 ms here).
const warmedUp = new WeakSet<WasmModule>();
function warmUp(module: WasmModule, ex: KernelExports, heap: SharedHeap): void {
  if (warmedUp.has(module)) return;
  warmedUp.add(module);
  const n = 48;
  const p = heap.alloc(4 * n * n * 4 + ex.gemmScratchBytes(), 64);
  const pa = p, pb = p + n * n * 4, pc = p + 2 * n * n * 4, pi = p + 3 * n * n * 4, ps = p + 4 * n * n * 4;
  heap.f32(p, 3 * n * n).fill(0.5);
  heap.i32(pi, n).set(Array.from({ length: n }, (_, i) => i));
  const t0 = performance.now();
  for (let it = 0; it < 200 && (it < 20 || performance.now() - t0 < 15); it++) {
    ex.gemm(it & 1, (it >> 1) & 1, n, pa, n, pb, n, pc, n, 0, 0, n, 0, n, ps);
    ex.gemv(pa, n, pb, pc, 0, n);
    ex.gemvRows(pa, n, n, pi, pb, pc, 0, n);
    ex.axpyRows(pa, n, n, pi, pb, pc, 0, n);
    ex.readSum(pa, n * n);
    // The decoder's per-token kernels, on the same data (outputs into pc or the scratch).
    ex.gemmSmallM(pa, pb, pc, 4, n, n, 0, n, 8, 0);
    ex.attention(pa, pb, pb, pc, ps, 4, 2, 8, 16, 16, 32, 0.25);
    ex.norm(pa, pb, pb, 1, pc, n, 1e-5, it & 1);
    ex.rope(pc, 2, 16, pa, pa + 64);
    ex.mulRows(pa, pb, pc, 4, n);
    ex.addRows(pc, pb, 4, n);
    ex.im2col(pa, pb, pc, 4, 4, 3, 3, 16);
    ex.expArray(pa, pc, 7);
    ex.blockArgmax(pa, ps, 3, 16);
    ex.gemvPanels(pa, 13, 15, pb, 16, 2, pc, 16, 0, 2);
    ex.screenQuantize(pa, 16, 1000, pc, ps);
    ex.pairDotI16(pa, 2, 16, pc, ps + 64, 0, 16);
    ex.screenArgmax(ps + 64, pb, pb, pc + 256, pc + 512, 4, 4, pa, ps, pa, 16, pb);
    ex.copyRows(pc, n, pa, n, 4, n);
    ex.swiglu(pa, pc, n);
  }
  heap.free(p);
}

function copyIn(dst: Float32Array, src: Float32Array, off: number, ld: number, rows: number, cols: number): void {
  if (ld === cols) { dst.set(src.subarray(off, off + rows * cols)); return; }
  for (let r = 0; r < rows; r++) dst.set(src.subarray(off + r * ld, off + r * ld + cols), r * cols);
}

/** Create the kernel library: loads build/wasm/kernels.wasm synchronously and starts threads-1 workers. */
export function createKernels(opts: KernelOptions = {}): CpuKernels {
  return new Kernels(opts);
}
