/**
 * The fast batch-1 CPU decoder (in the spirit of llama2.c): one token at a
 * time through all layers, with a KV cache and the Sparse QKV convolution
 * state, every O(d·d) product on the WebAssembly SIMD kernels
 * (src/backends/cpu/kernels.ts).
 *
 * What it is: a separate, inference-only implementation of docs/model.md in
 * evaluation mode, checked against the training graph's forward
 * (test/decode.test.ts). What it is not: trainable, batched over sequences,
 * or safe to use from two threads.
 *
 * Invariants:
 * - Everything lives in the kernels' wasm heap and is allocated in the
 *   constructor: weights (in decode layouts, below), activations, the KV
 *   cache [layer][ctx][kv_head·hd], the convolution states (last F_l-1 input
 *   rows), logits. step() allocates nothing.
 * - Decode layouts: a matrix that a token reads whole (dense attention's
 *   projections, dense and Top-k FF's W1, the plain dense FF's and SwiGLU's W2,
 *   the output, tied or not) used as y = x·W ([d_in, d_out] in the checkpoint) is
 *   stored as Wᵀ [d_out, d_in] in 8-row panels (`denseLayout`: gemvPanels reads
 *   it as one stream). The W2 rows that the sparse paths (ReLU zeros, Top-k,
 *   Sparse FF) pick stay [d_ff, d], beside W1ᵀ [d_ff, d]: a neuron is two
 *   contiguous rows, and only active neurons' rows are read (gemvRows / axpyRows).
 * - step() returns a view of the heap's logits buffer: valid until the next
 *   step()/prefill(); copy it to keep it.
 * - prefill() runs the prompt in chunks of up to 32 rows: the dense products
 *   (dense attention's projections, dense FF) as one gemm per chunk, so a
 *   weight is read once per chunk; the per-token sparse choices, attention and
 *   the stateful convolutions go row by row through the step path.
 *
 * Choices measured here (800m shapes, 1 thread): the factored layers
 * (Sparse QKV's multiplicative layer, the sparse loss layer) and the im2col
 * convolutions are one product [S, K]·B[K, N] each rather than S gemvs: one
 * call, B read once (smallGemm: OpenBLAS for the blocks' narrow B, the
 * unpacked gemmSmallM kernel for the loss layer's wide E). x⊙D, biases and
 * residual adds are wasm kernels (mulRows, addRows); attention over the cache
 * is one kernel call for all heads (kernels.attention); the Sparse FF
 * controller's C2 [r, d_ff] is r long rows (axpyRows) instead of d_ff rows of
 * r floats (a gemv at a fraction of the read rate). Profile of the 800m Sparse
 * FF + QKV block before these (node --cpu-prof, 1 thread, 0.61 ms/block):
 * controller gemv ~0.19 ms, per-head attention calls and JS softmax ~0.1 ms,
 * JS loops over d (x⊙D, biases) ~0.05 ms, 5 small OpenBLAS gemms ~0.09 ms.
 * The plain dense baseline (skipZeros: false) stores W2ᵀ
 * and uses gemv; the default stores W2 [d_ff, d] and gathers the nonzero rows.
 *
 * Sparse choices follow the training graph: Top-k and Sparse FF's argmax
 * break ties to the lower index.
 */

import { createKernels, memoryOf, offsetOf, panelRow, panelsInto, panelsLength, toColumnPanels, toPanels, type CpuKernels } from '../backends/cpu/kernels.js';
import { erf } from '../backends/ref/index.js';
import { derived, type ModelConfig } from '../models/config.js';
import { parameterSpecs } from '../models/params.js';
import { checkParameters } from '../models/transformer.js';
import { SparselmError } from '../tensor/errors.js';
import { Tensor } from '../tensor/tensor.js';
import { buildScreen, type ControllerScreen } from './screen.js';

/**
 * out[o + j·stride + i] = data[i·cols + j] for i < rows, j < cols: the transpose of data
 * [rows, cols], its row j at o + j·stride. In 64x64 tiles: a 2.4 GB matrix (17B-class
 * W1) transposed element by element misses the cache on every read.
 */
function transposeInto(out: Float32Array, o: number, stride: number, data: Float32Array, rows: number, cols: number): void {
  const T = 64;
  for (let j0 = 0; j0 < cols; j0 += T) {
    const j1 = Math.min(cols, j0 + T);
    for (let i0 = 0; i0 < rows; i0 += T) {
      const i1 = Math.min(rows, i0 + T);
      for (let j = j0; j < j1; j++) {
        const oj = o + j * stride;
        for (let i = i0; i < i1; i++) out[oj + i] = data[i * cols + j];
      }
    }
  }
}

/** The most bytes of the next layer's Sparse QKV weights worth prefetching during an FF (see where it is used). */
const ATTN_PREFETCH_MAX = 4 << 20;

export type ParamSource = Readonly<Record<string, Tensor | Float32Array>>;

export interface EngineOptions {
  /** Kernel threads including the main thread (default: the machine's cores). Ignored when `kernels` is given. */
  threads?: number;
  /** Positions the KV cache holds (default and maximum: config.context_length). */
  maxContext?: number;
  /** Use these kernels instead of creating them (the engine then does not dispose them). */
  kernels?: CpuKernels;
  /** Dense ReLU/GELU/SwiGLU FF: skip the W2 rows of exactly-zero activations (default true; false reads all rows, the plain dense baseline). */
  skipZeros?: boolean;
  /**
   * Sparse FF: store each neuron's W1ᵀ and W2 rows side by side (LayerW.ffLd). Default:
   * when the pair of matrices fits in 2 GiB (one block of one wasm memory).
   */
  interleaveFF?: boolean;
  /** Prompt rows per prefill chunk (default 32). */
  prefillRows?: number;
  /**
   * The matrices of the dense products in gemvPanels' 8-row panels (default true), or,
   * false, as before them: [d_in, d_out] for OpenBLAS's transposed sgemv when the
   * kernels have OpenBLAS, else [d_out, d_in] rows (kept to measure one against the other).
   */
  densePanels?: boolean;
}

/** A view of one heap block: pointer and JS view. */
interface Buf { p: number; v: Float32Array }

// E [d, M] and a convolution's kernel [F_l·F_w·M, M] are stored as smallGemm reads them:
// row-major, or in column panels where smallGemmPanels says so (two or more threads).
interface Factored { Dt: Buf; E: Buf; beta: Buf; S: number; M: number }
/** A controller screen in the heap (screen.ts): panels uint32, colScale [cols], c2t [d_ff, r], margin float64 [3·nb]. */
interface ScreenBufs { panels: Buf; colScale: Buf; c2t: Buf; margin: Buf; groups: number; cols: number; qmax: number }
interface Conv { kernel: Buf; bias: Buf; Fw: number }

interface LayerW {
  attnNormW: Buf; attnNormB: Buf | null;
  ffnNormW: Buf; ffnNormB: Buf | null;
  // dense attention: [wq; wk; wv]ᵀ [(H + 2·Hkv)·hd, d], woᵀ [d, H·hd]
  wqkv: Buf | null; wo: Buf | null;
  // sparse QKV
  mult: Factored | null; convQ: Conv | null; convK: Conv | null; convV: Conv | null;
  outMult: Factored | null; outConv: Conv | null;
  qkvState: Buf | null; outState: Buf | null; // [F_l-1, d], oldest row first
  // FF: w1ᵀ [d_ff, d] (swiglu: [w_gate; w_up]ᵀ [2·d_ff, d]), w2 [d_ff, d] (swiglu: w_down).
  // Sparse FF interleaves them, [d_ff][2][d] (ffLd = 2d floats between a matrix's rows):
  // a chosen neuron's two rows are 8 KB in a row, not two scattered pages (10-18%
  // faster gathers, dev/gemv/13_interleave_lab.mjs); w1 and w2 then point into one block.
  // Not when that block would pass 2 GiB (a wasm memory holds 4 GiB; the 17B-class
  // layer's pair is 4.8 GB): then two blocks, ffLd = d.
  w1: Buf; b1: Buf | null; w2: Buf; b2: Buf | null; ffLd: number;
  // Sparse FF controller: c1ᵀ [r, d] (in gemvPanels' layout: one contiguous stream),
  // c_bias [d_ff], and C2 either as its screen (the
  // default: screen.ts) or, with multiply_by_controller (which needs every logit) or
  // weights the screen cannot scale, c2 [r, d_ff] as in the checkpoint (r long rows).
  c1: Buf | null; c2: Buf | null; cBias: Buf | null; screen: ScreenBufs | null;
  // KV cache [maxContext, Hkv·hd], position-major: attention reads positions 0..T-1 of
  // all heads as one contiguous stream (head-major [Hkv, ctx, hd] made it 2·Hkv short
  // streams, cold at 5.6 GB/s: 37 µs per 800m layer at T = 26 against 8 hot).
  k: Buf; v: Buf;
  topk: number;
  // (address, bytes) pairs for kernels.prefetch (two or more threads): the Sparse FF
  // controller's weights, and Sparse QKV's; empty for other layer kinds.
  ffPrefetch: number[]; attnPrefetch: number[];
  // Sparse QKV's three convolutions as one kernels.gemmBatch list (q, k, v into qkv), when
  // they go to OpenBLAS on two or more threads (their kernels row-major); empty otherwise.
  convBatch: number[];
}

/** Timing and traffic of the last step. */
export interface StepStats {
  /** Bytes of weights the kernels read (float32). */
  weightBytes: number;
  /** Of those, the bytes read in the blocks (all layers). */
  blockWeightBytes: number;
  /** Milliseconds in the blocks (all layers), and in the whole step. */
  blocksMs: number;
  totalMs: number;
  /** Sparse FF neurons whose controller logit the screen recomputed exactly (all layers; screen.ts). */
  recomputed: number;
}

/** Unit a is weaker than unit b: a smaller value, or an equal value and a higher index (ties go to the lower index). */
function weaker(h: Float32Array, a: number, b: number): boolean {
  return h[a] < h[b] || (h[a] === h[b] && a > b);
}

/** Restores the min-heap (by `weaker`) of the first n entries of hp below position i. */
function siftDown(hp: Int32Array, h: Float32Array, i: number, n: number): void {
  for (;;) {
    const l = 2 * i + 1, r = l + 1;
    let m = i;
    if (l < n && weaker(h, hp[l], hp[m])) m = l;
    if (r < n && weaker(h, hp[r], hp[m])) m = r;
    if (m === i) return;
    const t = hp[i]; hp[i] = hp[m]; hp[m] = t; i = m;
  }
}

/** Prompt rows per prefill chunk (its gemm's M): enough to amortise reading the weights, small enough for the buffers. */
const PREFILL_ROWS = 32;

/** Output columns from which the factored layers use gemmSmallM even when OpenBLAS is there (see smallGemm). */
const SMALL_GEMM_MIN_N = 1024;

const f32Of = (t: Tensor | Float32Array): Float32Array =>
  t instanceof Float32Array ? t : Float32Array.from(t.toArray() as ArrayLike<number>);

export class DecodeEngine {
  readonly config: ModelConfig;
  readonly maxContext: number;
  readonly kernels: CpuKernels;
  /** Bytes of weights held in the heap. */
  readonly weightBytesTotal: number;
  readonly last: StepStats = { weightBytes: 0, blockWeightBytes: 0, blocksMs: 0, totalMs: 0, recomputed: 0 };
  private pos = 0;
  private readonly ownsKernels: boolean;
  private readonly skipZeros: boolean;
  /** Dense FF's W2 is read whole, as a dense product (the plain baseline, or SwiGLU, whose exact zeros are rare); else as rows to gather. */
  private readonly w2Whole: boolean;
  /**
   * How the dense products' matrices are stored and read:
   * - 'panels' (the default): Wᵀ [d_out, d_in] in gemvPanels' 8-row panels, one stream
   *   per matrix. On one thread it read the dense llama-style token's 1.47 GB in 0.83x
   *   OpenBLAS's time, 0.80x on two (dev/gemv/15_dense_panels_lab.mjs); prefill reads
   *   each panel once for a chunk's rows (gemmPanels).
   * - 'input-major' (densePanels false, with OpenBLAS): [d_in, d_out] as in the
   *   checkpoint, for OpenBLAS's transposed sgemv (20-30% faster than its plain one on
   *   [d_out, d_in] here: dev/gemv/blas-layout.mjs).
   * - 'rows' (densePanels false, without OpenBLAS): [d_out, d_in], the wasm gemv's rows.
   */
  private readonly denseLayout: 'panels' | 'input-major' | 'rows';
  /** Every heap block the engine placed: (address, bytes). */
  private allocated: Array<{ p: number; bytes: number }> = [];
  /** The sum touchPages() read (kept so its reads are not optimised away). */
  private touchSum = 0;
  private weightBytes = 0;

  private readonly d: number;
  private readonly hd: number;
  private readonly H: number;
  private readonly Hkv: number;
  private readonly Fl: number;
  private readonly tokEmb: Buf;
  /**
   * The embedding is also the (tied) output matrix and the dense products are in panels:
   * it is stored once, in panels, so the output streams at gemvPanels' rate (OpenBLAS's
   * plain sgemv read the 800m shape's 131 MB at ~20 GB/s, gemvPanels at ~25); a token's
   * row is gathered from its panel (`embed`).
   */
  private readonly tokEmbPanels: boolean;
  private readonly posEmb: Buf | null;
  private readonly outW: Buf | null; // untied output.weight, laid out as the dense products are (null: tied, or the sparse loss layer)
  private readonly outFactored: Factored | null;
  private readonly outNormW: Buf;
  private readonly outNormB: Buf | null;
  private readonly layers: LayerW[] = [];
  // activations
  private readonly x: Buf; private readonly xb: Buf; private readonly y: Buf; private readonly tmp: Buf;
  private readonly qkv: Buf; private readonly att: Buf; private readonly scores: Buf;
  private readonly hbuf: Buf; private readonly coef: Buf; private readonly idx: { p: number; v: Int32Array };
  private readonly low: Buf; private readonly ctrl: Buf;
  private readonly uq: Buf; private readonly uInfo: Buf; private readonly acc: Buf;
  /** Neurons the controller screen recomputed exactly in the last step (all layers). */
  private recomputed = 0;
  private readonly xs: Buf; private readonly m: Buf; private readonly colQK: Buf; private readonly colV: Buf;
  private readonly logits: Buf;
  // prefill: P rows at a time
  private readonly P: number;
  private readonly X2: Buf; private readonly XB2: Buf; private readonly Y2: Buf;
  private readonly QKV2: Buf; private readonly ATT2: Buf; private readonly HB2: Buf;
  private readonly invFreq: Float64Array;
  // RoPE's cosines then sines (float64, hd/2 each) at position ropePos, for kernels.rope.
  private readonly ropeTable: Buf; private readonly ropeCosSin: Float64Array; private ropePos = -1;
  private readonly topkHeap: Int32Array;

  constructor(config: ModelConfig, params: ParamSource, opts: EngineOptions = {}) {
    this.config = config;
    const c = config;
    const specs = parameterSpecs(c);
    // Checked without reading any value: a source may make its arrays on access (the
    // benchmarks' random weights do, so a 17B-class block is never held twice).
    const descs = Object.values(Object.getOwnPropertyDescriptors(params));
    if (descs.every((d) => d.value instanceof Tensor)) {
      checkParameters(c, params as Record<string, Tensor>);
    } else {
      for (const name of specs.keys()) if (!(name in params)) throw new SparselmError(`decode: missing parameter '${name}'`);
      for (const name of Object.keys(params)) if (!specs.has(name)) throw new SparselmError(`decode: unexpected parameter '${name}' for this config`);
    }
    const maxContext = opts.maxContext ?? c.context_length;
    if (!Number.isInteger(maxContext) || maxContext < 1 || maxContext > c.context_length) {
      throw new SparselmError(`decode: maxContext must be an integer in 1..${c.context_length}, got ${maxContext}`);
    }
    this.maxContext = maxContext;
    this.ownsKernels = opts.kernels === undefined;
    this.skipZeros = opts.skipZeros ?? true;
    this.w2Whole = c.ffn === 'dense' && (!this.skipZeros || c.activation === 'swiglu');
    this.kernels = opts.kernels ?? createKernels({ threads: opts.threads });
    this.denseLayout = (opts.densePanels ?? true) ? 'panels' : this.kernels.blasGemv ? 'input-major' : 'rows';
    const der = derived(c);
    const d = (this.d = c.d_model);
    const hd = (this.hd = der.head_dim);
    const H = (this.H = c.n_heads);
    const Hkv = (this.Hkv = c.attn === 'dense' ? c.n_kv_heads : c.n_heads);
    const Fl = (this.Fl = c.qkv_conv_length);
    const M = der.qkv_module_size;
    const S = c.qkv_modules;
    const dff = c.d_ff;
    // Each parameter is read once, here (sizes checked as it is read).
    const get = (name: string): Float32Array => {
      const t = params[name];
      const spec = specs.get(name);
      const n = spec === undefined ? -1 : spec.shape.reduce((a, b) => a * b, 1);
      const len = t instanceof Tensor ? t.size : t.length;
      if (len !== n) throw new SparselmError(`decode: parameter '${name}' has ${len} values, the config implies ${n} ([${spec?.shape.join(',')}])`);
      return f32Of(t);
    };
    const opt = (name: string): Float32Array | null => (params[name] === undefined ? null : get(name));

    try {
      // ---- weights
      const W = (data: Float32Array): Buf => { const b = this.alloc(data.length); b.v.set(data); this.weightBytes += data.length * 4; return b; };
      const Wopt = (data: Float32Array | null): Buf | null => (data ? W(data) : null);
      // The dense products' matrices (mats [rows, cols_k], stacked along the outputs) in `denseLayout`.
      const MV = (rows: number, ...mats: { data: Float32Array; cols: number }[]): Buf =>
        this.denseLayout === 'panels' ? PT(rows, ...mats) : this.denseLayout === 'input-major' ? WS(rows, ...mats) : WT(rows, ...mats);
      // Their transpose [Σ cols_k, rows] in gemvPanels' panels.
      const PT = (rows: number, ...mats: { data: Float32Array; cols: number }[]): Buf => {
        const total = mats.reduce((s, m) => s + m.cols, 0);
        const b = this.alloc(panelsLength(total, rows));
        panelsInto(b.v, rows, mats);
        this.weightBytes += rows * total * 4;
        return b;
      };
      // Several [rows, cols_k] matrices side by side as one [rows, Σ cols_k] (row i = row i of each).
      const WS = (rows: number, ...mats: { data: Float32Array; cols: number }[]): Buf => {
        const total = mats.reduce((s, m) => s + m.cols, 0);
        if (mats.length === 1) return W(mats[0].data);
        const b = this.alloc(rows * total);
        let base = 0;
        for (const { data, cols } of mats) {
          for (let i = 0; i < rows; i++) b.v.set(data.subarray(i * cols, (i + 1) * cols), i * total + base);
          base += cols;
        }
        this.weightBytes += rows * total * 4;
        return b;
      };
      // Store the transpose of `data` [rows, cols] as [cols, rows]; several matrices with the same rows are stacked.
      const WT = (rows: number, ...mats: { data: Float32Array; cols: number }[]): Buf => {
        const total = mats.reduce((s, m) => s + m.cols, 0);
        const b = this.alloc(rows * total);
        let base = 0;
        for (const { data, cols } of mats) {
          transposeInto(b.v, base * rows, rows, data, rows, cols);
          base += cols;
        }
        this.weightBytes += rows * total * 4;
        return b;
      };
      // Sparse FF's W1 [d, d_ff] and W2 [d_ff, d] as [d_ff][2][d]: row 2j = column j of W1,
      // row 2j+1 = row j of W2.
      const interleaved = (w1: Float32Array, w2: Float32Array): Buf => {
        const b = this.alloc(2 * dff * d);
        transposeInto(b.v, 0, 2 * d, w1, d, dff);
        for (let j = 0; j < dff; j++) b.v.set(w2.subarray(j * d, (j + 1) * d), (2 * j + 1) * d);
        this.weightBytes += 2 * dff * d * 4;
        return b;
      };
      // The B [K, N] of a smallGemm product, in the layout smallGemm reads it in.
      const smallGemmB = (w: Float32Array, K: number, N: number): Buf => W(this.smallGemmPanels(N) ? toColumnPanels(w, K, N) : w);
      const factored = (prefix: string, Sm: number, Mo: number): Factored => ({
        Dt: WT(d, { data: get(`${prefix}.D`), cols: Sm }), E: smallGemmB(get(`${prefix}.E`), d, Mo), beta: W(get(`${prefix}.beta`)), S: Sm, M: Mo,
      });
      const conv = (prefix: string, Fw: number): Conv => ({ kernel: smallGemmB(get(`${prefix}.kernel`), Fl * Fw * M, M), bias: W(get(`${prefix}.bias`)), Fw });

      this.tokEmbPanels = this.denseLayout === 'panels' && c.tied_output && c.output !== 'sparse';
      this.tokEmb = this.tokEmbPanels ? W(toPanels(get('tok_emb.weight'), c.vocab_size, d)) : W(get('tok_emb.weight'));
      this.posEmb = c.positions === 'learned' ? W(get('pos_emb.weight')) : null;
      const interleave = c.ffn === 'sparse' && (opts.interleaveFF ?? 2 * dff * d * 4 <= 2 ** 31);
      for (let l = 0; l < c.n_layers; l++) {
        const b = `blk.${l}`;
        const dense = c.attn === 'dense';
        const swiglu = c.ffn === 'dense' && c.activation === 'swiglu';
        const qkvOut = c.qkv_output;
        // Allocated in the order a token reads them: a layer's attention weights, FF norm,
        // controller and biases follow one another in the heap, and the big blocks that
        // are gathered from or grow with the context (W1/W2, the KV cache, C2ᵀ for the
        // screen's few recomputed neurons) come after them.
        const attnNormW = W(get(`${b}.attn_norm.weight`)), attnNormB = Wopt(opt(`${b}.attn_norm.bias`));
        const wqkv = dense ? MV(d, { data: get(`${b}.attn.wq`), cols: H * hd }, { data: get(`${b}.attn.wk`), cols: Hkv * hd }, { data: get(`${b}.attn.wv`), cols: Hkv * hd }) : null;
        const wo = dense ? MV(H * hd, { data: get(`${b}.attn.wo`), cols: d }) : null;
        const mult = dense ? null : factored(`${b}.attn.mult`, S, M);
        const convQ = dense ? null : conv(`${b}.attn.conv_q`, 3);
        const convK = dense ? null : conv(`${b}.attn.conv_k`, 3);
        const convV = dense ? null : conv(`${b}.attn.conv_v`, 1);
        const outMult = !dense && (qkvOut === 'mult' || qkvOut === 'multconv') ? factored(`${b}.attn.out_mult`, S, M) : null;
        const outConv = !dense && (qkvOut === 'conv' || qkvOut === 'multconv') ? conv(`${b}.attn.out_conv`, 3) : null;
        const ffnNormW = W(get(`${b}.ffn_norm.weight`)), ffnNormB = Wopt(opt(`${b}.ffn_norm.bias`));
        let c1: Buf | null = null, c2: Buf | null = null, cBias: Buf | null = null;
        // The screen's parts read every token; its C2ᵀ (rarely read) is allocated after the big blocks.
        let screenParts: { panels: Buf; colScale: Buf; margin: Buf; sc: ControllerScreen } | null = null;
        if (c.ffn === 'sparse') {
          // C1 [d, r] as C1ᵀ [r, d] in panels, whatever the layout of the dense products: read once
          // per token, it streams in 13-16 µs against 18-27 as 8 rows (dev/gemv/12_panels_lab.mjs).
          c1 = PT(d, { data: get(`${b}.ffn.c1`), cols: c.sparse_lowrank });
          const c2Data = get(`${b}.ffn.c2`), cBiasData = get(`${b}.ffn.c_bias`);
          const sc = c.sparse_multiply_by_controller ? null : buildScreen(c2Data, cBiasData, c.sparse_lowrank, dff, c.sparse_block);
          if (sc) {
            const panels = this.alloc(sc.panels.length);
            this.kernels.heap.i32(panels.p, sc.panels.length).set(new Int32Array(sc.panels.buffer, sc.panels.byteOffset, sc.panels.length));
            const colScale = W(sc.colScale);
            cBias = W(cBiasData);
            const margin = this.alloc(2 * sc.margin.length);
            new Float64Array(margin.v.buffer, margin.v.byteOffset, sc.margin.length).set(sc.margin);
            this.weightBytes += (panels.v.length + margin.v.length) * 4;
            screenParts = { panels, colScale, margin, sc };
          } else {
            c2 = W(c2Data);
            cBias = W(cBiasData);
          }
        }
        const b1 = Wopt(opt(`${b}.ffn.b1`)), b2 = Wopt(opt(`${b}.ffn.b2`));
        const lw: LayerW = {
          attnNormW, attnNormB, ffnNormW, ffnNormB, wqkv, wo, mult, convQ, convK, convV, outMult, outConv,
          qkvState: dense ? null : this.alloc(Math.max(1, (Fl - 1) * d)),
          outState: !dense && (qkvOut === 'conv' || qkvOut === 'multconv') ? this.alloc(Math.max(1, (Fl - 1) * d)) : null,
          // Sparse FF gathers rows of W1ᵀ; dense and Top-k read all of W1 (a dense product).
          w1: interleave ? interleaved(get(`${b}.ffn.w1`), get(`${b}.ffn.w2`))
            : c.ffn === 'sparse' ? WT(d, { data: get(`${b}.ffn.w1`), cols: dff })
            : swiglu ? MV(d, { data: get(`${b}.ffn.w_gate`), cols: dff }, { data: get(`${b}.ffn.w_up`), cols: dff }) : MV(d, { data: get(`${b}.ffn.w1`), cols: dff }),
          b1,
          // Read whole (the plain dense baseline, SwiGLU: its zeros are rare): a dense product's
          // matrix; otherwise W2 [d_ff, d] for row gathers.
          w2: interleave ? { p: 0, v: new Float32Array(0) } // set below: the second row of each pair
            : this.w2Whole
            ? MV(dff, { data: swiglu ? get(`${b}.ffn.w_down`) : get(`${b}.ffn.w2`), cols: d })
            : W(swiglu ? get(`${b}.ffn.w_down`) : get(`${b}.ffn.w2`)),
          b2, ffLd: interleave ? 2 * d : d,
          c1, c2, cBias, screen: null,
          k: this.alloc(Hkv * maxContext * hd), v: this.alloc(Hkv * maxContext * hd),
          topk: c.ffn === 'topk' ? der.topk_per_layer[l] : 0,
          ffPrefetch: [], attnPrefetch: [], convBatch: [],
        };
        if (interleave) lw.w2 = { p: lw.w1.p + d * 4, v: lw.w1.v.subarray(d) };
        if (screenParts) {
          const { panels, colScale, margin, sc } = screenParts;
          lw.screen = { panels, colScale, c2t: W(sc.c2t), margin, groups: sc.groups, cols: sc.cols, qmax: sc.qmax };
        }
        const span = (...bufs: (Buf | null)[]): number[] => bufs.flatMap((x) => (x === null ? [] : [x.p, x.v.length * 4]));
        // What every token reads of the controller, in the order it reads it (a screen's c2t
        // only for the few neurons it recomputes).
        lw.ffPrefetch = span(lw.c1, lw.c2, lw.screen?.panels ?? null, lw.screen?.colScale ?? null, lw.cBias, lw.screen?.margin ?? null);
        if (lw.mult) {
          lw.attnPrefetch = span(lw.mult.Dt, lw.mult.E, lw.mult.beta, lw.convQ?.kernel ?? null, lw.convK?.kernel ?? null, lw.convV?.kernel ?? null);
          // Read during the FF, they must still be in cache when the next layer starts; the
          // 17B-class layer's 9.4 MB were not (its FF reads ~20 MB in between): without
          // them its two-thread block ran 3-11% faster in paired runs, the 800m one
          // (0.7 MB) the same or slower.
          let bytes = 0;
          for (let i = 1; i < lw.attnPrefetch.length; i += 2) bytes += lw.attnPrefetch[i];
          if (bytes > ATTN_PREFETCH_MAX) lw.attnPrefetch = [];
        }
        this.layers.push(lw);
      }
      this.outNormW = W(get('out_norm.weight'));
      this.outNormB = Wopt(opt('out_norm.bias'));
      if (c.output === 'sparse') {
        this.outW = null;
        this.outFactored = factored('output', c.loss_modules, c.vocab_size / c.loss_modules);
      } else {
        this.outFactored = null;
        this.outW = c.tied_output ? null : MV(d, { data: get('output.weight'), cols: c.vocab_size });
      }
      this.weightBytesTotal = this.weightBytes;

      // ---- activations
      this.x = this.alloc(d); this.xb = this.alloc(d); this.y = this.alloc(d); this.tmp = this.alloc(d);
      this.qkv = this.alloc((H + 2 * Hkv) * hd);
      this.att = this.alloc(H * hd);
      this.scores = this.alloc(H * maxContext); // attention's scratch: every head's scores
      this.hbuf = this.alloc(2 * dff);
      this.coef = this.alloc(dff);
      const pi = this.kernels.heap.alloc(dff * 4, 64); this.allocated.push({ p: pi, bytes: dff * 4 });
      this.idx = { p: pi, v: this.kernels.heap.i32(pi, dff) };
      this.low = this.alloc(c.sparse_lowrank);
      this.ctrl = this.alloc(dff);
      // The screen's per-token scratch: u's int16 pairs, its scale and norms (float64 [4]), the integer products.
      const screenCols = Math.max(1, ...this.layers.map((lw) => lw.screen?.cols ?? 1));
      this.uq = this.alloc(Math.max(1, 4 * Math.ceil(c.sparse_lowrank / 8)));
      this.uInfo = this.alloc(8);
      this.acc = this.alloc(screenCols);
      const maxS = Math.max(c.attn === 'sparse' ? S : 1, c.output === 'sparse' ? c.loss_modules : 1);
      this.xs = this.alloc(maxS * d);
      this.m = this.alloc(d);
      this.colQK = this.alloc(c.attn === 'sparse' ? Fl * 3 * d : 1);
      this.colV = this.alloc(c.attn === 'sparse' ? Fl * d : 1);
      this.logits = this.alloc(c.vocab_size);
      for (const lw of this.layers) {
        if (!lw.convQ || !lw.convK || !lw.convV || this.kernels.threads === 1 || !this.smallGemmByBlas(M)) continue;
        // [S, F_l·F_w·M] · [F_l·F_w·M, M] into qkv's q, k and v parts (see convApply).
        const Kqk = Fl * 3 * M, Kv = Fl * M;
        lw.convBatch = [
          0, 0, S, M, Kqk, this.colQK.p, Kqk, lw.convQ.kernel.p, M, this.qkv.p, M, 0,
          0, 0, S, M, Kqk, this.colQK.p, Kqk, lw.convK.kernel.p, M, this.qkv.p + d * 4, M, 0,
          0, 0, S, M, Kv, this.colV.p, Kv, lw.convV.kernel.p, M, this.qkv.p + 2 * d * 4, M, 0,
        ];
      }
      this.P = Math.max(1, Math.min(maxContext, opts.prefillRows ?? PREFILL_ROWS));
      this.X2 = this.alloc(this.P * d); this.XB2 = this.alloc(this.P * d); this.Y2 = this.alloc(this.P * d);
      this.QKV2 = this.alloc(c.attn === 'dense' ? this.P * (H + 2 * Hkv) * hd : 1);
      this.ATT2 = this.alloc(c.attn === 'dense' ? this.P * H * hd : 1);
      this.HB2 = this.alloc(c.ffn === 'dense' ? this.P * 2 * dff : 1);
      this.invFreq = Float64Array.from({ length: hd / 2 }, (_, i) => Math.pow(c.rope_base, (-2 * i) / hd));
      this.ropeTable = this.alloc(2 * hd); // hd float64s
      this.ropeCosSin = new Float64Array(this.kernels.heap.memories[memoryOf(this.ropeTable.p)].buffer, offsetOf(this.ropeTable.p), hd);
      this.reset(); // heap blocks may hold an earlier user's bytes: the convolution states must start at zero
      // Written once now, so that no token pays for the first write to a page of its KV row.
      for (const lw of this.layers) { lw.k.v.fill(0); lw.v.v.fill(0); }
      this.touchPages();
      this.topkHeap = new Int32Array(c.ffn === 'topk' ? Math.max(...der.topk_per_layer) : 1);
    } catch (e) {
      this.dispose();
      if (e instanceof RangeError && /memory|grow/i.test(e.message)) {
        throw new SparselmError(`decode: the model does not fit in memory (${(this.weightBytes / 2 ** 30).toFixed(2)} GiB of weights placed before failing; one tensor may hold at most ~3.7 GiB of float32): ${e.message}`);
      }
      throw e;
    }
  }

  /**
   * Reads one float in every 4 KiB page of every block placed above. On the shared VM
   * this project is measured on, the first read of a page after it was written is slow
   * (host-side; `node dev/gemv/10_cold_pages.mjs`: gathered 36 KB rows at 0.5-8 GB/s
   * until each page has been read once, 16-21 GB/s after). Dense decoding reads every
   * page in its first token, but Sparse FF reaches a rarely chosen neuron's rows for the
   * first time many tokens later and paid it then; here it is paid once, at load
   * (~80 ms for the 4.8 GB 17B-class block).
   */
  private touchPages(): void {
    const heap = this.kernels.heap, step = 1024; // floats per 4 KiB page
    let sum = 0;
    for (const { p, bytes } of this.allocated) {
      const v = heap.f32(p, Math.floor(bytes / 4));
      for (let i = 0; i < v.length; i += step) sum += v[i];
      if (v.length > 0) sum += v[v.length - 1]; // blocks start anywhere in a page: the last page may begin after the last step
    }
    this.touchSum = sum;
  }

  /** Tokens in the cache (the position of the next token). */
  get position(): number { return this.pos; }

  /** Forget the sequence: position 0, convolution states zeroed (the KV cache is overwritten as it refills). */
  reset(): void {
    this.pos = 0;
    for (const lw of this.layers) {
      lw.qkvState?.v.fill(0);
      lw.outState?.v.fill(0);
    }
  }

  /** Frees the heap blocks (and the kernels when the engine created them). The engine is unusable afterwards. */
  dispose(): void {
    for (const { p } of this.allocated) this.kernels?.heap.free(p);
    this.allocated = [];
    if (this.ownsKernels) this.kernels?.dispose();
  }

  /** Runs `tokens` through the model from the current position; returns the logits after the last one (a heap view). */
  prefill(tokens: readonly number[]): Float32Array {
    if (tokens.length === 0) throw new SparselmError('decode: prefill needs at least one token');
    this.checkRoom(tokens.length);
    for (const t of tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= this.config.vocab_size) throw new SparselmError(`decode: token ${t} is outside the vocabulary 0..${this.config.vocab_size - 1}`);
    }
    if (tokens.length === 1) return this.step(tokens[0]);
    this.kernels.checkPlacement();
    for (let o = 0; o < tokens.length; o += this.P) this.prefillChunk(tokens.slice(o, o + this.P), o + this.P >= tokens.length);
    return this.logits.v;
  }

  /**
   * T ≤ P tokens at once: the dense products (dense attention's QKV and output
   * projections, dense FF's W1 and W2) as gemm over the T rows, so each weight is
   * read once per chunk instead of once per token; attention, the sparse layers
   * and Sparse QKV's stateful convolutions run row by row through the step path.
   * Logits only for the chunk's last row, and only when `logits`.
   */
  private prefillChunk(tokens: readonly number[], logits: boolean): void {
    const c = this.config, d = this.d, T = tokens.length, pos0 = this.pos, H = this.H, Hkv = this.Hkv, hd = this.hd, dff = c.d_ff;
    const X = this.X2.v, XB = this.XB2.v, Y = this.Y2.v;
    const row = (b: Buf, r: number, w: number): Buf => ({ p: b.p + r * w * 4, v: b.v.subarray(r * w, (r + 1) * w) });
    for (let r = 0; r < T; r++) {
      this.embed(tokens[r], X.subarray(r * d, (r + 1) * d));
      if (this.posEmb) { const pe = this.posEmb.v, o = (pos0 + r) * d; for (let i = 0; i < d; i++) X[r * d + i] += pe[o + i]; }
    }
    // Runs a single-row step-path layer function on row r of XB into row r of Y.
    const perRow = (r: number, f: () => void) => {
      this.pos = pos0 + r;
      this.xb.v.set(XB.subarray(r * d, (r + 1) * d));
      f();
      Y.set(this.y.v, r * d);
    };
    for (const lw of this.layers) {
      for (let r = 0; r < T; r++) this.norm(this.X2.p + r * d * 4, lw.attnNormW, lw.attnNormB, this.XB2.p + r * d * 4);
      if (c.attn === 'dense') {
        const rows = (H + 2 * Hkv) * hd;
        this.matmat(T, lw.wqkv as Buf, d, rows, this.XB2.p, this.QKV2.p);
        for (let r = 0; r < T; r++) {
          this.pos = pos0 + r;
          const q = row(this.QKV2, r, rows);
          if (c.positions === 'rope') this.rope(q.p, H + Hkv); // q's heads, then k's
          this.attend(lw, q, H * hd, (H + Hkv) * hd, q.p, row(this.ATT2, r, H * hd));
        }
        this.matmat(T, lw.wo as Buf, H * hd, d, this.ATT2.p, this.Y2.p);
      } else {
        for (let r = 0; r < T; r++) perRow(r, () => this.sparseAttention(lw));
      }
      for (let i = 0; i < T * d; i++) X[i] += Y[i];
      for (let r = 0; r < T; r++) this.norm(this.X2.p + r * d * 4, lw.ffnNormW, lw.ffnNormB, this.XB2.p + r * d * 4);
      if (c.ffn === 'dense') {
        const rows = c.activation === 'swiglu' ? 2 * dff : dff;
        this.matmat(T, lw.w1, d, rows, this.XB2.p, this.HB2.p);
        const HB = this.HB2.v;
        for (let r = 0; r < T; r++) {
          if (c.activation === 'swiglu') this.kernels.swiglu(this.HB2.p + r * rows * 4, this.HB2.p + r * rows * 4, dff); // in place
          else this.activate(lw, HB.subarray(r * rows, (r + 1) * rows), HB.subarray(r * rows, r * rows + dff), dff);
        }
        // W2 is laid out as the dense products are (w2Whole), else [d_ff, d]. H rows have stride `rows`.
        if (this.w2Whole) this.matmat(T, lw.w2, dff, d, this.HB2.p, this.Y2.p, rows);
        else this.kernels.gemm(false, false, T, d, dff, this.HB2.p, rows, lw.w2.p, d, this.Y2.p, d, false);
        if (lw.b2) { const b2 = lw.b2.v; for (let r = 0; r < T; r++) for (let i = 0; i < d; i++) Y[r * d + i] += b2[i]; }
      } else {
        for (let r = 0; r < T; r++) perRow(r, () => (c.ffn === 'sparse' ? this.sparseFF(lw) : this.topkFF(lw)));
      }
      for (let i = 0; i < T * d; i++) X[i] += Y[i];
    }
    this.pos = pos0 + T;
    if (!logits) return;
    this.x.v.set(X.subarray((T - 1) * d, T * d));
    this.outputLayer();
  }

  /** One token through all layers using the caches; returns the next token's logits [V] (a heap view, valid until the next call). */
  step(token: number): Float32Array {
    const c = this.config;
    if (!Number.isInteger(token) || token < 0 || token >= c.vocab_size) throw new SparselmError(`decode: token ${token} is outside the vocabulary 0..${c.vocab_size - 1}`);
    this.checkRoom(1);
    const t0 = performance.now();
    // Where the threads run now (a VM's vCPUs can move between dies): at most one
    // 10-40 us look per 100 ms, counted in the token's time.
    this.kernels.checkPlacement();
    this.weightBytes = 0;
    this.recomputed = 0;
    const d = this.d;
    const x = this.x.v;
    this.embed(token, x);
    if (this.posEmb) {
      const pe = this.posEmb.v, o = this.pos * d;
      for (let i = 0; i < d; i++) x[i] += pe[o + i];
    }
    this.weightBytes += d * 4;
    const tb = performance.now();
    for (let l = 0; l < this.layers.length; l++) {
      const lw = this.layers[l];
      // With a second thread: it reads the weights this token needs next, that the
      // layer's data does not choose (the Sparse FF controller while attention runs; the
      // next layer's Sparse QKV while this FF runs), so they come from cache, not DRAM.
      if (lw.ffPrefetch.length > 0) this.kernels.prefetch(lw.ffPrefetch);
      this.norm(this.x.p, lw.attnNormW, lw.attnNormB, this.xb.p);
      if (c.attn === 'dense') this.denseAttention(lw); else this.sparseAttention(lw);
      this.kernels.addRows(this.x.p, this.y.p, 1, d);
      const next = this.layers[(l + 1) % this.layers.length];
      if (next.attnPrefetch.length > 0) this.kernels.prefetch(next.attnPrefetch);
      this.norm(this.x.p, lw.ffnNormW, lw.ffnNormB, this.xb.p);
      if (c.ffn === 'sparse') this.sparseFF(lw);
      else if (c.ffn === 'topk') this.topkFF(lw);
      else this.denseFF(lw);
      this.kernels.addRows(this.x.p, this.y.p, 1, d);
    }
    const te = performance.now();
    const blockBytes = this.weightBytes - d * 4;
    this.outputLayer();
    this.pos++;
    const t1 = performance.now();
    this.last.weightBytes = this.weightBytes;
    this.last.blockWeightBytes = blockBytes;
    this.last.blocksMs = te - tb;
    this.last.totalMs = t1 - t0;
    this.last.recomputed = this.recomputed;
    return this.logits.v;
  }

  // ------------------------------------------------------------ pieces

  /** out[0, d) = the embedding of `token` (a row of tok_emb, gathered from its panel when tokEmbPanels). */
  private embed(token: number, out: Float32Array): void {
    const d = this.d, e = this.tokEmb.v;
    if (this.tokEmbPanels) panelRow(e, d, token, out);
    else out.set(e.subarray(token * d, (token + 1) * d));
  }

  /** logits = Output(Norm(x; out_norm)). */
  private outputLayer(): void {
    const V = this.config.vocab_size;
    this.norm(this.x.p, this.outNormW, this.outNormB, this.xb.p);
    if (this.outFactored) {
      this.factoredDense(this.outFactored, this.xb, this.logits);
    } else {
      if (this.outW) this.matvec(this.outW, this.d, V, this.xb, this.logits);
      else if (this.tokEmbPanels) this.kernels.gemvPanels(this.tokEmb.p, V, this.d, this.xb.p, this.logits.p); // tied, in panels
      else this.kernels.gemv(this.tokEmb.p, V, this.d, this.xb.p, this.logits.p); // tied: the embedding's rows
      this.weightBytes += V * this.d * 4;
    }
  }

  private checkRoom(n: number): void {
    if (this.pos + n > this.maxContext) {
      throw new SparselmError(`decode: ${this.pos + n} positions exceed the engine's context of ${this.maxContext}`);
    }
  }

  private alloc(n: number): Buf {
    // Large blocks start on a 4 KiB page: a gathered row of d = 1024 floats is then one
    // page, not two (this VM pays per page touched; docs/decode.md).
    const p = this.kernels.heap.alloc(Math.max(1, n) * 4, n * 4 >= 1 << 16 ? 4096 : 64);
    this.allocated.push({ p, bytes: Math.max(1, n) * 4 });
    return { p, v: this.kernels.heap.f32(p, n) };
  }

  /** y[dOut] = M·x[dIn] for a dense-product matrix (in `denseLayout`). */
  private matvec(w: Buf, dIn: number, dOut: number, x: Buf, y: Buf): void {
    if (this.denseLayout === 'panels') this.kernels.gemvPanels(w.p, dOut, dIn, x.p, y.p);
    else if (this.denseLayout === 'input-major') this.kernels.gemvT(w.p, dIn, dOut, x.p, y.p, false);
    else this.kernels.gemv(w.p, dOut, dIn, x.p, y.p);
  }

  /** Y[T, dOut] = X[T, dIn]·Mᵀ for a dense-product matrix (in `denseLayout`); X's rows ldx floats apart, Y's contiguous. */
  private matmat(T: number, w: Buf, dIn: number, dOut: number, pX: number, pY: number, ldx = dIn): void {
    if (this.denseLayout === 'panels') this.kernels.gemmPanels(w.p, dOut, dIn, T, pX, ldx, pY, dOut);
    else if (this.denseLayout === 'input-major') this.kernels.gemm(false, false, T, dOut, dIn, pX, ldx, w.p, dOut, pY, dOut, false);
    else this.kernels.gemm(false, true, T, dOut, dIn, pX, ldx, w.p, dIn, pY, dOut, false);
  }

  /** out = Norm(x) (layernorm or rmsnorm) on d floats at heap pointers; float64 accumulation (kernels.norm). */
  private norm(pX: number, w: Buf, b: Buf | null, pOut: number): void {
    this.kernels.norm(pX, w.p, b === null ? null : b.p, pOut, this.d, this.config.norm_eps, this.config.norm !== 'layernorm');
    this.weightBytes += this.d * 4 * (b ? 2 : 1);
  }

  /** RoPE (llama.cpp NORM form) in place on n heads of hd at heap pointer pV, at the current position. */
  private rope(pV: number, n: number): void {
    if (this.ropePos !== this.pos) {
      const half = this.hd / 2, f = this.invFreq, t = this.ropeCosSin;
      for (let i = 0; i < half; i++) { const a = this.pos * f[i]; t[i] = Math.cos(a); t[half + i] = Math.sin(a); }
      this.ropePos = this.pos;
    }
    this.kernels.rope(pV, n, this.hd, this.ropeTable.p);
  }

  /**
   * Causal attention of the current query (qkv at offset 0, H heads) over the
   * cache after writing the current key and value (at offsets kOff, vOff,
   * Hkv heads) into it; result merged in `out`. All heads in one kernel call
   * (kernels.attention: scores, softmax and the weighted sum of values); per head it
   * was a gemv, JS softmax loops and an axpyRows, ~4 µs of call overhead per head.
   */
  private attend(lw: LayerW, q: Buf, kOff: number, vOff: number, pKV: number, out: Buf): void {
    const hd = this.hd, H = this.H, Hkv = this.Hkv, pos = this.pos, T = pos + 1;
    // Row pos of the cache: every kv head's key (value), Hkv·hd floats.
    const kv = Hkv * hd;
    this.kernels.copyRows(lw.k.p + pos * kv * 4, kv, pKV + kOff * 4, kv, 1, kv);
    this.kernels.copyRows(lw.v.p + pos * kv * 4, kv, pKV + vOff * 4, kv, 1, kv);
    this.kernels.attention(q.p, lw.k.p, lw.v.p, out.p, this.scores.p, H, H / Hkv, T, hd, hd, kv, 1 / Math.sqrt(hd));
  }

  private denseAttention(lw: LayerW): void {
    const hd = this.hd, H = this.H, Hkv = this.Hkv, d = this.d;
    const rows = (H + 2 * Hkv) * hd;
    this.matvec(lw.wqkv as Buf, d, rows, this.xb, this.qkv);
    this.weightBytes += rows * d * 4;
    if (this.config.positions === 'rope') this.rope(this.qkv.p, H + Hkv); // q's heads, then k's
    this.attend(lw, this.qkv, H * hd, (H + Hkv) * hd, this.qkv.p, this.att);
    this.matvec(lw.wo as Buf, H * hd, d, this.att, this.y);
    this.weightBytes += d * H * hd * 4;
  }

  /**
   * C[S, N] = A[S, K] · B[K, N] (contiguous), S a few rows. Measured (800m shapes, 1
   * thread): OpenBLAS sgemm (AVX-512 FMA) wins on the narrow blocks' products
   * (16×64×1024: 0.03 ms vs 0.10 for gemmSmallM, 0.15 for the wasm gemm); on a wide
   * B (the sparse loss layer's 4×8000×1024, E 32 MB) gemmSmallM streams B once
   * without packing: 3.5 ms vs 5.1 (OpenBLAS) and 5.9 (wasm gemm).
   */
  private smallGemm(pA: number, pB: number, pC: number, S: number, N: number, K: number): void {
    if (this.smallGemmByBlas(N)) this.kernels.gemm(false, false, S, N, K, pA, K, pB, N, pC, N, false);
    else this.kernels.gemmSmallM(pA, pB, pC, S, N, K, this.smallGemmPanels(N));
  }

  /** smallGemm sends a product of N columns to OpenBLAS (its B row-major), else to gemmSmallM. */
  private smallGemmByBlas(N: number): boolean {
    return this.kernels.blas && N < SMALL_GEMM_MIN_N;
  }

  /**
   * A gemmSmallM product on two or more threads takes its B in column panels (stored so at
   * load): the threads then split B into contiguous runs rather than taking every other
   * 64 bytes of each row. Measured cold, 2 threads (2026-11-29): the sparse loss layer's
   * [4, 1024]·[1024, 8000] 0.69x the time, Sparse QKV's [16, 576]·[576, 64] 0.77x; on one
   * thread no faster (0.95-1.10x), so one thread keeps B row-major. Paired
   * (dev/ab-decode.mjs, 20 rounds): the 800m model with the sparse loss layer, 2 threads,
   * 0.896x per token; without OpenBLAS 0.887x per token, 0.965x per block.
   */
  private smallGemmPanels(N: number): boolean {
    return !this.smallGemmByBlas(N) && this.kernels.threads > 1 && N % 16 === 0;
  }

  /** out[s·M+t] = Σ_i x_i·D[i,s]·E[i,t] + beta: rows x⊙D[:,s] [S, d] times E [d, M] in one gemm. */
  private factoredDense(f: Factored, x: Buf, out: Buf): void {
    const d = this.d, S = f.S, M = f.M;
    this.kernels.mulRows(x.p, f.Dt.p, this.xs.p, S, d);
    this.smallGemm(this.xs.p, f.E.p, out.p, S, M, d);
    this.kernels.addRows(out.p, f.beta.p, 1, S * M);
    this.weightBytes += (d * S + d * M + S * M) * 4;
  }

  /**
   * Build the im2col rows of a causal conv over (length, modules) for the current
   * token: col[s, (i·Fw + j)·M + ci] = row_i[(s + j - half)·M + ci] (zero outside
   * the modules), row_i = state[i] for i < F_l-1 and `cur` for i = F_l-1.
   */
  private im2col(state: Buf, cur: Buf, Fw: number, col: Buf): void {
    const S = this.config.qkv_modules;
    this.kernels.im2col(state.p, cur.p, col.p, S, this.d / S, this.Fl, Fw, this.d);
  }

  /** [S, M] at heap pointer outP = col [S, F_l·Fw·M] · kernel [F_l·Fw·M, M] + bias. */
  private convApply(cv: Conv, col: Buf, outP: number): void {
    const c = this.config, S = c.qkv_modules, M = this.d / S, K = this.Fl * cv.Fw * M;
    this.smallGemm(col.p, cv.kernel.p, outP, S, M, K);
    this.convBias(cv, outP, S, M);
  }

  /** The convolution's bias on its [S, M] output (after its product); counts the weights read. */
  private convBias(cv: Conv, outP: number, S: number, M: number): void {
    this.kernels.addRows(outP, cv.bias.p, S, M);
    this.weightBytes += (this.Fl * cv.Fw * M * M + M) * 4;
  }

  /** Drop the oldest state row, append `cur`. */
  private pushState(state: Buf, cur: Buf): void {
    const d = this.d, Fl = this.Fl;
    if (Fl <= 1) return;
    state.v.copyWithin(0, d, (Fl - 1) * d);
    this.kernels.copyRows(state.p + (Fl - 2) * d * 4, 0, cur.p, 0, 1, d);
  }

  private sparseAttention(lw: LayerW): void {
    const d = this.d, H = this.H;
    const m = this.m;
    this.factoredDense(lw.mult as Factored, this.xb, m);
    const state = lw.qkvState as Buf;
    this.im2col(state, m, 3, this.colQK);
    this.im2col(state, m, 1, this.colV);
    const S = this.config.qkv_modules, M = d / S;
    if (lw.convBatch.length > 0) {
      // The three products at once, through OpenBLAS with the kernels row-major (each too
      // small to split between threads, together worth sharing).
      this.kernels.gemmBatch(lw.convBatch);
      this.convBias(lw.convQ as Conv, this.qkv.p, S, M);
      this.convBias(lw.convK as Conv, this.qkv.p + d * 4, S, M);
      this.convBias(lw.convV as Conv, this.qkv.p + 2 * d * 4, S, M);
    } else {
      this.convApply(lw.convQ as Conv, this.colQK, this.qkv.p);
      this.convApply(lw.convK as Conv, this.colQK, this.qkv.p + d * 4);
      this.convApply(lw.convV as Conv, this.colV, this.qkv.p + 2 * d * 4);
    }
    this.pushState(state, m);
    if (this.config.positions === 'rope') this.rope(this.qkv.p, 2 * H); // q's heads, then k's (at d = H·hd)
    this.attend(lw, this.qkv, d, 2 * d, this.qkv.p, this.att);
    // output layer: none / mult / conv / multconv
    let cur: Buf = this.att;
    if (lw.outMult) {
      this.factoredDense(lw.outMult, cur, this.tmp);
      cur = this.tmp;
    }
    if (lw.outConv) {
      const os = lw.outState as Buf;
      this.im2col(os, cur, 3, this.colQK);
      this.pushState(os, cur);
      this.convApply(lw.outConv, this.colQK, this.y.p);
    } else {
      this.kernels.copyRows(this.y.p, 0, cur.p, 0, 1, d);
    }
  }

  /**
   * y = b2 (or 0) + Σ_{i<n} coef[i]·W2[idx[i], :]. When every unit is active (n = d_ff:
   * GELU, whose zeros are rare) idx is 0..d_ff-1 and the sum is one dense
   * W2ᵀ·coef (gemvT: OpenBLAS sgemv when present, which streams faster than a gather).
   */
  private down(lw: LayerW, n: number): void {
    const d = this.d;
    if (lw.b2) this.y.v.set(lw.b2.v); else this.y.v.fill(0);
    if (n === this.config.d_ff && this.config.ffn === 'dense') this.kernels.gemvT(lw.w2.p, n, d, this.coef.p, this.y.p);
    else if (n > 0) this.kernels.axpyRows(lw.w2.p, d, this.idx.p, this.coef.p, n, this.y.p, lw.ffLd);
    this.weightBytes += n * d * 4 + (lw.b2 ? d * 4 : 0);
  }

  /** out[u] = act(h[u] + b1[u]) for u < dff, ReLU or GELU (SwiGLU: kernels.swiglu); dense FF only. */
  private activate(lw: LayerW, h: Float32Array, out: Float32Array, dff: number): void {
    const act = this.config.activation;
    const b1 = lw.b1?.v;
    if (b1) this.weightBytes += dff * 4;
    for (let u = 0; u < dff; u++) {
      const z = b1 ? h[u] + b1[u] : h[u];
      out[u] = act === 'gelu' ? 0.5 * z * (1 + erf(z * Math.SQRT1_2)) : z > 0 ? z : 0;
    }
  }

  /** Dense FF: h = act(W1ᵀ·x + b1) by gemv, then only the nonzero rows of W2 (ReLU's zeros are skipped: the Lazy Neuron saving). */
  private denseFF(lw: LayerW): void {
    const c = this.config, d = this.d, dff = c.d_ff;
    const swiglu = c.activation === 'swiglu';
    const rows = swiglu ? 2 * dff : dff;
    this.matvec(lw.w1, d, rows, this.xb, this.hbuf);
    this.weightBytes += rows * d * 4;
    const h = this.hbuf.v, idx = this.idx.v, coef = this.coef.v;
    if (swiglu) this.kernels.swiglu(this.hbuf.p, this.coef.p, dff);
    if (this.w2Whole) {
      // The plain dense baseline, or SwiGLU (exact zeros are rare): every unit, one product with W2ᵀ.
      if (!swiglu) this.activate(lw, h, coef, dff);
      this.matvec(lw.w2, dff, d, this.coef, this.y);
      this.weightBytes += dff * d * 4;
      if (lw.b2) { const y = this.y.v, b2 = lw.b2.v; for (let i = 0; i < d; i++) y[i] += b2[i]; this.weightBytes += d * 4; }
      return;
    }
    // ReLU or GELU with skipZeros: only the units that are not exactly zero read their W2 row.
    let n = 0;
    const b1 = lw.b1?.v;
    if (b1) this.weightBytes += dff * 4;
    const gelu = c.activation === 'gelu';
    for (let u = 0; u < dff; u++) {
      const z = b1 ? h[u] + b1[u] : h[u];
      const a = gelu ? 0.5 * z * (1 + erf(z * Math.SQRT1_2)) : z > 0 ? z : 0;
      if (a !== 0) { idx[n] = u; coef[n] = a; n++; }
    }
    this.down(lw, n);
  }

  /** Top-k FF: gemv over all of W1ᵀ, keep the k largest ReLU outputs (ties to the lower index), axpyRows over those rows of W2. */
  private topkFF(lw: LayerW): void {
    const c = this.config, d = this.d, dff = c.d_ff, k = lw.topk;
    this.matvec(lw.w1, d, dff, this.xb, this.hbuf);
    this.weightBytes += dff * d * 4;
    const h = this.hbuf.v, b1 = lw.b1?.v;
    if (b1) this.weightBytes += dff * 4;
    for (let u = 0; u < dff; u++) { const z = b1 ? h[u] + b1[u] : h[u]; h[u] = z > 0 ? z : 0; }
    // Min-heap of size k over (value, -index): its root is the weakest kept unit.
    const hp = this.topkHeap;
    for (let u = 0; u < k; u++) hp[u] = u;
    for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(hp, h, i, k);
    for (let u = k; u < dff; u++) {
      if (weaker(h, hp[0], u)) { hp[0] = u; siftDown(hp, h, 0, k); }
    }
    const idx = this.idx.v, coef = this.coef.v;
    let n = 0;
    for (let i = 0; i < k; i++) { const u = hp[i]; if (h[u] !== 0) { idx[n] = u; coef[n] = h[u]; n++; } }
    this.down(lw, n);
  }

  /**
   * Sparse FF: controller logits l = C2ᵀ·(C1ᵀ·x) + c (a gemv, then axpyRows over C2's r rows), argmax per
   * block of N (ties to the lower index), then only the chosen rows:
   * z = W1ᵀ[idx]·x (gemvRows), h = relu(z + b1) (× p(chosen) if
   * multiply_by_controller), y = b2 + Σ h·W2[idx] (axpyRows).
   */
  private sparseFF(lw: LayerW): void {
    const c = this.config, d = this.d, dff = c.d_ff, r = c.sparse_lowrank, N = c.sparse_block, nb = dff / N;
    this.kernels.gemvPanels((lw.c1 as Buf).p, r, d, this.xb.p, this.low.p);
    const l = this.ctrl.v, idx = this.idx.v, coef = this.coef.v;
    const mult = c.sparse_multiply_by_controller;
    const sc = lw.screen;
    if (sc) {
      // The screen (screen.ts): integer products over C2's int16 copy, then the exact
      // logits of only the neurons that quantization could have reordered.
      const k = this.kernels;
      k.screenQuantize(this.low.p, r, sc.qmax, this.uq.p, this.uInfo.p);
      k.pairDotI16(sc.panels.p, sc.groups, sc.cols, this.uq.p, this.acc.p);
      const n = k.screenArgmax(this.acc.p, sc.colScale.p, (lw.cBias as Buf).p, this.ctrl.p, this.idx.p, nb, N, sc.margin.p, this.uInfo.p, sc.c2t.p, r, this.low.p);
      this.recomputed += n;
      this.weightBytes += r * d * 4 + sc.panels.v.length * 4 + (2 * sc.cols + 6 * nb) * 4 + n * (r + 1) * 4;
    } else {
      // l = c + Σ_j low[j]·C2[j, :] = c + C2ᵀ·low: r long rows (a gemv over C2ᵀ would be d_ff rows of only r floats each).
      l.set((lw.cBias as Buf).v);
      this.kernels.gemvT((lw.c2 as Buf).p, r, dff, this.low.p, this.ctrl.p);
      this.weightBytes += (r * d + dff * r + dff) * 4;
      this.kernels.blockArgmax(this.ctrl.p, this.idx.p, nb, N);
    }
    if (mult) {
      for (let b = 0; b < nb; b++) {
        const o = b * N, mx = l[idx[b]];
        let sum = 0;
        for (let u = o; u < o + N; u++) sum += Math.exp(l[u] - mx);
        coef[b] = 1 / sum;
      }
    }
    const z = this.hbuf.v;
    this.kernels.gemvRows(lw.w1.p, d, this.idx.p, nb, this.xb.p, this.hbuf.p, lw.ffLd);
    this.weightBytes += nb * d * 4;
    const b1 = lw.b1?.v;
    if (b1) this.weightBytes += nb * 4;
    // Compact to the neurons that are active after ReLU (the inactive ones read no W2 row).
    let n = 0;
    for (let b = 0; b < nb; b++) {
      const u = idx[b];
      const zz = b1 ? z[b] + b1[u] : z[b];
      if (zz > 0) { coef[n] = mult ? zz * coef[b] : zz; idx[n] = u; n++; }
    }
    this.down(lw, n);
  }
}
