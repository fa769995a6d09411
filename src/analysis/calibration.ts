/**
 * Calibration of next-token predictions: the Lazy Neuron paper's calibration
 * experiment adapted to language models. For every target position the
 * prediction is argmax softmax(logits) (ties: the lowest id), its confidence
 * the max softmax probability, and it is correct when it equals the target.
 *
 * Expected calibration error over n predictions split into bins b:
 *   ECE = Σ_b (n_b / n) · |acc_b − conf_b|
 * with acc_b the fraction correct and conf_b the mean confidence in bin b.
 * Two binnings, both with CALIBRATION_BINS = 15 bins by default:
 *   - equal width: bin b holds b/B <= c < (b+1)/B (c = 1 in the last bin);
 *     empty bins contribute nothing and are reported with null means;
 *   - equal mass (adaptive): predictions sorted by confidence (ties in the
 *     order they were added), bin b holds sorted ranks
 *     [floor(b·n/B), floor((b+1)·n/B)), so bin sizes differ by at most one.
 *     Equal ties straddling a boundary are split between two bins.
 *
 * Streaming: equal-mass bin edges depend on every confidence, so the
 * accumulator stores each (confidence: float64, correct: uint8) pair: 9 bytes
 * a token, preallocated for at most `capacity` tokens. The caller bounds it
 * by --tokens (the driver analyses at most floor(tokens / T) · T positions),
 * e.g. 590 KB for the default 65,536 tokens. This is exact, unlike a fixed
 * fine histogram, whose equal-mass edges would be rounded to its grid.
 *
 * `calibrateModel` runs the model in evaluation mode over the first whole
 * sequences of a text stream (as analyzeModel does) and, optionally, first
 * replaces a fraction of the INPUT tokens (never the targets) with uniformly
 * random ids: position p (global index sequence · T + t) is replaced when
 * u(seed, p, stream 0) < fraction, by floor(u(seed, p, stream 1) · V). The
 * number replaced is Binomial(n, fraction), not exactly round(fraction · n);
 * a replacement may draw the original id (probability 1/V), so `changed` <=
 * `replaced`. Counter-based: independent of the batch size.
 */

import { noGrad } from '../autograd/node.js';
import { validationBatches } from '../data/packing.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { ModelConfig } from '../models/config.js';
import type { Params } from '../models/layers.js';
import { forward } from '../models/transformer.js';
import { tensor } from '../tensor/create.js';
import { SparselmError } from '../tensor/errors.js';
import { uniform01 } from '../tensor/random.js';

export const CALIBRATION_BINS = 15;

/** One bin of a reliability diagram; `confidence` and `accuracy` are null when the bin is empty. */
export interface ReliabilityBin {
  /** Confidence range of the bin: fixed edges (equal width) or the smallest and largest confidence in it (equal mass). */
  lo: number;
  hi: number;
  count: number;
  /** Mean confidence of the predictions in the bin. */
  confidence: number | null;
  /** Fraction of them that are correct. */
  accuracy: number | null;
}

export interface Binned {
  ece: number;
  bins: ReliabilityBin[];
}

function binStats(lo: number, hi: number, conf: ArrayLike<number>, correct: ArrayLike<number>, idx: ArrayLike<number>, from: number, to: number): ReliabilityBin {
  let c = 0;
  let a = 0;
  for (let i = from; i < to; i++) { c += conf[idx[i]]; a += correct[idx[i]]; }
  const n = to - from;
  return { lo, hi, count: n, confidence: n === 0 ? null : c / n, accuracy: n === 0 ? null : a / n };
}

function eceOf(bins: ReliabilityBin[], n: number): number {
  let e = 0;
  for (const b of bins) if (b.count > 0) e += (b.count / n) * Math.abs((b.accuracy ?? 0) - (b.confidence ?? 0));
  return e;
}

function check(conf: ArrayLike<number>, correct: ArrayLike<number>, bins: number): void {
  if (conf.length !== correct.length) throw new SparselmError(`calibration: ${conf.length} confidences but ${correct.length} correctness flags`);
  if (!Number.isInteger(bins) || bins < 1) throw new SparselmError(`calibration: bins must be a positive integer, got ${bins}`);
  for (let i = 0; i < conf.length; i++) {
    if (!(conf[i] >= 0 && conf[i] <= 1)) throw new SparselmError(`calibration: confidence ${conf[i]} at ${i} is not in [0, 1]`);
  }
}

/** ECE and reliability diagram with `bins` equal-width confidence bins. ECE of no predictions is 0. */
export function equalWidthBins(conf: ArrayLike<number>, correct: ArrayLike<number>, bins = CALIBRATION_BINS): Binned {
  check(conf, correct, bins);
  const n = conf.length;
  const binOf = (c: number) => Math.min(bins - 1, Math.floor(c * bins));
  // Counting sort of indices by bin: O(n + bins).
  const start = new Int32Array(bins + 1);
  for (let i = 0; i < n; i++) start[binOf(conf[i]) + 1]++;
  for (let b = 0; b < bins; b++) start[b + 1] += start[b];
  const fill = start.slice(0, bins);
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[fill[binOf(conf[i])]++] = i;
  const out = Array.from({ length: bins }, (_, b) => binStats(b / bins, (b + 1) / bins, conf, correct, idx, start[b], start[b + 1]));
  return { ece: eceOf(out, n), bins: out };
}

/** ECE and reliability diagram with `bins` equal-mass bins (sizes floor/ceil of n / bins). */
export function equalMassBins(conf: ArrayLike<number>, correct: ArrayLike<number>, bins = CALIBRATION_BINS): Binned {
  check(conf, correct, bins);
  const n = conf.length;
  // Stable: Array.prototype.sort is stable, so ties keep the order of addition.
  const idx = Array.from({ length: n }, (_, i) => i).sort((i, j) => conf[i] - conf[j]);
  const out: ReliabilityBin[] = [];
  for (let b = 0; b < bins; b++) {
    const from = Math.floor((b * n) / bins);
    const to = Math.floor(((b + 1) * n) / bins);
    out.push(binStats(to > from ? conf[idx[from]] : NaN, to > from ? conf[idx[to - 1]] : NaN, conf, correct, idx, from, to));
  }
  // An empty bin (n < bins) has no range; report it as the point where it would sit.
  for (const [b, bin] of out.entries()) if (bin.count === 0) { bin.lo = b / bins; bin.hi = b / bins; }
  return { ece: eceOf(out, n), bins: out };
}

export interface CalibrationResult {
  /** Predictions scored (target positions). */
  tokens: number;
  /** Fraction of argmax predictions equal to the target. */
  accuracy: number;
  meanConfidence: number;
  /** Mean negative log-likelihood of the target, nats per token. */
  nll: number;
  /** Equal-width ECE (the headline number; equals equalWidth.ece; `bins` are its reliability diagram). */
  ece: number;
  binning: 'equal-width';
  bins: ReliabilityBin[];
  equalWidth: Binned;
  equalMass: Binned;
  /** The input corruption applied, or null for clean inputs. */
  corrupt: { fraction: number; seed: number; replaced: number; changed: number } | null;
}

/** Stores (confidence, correct, nll) per prediction, up to a fixed capacity. */
export class CalibrationAccumulator {
  private readonly conf: Float64Array;
  private readonly correct: Uint8Array;
  private n = 0;
  private nll = 0;

  constructor(readonly capacity: number) {
    this.conf = new Float64Array(capacity);
    this.correct = new Uint8Array(capacity);
  }

  get count(): number { return this.n; }

  add(confidence: number, correct: boolean, nll: number): void {
    if (this.n >= this.capacity) throw new SparselmError(`calibration: more than the ${this.capacity} predictions reserved`);
    this.conf[this.n] = confidence;
    this.correct[this.n] = correct ? 1 : 0;
    this.nll += nll;
    this.n++;
  }

  /** Scores logits [rows, V] (row-major) against targets [rows] in float64. */
  addLogits(logits: ArrayLike<number>, targets: ArrayLike<number>, V: number): void {
    const rows = targets.length;
    if (logits.length !== rows * V) throw new SparselmError(`calibration: ${logits.length} logits for ${rows} targets of vocabulary ${V}`);
    for (let r = 0; r < rows; r++) {
      const o = r * V;
      let max = -Infinity;
      let arg = 0;
      for (let v = 0; v < V; v++) if (logits[o + v] > max) { max = logits[o + v]; arg = v; }
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(logits[o + v] - max);
      // p_max = exp(0) / sum; -log p_target = log sum + max - logit_target.
      this.add(1 / sum, arg === targets[r], Math.log(sum) + max - logits[o + targets[r]]);
    }
  }

  result(bins = CALIBRATION_BINS): Omit<CalibrationResult, 'corrupt'> {
    const n = this.n;
    const conf = this.conf.subarray(0, n);
    const correct = this.correct.subarray(0, n);
    let c = 0;
    let a = 0;
    for (let i = 0; i < n; i++) { c += conf[i]; a += correct[i]; }
    const equalWidth = equalWidthBins(conf, correct, bins);
    const equalMass = equalMassBins(conf, correct, bins);
    return {
      tokens: n,
      accuracy: n === 0 ? 0 : a / n,
      meanConfidence: n === 0 ? 0 : c / n,
      nll: n === 0 ? 0 : this.nll / n,
      ece: equalWidth.ece,
      binning: 'equal-width',
      bins: equalWidth.bins,
      equalWidth,
      equalMass,
    };
  }
}

/**
 * Replaces input tokens in place (see the file comment): `ids` holds the
 * positions starting at global index `offset`. Returns how many positions
 * were replaced and how many of those got a different id.
 */
export function corruptTokens(ids: Int32Array, offset: number, fraction: number, seed: number, vocabSize: number): { replaced: number; changed: number } {
  if (!(fraction >= 0 && fraction <= 1)) throw new SparselmError(`calibration: corrupt fraction must be in [0, 1], got ${fraction}`);
  let replaced = 0;
  let changed = 0;
  if (fraction === 0) return { replaced, changed };
  for (let i = 0; i < ids.length; i++) {
    if (uniform01(seed, offset + i, 0, true) >= fraction) continue;
    const id = Math.min(vocabSize - 1, Math.floor(uniform01(seed, offset + i, 1, true) * vocabSize));
    replaced++;
    if (id !== ids[i]) changed++;
    ids[i] = id;
  }
  return { replaced, changed };
}

export interface CalibrateOptions {
  /** Score floor(tokens / context_length) whole sequences (fewer if the data ends). */
  tokens: number;
  batchSize: number;
  device?: string;
  corrupt?: { fraction: number; seed: number };
  bins?: number;
}

export async function calibrateModel(config: ModelConfig, params: Params, tokenizer: Tokenizer, paths: readonly string[],
  opts: CalibrateOptions): Promise<CalibrationResult> {
  const T = config.context_length;
  const V = config.vocab_size;
  if (!Number.isInteger(opts.tokens) || opts.tokens < T) {
    throw new SparselmError(`calibration: tokens ${opts.tokens} is less than one sequence (context_length ${T} tokens); ask for at least ${T}`);
  }
  const wantSeqs = Math.floor(opts.tokens / T);
  const device = opts.device ?? 'cpu';
  const acc = new CalibrationAccumulator(wantSeqs * T);
  const corrupt = opts.corrupt ? { ...opts.corrupt, replaced: 0, changed: 0 } : null;
  let seqs = 0;
  for await (const batch of validationBatches({ paths, tokenizer, batchSize: opts.batchSize, seqLen: T, device })) {
    const rows = Math.min(batch.inputs.shape[0], wantSeqs - seqs);
    const ids = batch.inputs.toArray().slice(0, rows * T) as Int32Array; // [rows, T], a copy
    const targets = batch.targets.toArray().subarray(0, rows * T);
    if (corrupt) {
      const c = corruptTokens(ids, seqs * T, corrupt.fraction, corrupt.seed, V);
      corrupt.replaced += c.replaced;
      corrupt.changed += c.changed;
    }
    const logits = noGrad(() => forward(config, params, tensor(ids, [rows, T], { dtype: 'int32', device }), { mode: 'eval' }).toArray()); // [rows, T, V]
    acc.addLogits(logits, targets, V);
    seqs += rows;
    if (seqs >= wantSeqs) break;
  }
  if (seqs === 0) throw new SparselmError(`calibration: no complete sequence of ${T + 1} tokens in ${paths.join(', ')}`);
  return { ...acc.result(opts.bins), corrupt };
}
