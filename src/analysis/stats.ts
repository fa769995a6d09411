/**
 * Streaming statistics of FF activations, the Lazy Neuron paper's measures
 * and a few that tell its explanations apart. Independent of the model: each
 * accumulator takes activations as a flat row-major array of `tokens` rows of
 * `dff` entries (`add(acts, tokens, dff)`) and reports with `result()`.
 *
 * Invariants:
 * - Constant memory in the number of tokens: O(d_ff) per accumulator.
 * - Chunking does not matter: every quantity is updated token by token in
 *   token order, so feeding the same rows in 1, 2 or 5 chunks gives results
 *   that are identical bit for bit (tests check this).
 * - Exact: the per-token nonzero fraction only takes the d_ff+1 values
 *   c/d_ff, so a histogram with one bin per count c (d_ff+1 bins, fixed size)
 *   gives exact medians and percentiles, not approximations to a bin width
 *   as a 10,000-bin histogram over [0, 1] would (1e-4).
 *
 * Conventions (the paper leaves them open):
 * - "active" / "nonzero" means `a !== 0` (exactly nonzero; for ReLU-family
 *   layers a >= 0, so this is also evaluate()'s `a > 0`).
 * - Standard deviations are population ones (divide by n): the tokens seen
 *   are the whole population described.
 * - Percentiles interpolate linearly between order statistics (numpy's
 *   default): the p-quantile of sorted x_0..x_{n-1} is at rank h = p·(n-1).
 * - A token with no activation mass gives top-k shares of 1 (all of nothing
 *   is held by any set); two empty active sets have Jaccard similarity 1
 *   (they are equal).
 */

import { SparselmError } from '../tensor/errors.js';

export type Acts = Float32Array | Float64Array;

function fail(message: string): never {
  throw new SparselmError(`analysis: ${message}`);
}

function checkChunk(what: string, acts: ArrayLike<number>, tokens: number, width: number): void {
  if (!Number.isInteger(tokens) || tokens < 0) fail(`${what}: tokens must be a non-negative integer, got ${tokens}`);
  if (!Number.isInteger(width) || width < 1) fail(`${what}: width must be a positive integer, got ${width}`);
  if (acts.length !== tokens * width) fail(`${what}: ${acts.length} values are not ${tokens} tokens x ${width}`);
}

/** Welford's running mean and (population) variance, with min and max. */
export class Welford {
  n = 0;
  mean = 0;
  private m2 = 0;
  min = Infinity;
  max = -Infinity;

  add(x: number): void {
    this.n++;
    const d = x - this.mean;
    this.mean += d / this.n;
    this.m2 += d * (x - this.mean);
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
  }

  get std(): number {
    return this.n === 0 ? 0 : Math.sqrt(this.m2 / this.n);
  }
}

/** The p-quantile (0 <= p <= 1) of the multiset with `counts[c]` copies of value(c), c ascending. */
export function histogramQuantile(counts: ArrayLike<number>, total: number, p: number, value: (c: number) => number): number {
  if (total === 0) return 0;
  // The order statistic of 0-based rank r: the first c whose cumulative count exceeds r.
  const at = (r: number): number => {
    let seen = 0;
    for (let c = 0; c < counts.length; c++) {
      seen += counts[c];
      if (seen > r) return value(c);
    }
    return value(counts.length - 1);
  };
  const h = p * (total - 1);
  const lo = Math.floor(h);
  const vLo = at(lo);
  return h === lo ? vLo : vLo + (h - lo) * (at(lo + 1) - vLo);
}

export interface Distribution {
  mean: number;
  std: number;
  min: number;
  max: number;
  median: number;
  p5: number;
  p25: number;
  p75: number;
  p95: number;
}

export interface NonzeroResult {
  tokens: number;
  dff: number;
  /** Per-token fraction of entries that are exactly nonzero, distributed over tokens. */
  fraction: Distribution;
}

/**
 * The Lazy Neuron metric: per token, the fraction of the d_ff activations
 * that are nonzero; mean/std by Welford, quantiles exact from a histogram of
 * the per-token count (d_ff+1 bins).
 */
export class NonzeroFraction {
  private dff = 0;
  private counts = new Float64Array(0);
  private readonly w = new Welford();

  add(acts: Acts, tokens: number, dff: number): void {
    checkChunk('nonzero fraction', acts, tokens, dff);
    if (this.dff === 0) { this.dff = dff; this.counts = new Float64Array(dff + 1); }
    if (dff !== this.dff) fail(`nonzero fraction: width ${dff} differs from the first chunk's ${this.dff}`);
    for (let t = 0; t < tokens; t++) {
      let c = 0;
      for (let j = t * dff, end = j + dff; j < end; j++) if (acts[j] !== 0) c++;
      this.counts[c]++;
      this.w.add(c / dff);
    }
  }

  result(): NonzeroResult {
    const n = this.w.n;
    const dff = this.dff;
    const q = (p: number) => histogramQuantile(this.counts, n, p, (c) => c / dff);
    return {
      tokens: n,
      dff,
      fraction: {
        mean: this.w.mean,
        std: this.w.std,
        min: n === 0 ? 0 : this.w.min,
        max: n === 0 ? 0 : this.w.max,
        median: q(0.5),
        p5: q(0.05),
        p25: q(0.25),
        p75: q(0.75),
        p95: q(0.95),
      },
    };
  }
}

export const NEAR_ZERO_THRESHOLDS = [1e-3, 1e-2, 1e-1] as const;

export interface NearZeroResult {
  /** Mean over tokens of the fraction of entries with |a| <= threshold (exact zeros included). */
  thresholds: { threshold: number; fraction: number }[];
}

/** Near-zero fractions |a| <= t: what sparsity a threshold would give a GELU/SwiGLU layer. */
export class NearZeroFraction {
  private readonly sums: Float64Array;
  private tokens = 0;

  constructor(readonly thresholds: readonly number[] = NEAR_ZERO_THRESHOLDS) {
    this.sums = new Float64Array(thresholds.length);
  }

  add(acts: Acts, tokens: number, dff: number): void {
    checkChunk('near-zero fraction', acts, tokens, dff);
    const th = this.thresholds;
    for (let t = 0; t < tokens; t++) {
      for (let i = 0; i < th.length; i++) {
        let c = 0;
        for (let j = t * dff, end = j + dff; j < end; j++) if (Math.abs(acts[j]) <= th[i]) c++;
        this.sums[i] += c / dff;
      }
      this.tokens++;
    }
  }

  result(): NearZeroResult {
    return { thresholds: this.thresholds.map((threshold, i) => ({ threshold, fraction: this.tokens === 0 ? 0 : this.sums[i] / this.tokens })) };
  }
}

export const FIRING_BINS = 20;

export interface FiringResult {
  tokens: number;
  dff: number;
  /** Neurons never nonzero on the tokens seen. */
  dead: number;
  /** Neurons nonzero on every token seen. */
  alwaysOn: number;
  /** Neurons by firing frequency f (fraction of tokens where nonzero): bin i holds i/bins <= f < (i+1)/bins, the last bin includes f = 1. */
  histogram: number[];
  /** Mean firing frequency over neurons: equals the mean nonzero fraction per token. */
  meanFrequency: number;
  /** Mean over tokens of (nonzero entries) / (neurons that are not dead); 0 when every neuron is dead. */
  liveSparsity: number;
}

/** Per-neuron firing counts: dead and always-on neurons, and how firing frequencies are spread. */
export class FiringFrequency {
  private dff = 0;
  private fired = new Float64Array(0);
  private tokens = 0;

  constructor(readonly bins = FIRING_BINS) {}

  add(acts: Acts, tokens: number, dff: number): void {
    checkChunk('firing frequency', acts, tokens, dff);
    if (this.dff === 0) { this.dff = dff; this.fired = new Float64Array(dff); }
    if (dff !== this.dff) fail(`firing frequency: width ${dff} differs from the first chunk's ${this.dff}`);
    for (let t = 0; t < tokens; t++) {
      const row = t * dff;
      for (let j = 0; j < dff; j++) if (acts[row + j] !== 0) this.fired[j]++;
    }
    this.tokens += tokens;
  }

  result(): FiringResult {
    const n = this.tokens;
    const histogram = new Array<number>(this.bins).fill(0);
    let dead = 0;
    let alwaysOn = 0;
    let total = 0;
    for (let j = 0; j < this.dff; j++) {
      const c = this.fired[j];
      total += c;
      if (c === 0) dead++;
      if (n > 0 && c === n) alwaysOn++;
      const f = n === 0 ? 0 : c / n;
      histogram[Math.min(this.bins - 1, Math.floor(f * this.bins))]++;
    }
    const live = this.dff - dead;
    return {
      tokens: n,
      dff: this.dff,
      dead,
      alwaysOn,
      histogram,
      meanFrequency: n === 0 || this.dff === 0 ? 0 : total / (n * this.dff),
      liveSparsity: n === 0 || live === 0 ? 0 : total / (n * live),
    };
  }
}

export const TOP_KS = [1, 4, 16, 64, 256] as const;

export interface TopMassResult {
  /** k capped at d_ff (duplicates after capping dropped); shares are means over tokens. */
  ks: { k: number; l1Share: number; l2Share: number }[];
}

/**
 * Share of a token's activation mass held by its k largest |a|:
 * Σ_top-k |a| / Σ |a| (L1) and Σ_top-k a² / Σ a² (L2²), averaged over tokens.
 * Only nonzero entries are sorted (few, for ReLU-family layers).
 */
export class TopMass {
  private ks: number[] = [];
  private l1 = new Float64Array(0);
  private l2 = new Float64Array(0);
  private scratch = new Float64Array(0);
  private dff = 0;
  private tokens = 0;

  constructor(readonly requested: readonly number[] = TOP_KS) {}

  add(acts: Acts, tokens: number, dff: number): void {
    checkChunk('top-k mass', acts, tokens, dff);
    if (this.dff === 0) {
      this.dff = dff;
      this.ks = [...new Set(this.requested.map((k) => Math.min(k, dff)))].sort((a, b) => a - b);
      this.l1 = new Float64Array(this.ks.length);
      this.l2 = new Float64Array(this.ks.length);
      this.scratch = new Float64Array(dff);
    }
    if (dff !== this.dff) fail(`top-k mass: width ${dff} differs from the first chunk's ${this.dff}`);
    const s = this.scratch;
    for (let t = 0; t < tokens; t++) {
      let m = 0;
      let sum1 = 0;
      let sum2 = 0;
      for (let j = t * dff, end = j + dff; j < end; j++) {
        const a = acts[j];
        if (a !== 0) {
          const x = Math.abs(a);
          s[m++] = x;
          sum1 += x;
          sum2 += x * x;
        }
      }
      const sorted = s.subarray(0, m).sort(); // ascending; the largest are at the end
      let top1 = 0;
      let top2 = 0;
      let taken = 0;
      for (let i = 0; i < this.ks.length; i++) {
        const k = Math.min(this.ks[i], m);
        for (; taken < k; taken++) {
          const x = sorted[m - 1 - taken];
          top1 += x;
          top2 += x * x;
        }
        this.l1[i] += sum1 === 0 ? 1 : top1 / sum1;
        this.l2[i] += sum2 === 0 ? 1 : top2 / sum2;
      }
      this.tokens++;
    }
  }

  result(): TopMassResult {
    const n = this.tokens;
    return { ks: this.ks.map((k, i) => ({ k, l1Share: n === 0 ? 0 : this.l1[i] / n, l2Share: n === 0 ? 0 : this.l2[i] / n })) };
  }
}

export interface OverlapResult {
  /** Consecutive token pairs (t, t+1) within a sequence that were compared. */
  pairs: number;
  /** Mean over pairs of |A_t ∩ A_t+1| / |A_t ∪ A_t+1| (1 when both sets are empty); null without pairs. */
  meanJaccard: number | null;
}

/**
 * Overlap of the active sets of consecutive tokens of one sequence. Rows are
 * tokens in [sequence, position] order with `seqLen` positions per sequence;
 * the count of rows seen says where each sequence starts, so chunks may cut
 * sequences anywhere. The last row's active set is carried between chunks.
 */
export class ActiveOverlap {
  private prev = new Uint8Array(0);
  private dff = 0;
  private position = 0;
  private sum = 0;
  private pairs = 0;

  constructor(readonly seqLen: number) {
    if (!Number.isInteger(seqLen) || seqLen < 1) fail(`active overlap: seqLen must be a positive integer, got ${seqLen}`);
  }

  add(acts: Acts, tokens: number, dff: number): void {
    checkChunk('active overlap', acts, tokens, dff);
    if (this.dff === 0) { this.dff = dff; this.prev = new Uint8Array(dff); }
    if (dff !== this.dff) fail(`active overlap: width ${dff} differs from the first chunk's ${this.dff}`);
    const prev = this.prev;
    for (let t = 0; t < tokens; t++) {
      const row = t * dff;
      if (this.position > 0) {
        let inter = 0;
        let union = 0;
        for (let j = 0; j < dff; j++) {
          const a = acts[row + j] !== 0 ? 1 : 0;
          inter += a & prev[j];
          union += a | prev[j];
        }
        this.sum += union === 0 ? 1 : inter / union;
        this.pairs++;
      }
      for (let j = 0; j < dff; j++) prev[j] = acts[row + j] !== 0 ? 1 : 0;
      this.position = (this.position + 1) % this.seqLen;
    }
  }

  result(): OverlapResult {
    return { pairs: this.pairs, meanJaccard: this.pairs === 0 ? null : this.sum / this.pairs };
  }
}

export interface ControllerResult {
  tokens: number;
  /** Blocks per layer (nb) and neurons per block (N). */
  blocks: number;
  blockSize: number;
  /** Over blocks: the entropy of the chosen-index distribution divided by log N (1: uniform use; 1 when N = 1). */
  meanNormEntropy: number;
  minNormEntropy: number;
  /** Over blocks: the largest share of tokens that chose a single neuron of the block. */
  meanMaxShare: number;
  maxMaxShare: number;
}

/**
 * How evenly a Sparse FF controller uses the N neurons of each block: counts
 * of argmax_j logits[b, j] per block b (ties to the lower index, as the
 * model's evaluation choice). Logits are rows of nb·N, block-major.
 */
export class ControllerUsage {
  private counts = new Float64Array(0);
  private nb = 0;
  private N = 0;
  private tokens = 0;

  add(logits: Acts, tokens: number, nb: number, N: number): void {
    checkChunk('controller usage', logits, tokens, nb * N);
    if (this.nb === 0) { this.nb = nb; this.N = N; this.counts = new Float64Array(nb * N); }
    if (nb !== this.nb || N !== this.N) fail(`controller usage: blocks ${nb}x${N} differ from the first chunk's ${this.nb}x${this.N}`);
    for (let t = 0; t < tokens; t++) {
      for (let b = 0; b < nb; b++) {
        const base = (t * nb + b) * N;
        let best = 0;
        for (let j = 1; j < N; j++) if (logits[base + j] > logits[base + best]) best = j;
        this.counts[b * N + best]++;
      }
    }
    this.tokens += tokens;
  }

  result(): ControllerResult {
    const { nb, N } = this;
    const n = this.tokens;
    let sumH = 0;
    let minH = Infinity;
    let sumMax = 0;
    let maxMax = 0;
    for (let b = 0; b < nb; b++) {
      let h = 0;
      let top = 0;
      for (let j = 0; j < N; j++) {
        const p = n === 0 ? 0 : this.counts[b * N + j] / n;
        if (p > 0) h -= p * Math.log(p);
        if (p > top) top = p;
      }
      const hn = N === 1 ? 1 : h / Math.log(N);
      sumH += hn;
      minH = Math.min(minH, hn);
      sumMax += top;
      maxMax = Math.max(maxMax, top);
    }
    return {
      tokens: n,
      blocks: nb,
      blockSize: N,
      meanNormEntropy: nb === 0 ? 0 : sumH / nb,
      minNormEntropy: nb === 0 ? 0 : minH,
      meanMaxShare: nb === 0 ? 0 : sumMax / nb,
      maxMaxShare: maxMax,
    };
  }
}
