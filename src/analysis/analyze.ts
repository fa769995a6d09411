/**
 * Lazy Neuron analysis of a trained model: runs the model in evaluation mode
 * over the first N tokens of a text stream (one pass, unshuffled, through
 * `validationBatches`) and feeds every FF layer's activations to the
 * streaming accumulators of ./stats.ts through the named observation points
 * (`blk.{i}.ffn_act`: what multiplies W2; `blk.{i}.ffn_ctrl`: Sparse FF
 * controller logits). Model code is not touched.
 *
 * What it is not: a report. `analyzeModel` returns a typed result object;
 * the CLI (src/cli/analyze.ts) prints tables or JSON from it.
 *
 * Invariants: memory is constant in N (one batch of activations at a time
 * plus O(d_ff) per layer); exactly floor(N / T) whole sequences of T =
 * context_length tokens are analysed, fewer only when the data ends first
 * (then a note says so); any FF kind works.
 */

import { noGrad } from '../autograd/node.js';
import { validationBatches } from '../data/packing.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { derived, type ModelConfig } from '../models/config.js';
import type { Params } from '../models/layers.js';
import { forward } from '../models/transformer.js';
import { tensor } from '../tensor/create.js';
import { SparselmError } from '../tensor/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { CalibrationResult } from './calibration.js';
import {
  ActiveOverlap, ControllerUsage, FiringFrequency, NearZeroFraction, NonzeroFraction, TopMass,
  type Acts, type ControllerResult, type FiringResult, type NearZeroResult, type NonzeroResult, type OverlapResult, type TopMassResult,
} from './stats.js';

export interface LayerAnalysis {
  /** `blk.{i}` */
  layer: string;
  nonzero: NonzeroResult;
  nearZero: NearZeroResult;
  firing: FiringResult;
  topMass: TopMassResult;
  overlap: OverlapResult;
  /** Sparse FF layers only. */
  controller: ControllerResult | null;
}

export interface AnalysisResult {
  /** Tokens analysed (sequences × seqLen) and how many were asked for. */
  tokens: number;
  requestedTokens: number;
  sequences: number;
  seqLen: number;
  data: string[];
  /** A label for the data (e.g. 'validation'). */
  split: string;
  model: { ffn: ModelConfig['ffn']; activation: ModelConfig['activation']; d_ff: number; n_layers: number; topk_k: number[] | null; sparse_block: number | null };
  /** Whether every FF layer produces exact zeros (ReLU, Top-k or Sparse FF); if not, exact-zero statistics say little. */
  exactZeros: boolean;
  notes: string[];
  layers: LayerAnalysis[];
  /** Next-token calibration over the same tokens (`sparselm analyze --calibration`; ./calibration.ts). */
  calibration?: CalibrationResult;
}

export interface AnalyzeOptions {
  /** Analyse floor(tokens / context_length) sequences (fewer if the data ends). */
  tokens: number;
  /** Sequences per forward pass (default 8). */
  batchSize?: number;
  device?: string;
  /** Label stored in the result (default 'validation'). */
  split?: string;
}

/** The accumulators of one FF layer. */
class LayerAccumulators {
  readonly nonzero = new NonzeroFraction();
  readonly nearZero = new NearZeroFraction();
  readonly firing = new FiringFrequency();
  readonly topMass = new TopMass();
  readonly overlap: ActiveOverlap;
  controller: ControllerUsage | null = null;

  constructor(seqLen: number) {
    this.overlap = new ActiveOverlap(seqLen);
  }

  addActs(acts: Acts, tokens: number, dff: number): void {
    this.nonzero.add(acts, tokens, dff);
    this.nearZero.add(acts, tokens, dff);
    this.firing.add(acts, tokens, dff);
    this.topMass.add(acts, tokens, dff);
    this.overlap.add(acts, tokens, dff);
  }

  result(layer: string): LayerAnalysis {
    return {
      layer,
      nonzero: this.nonzero.result(),
      nearZero: this.nearZero.result(),
      firing: this.firing.result(),
      topMass: this.topMass.result(),
      overlap: this.overlap.result(),
      controller: this.controller?.result() ?? null,
    };
  }
}

function floatData(name: string, t: Tensor): Acts {
  const a = t.toArray();
  if (a instanceof Int32Array) throw new SparselmError(`analyze: observation '${name}' is int32, expected floats`);
  return a;
}

const POINT = /^(blk\.\d+)\.ffn_(act|ctrl)$/;

export async function analyzeModel(config: ModelConfig, params: Params, tokenizer: Tokenizer, paths: readonly string[],
  opts: AnalyzeOptions): Promise<AnalysisResult> {
  const T = config.context_length;
  const N = opts.tokens;
  if (!Number.isInteger(N) || N < T) {
    throw new SparselmError(`analyze: tokens ${N} is less than one sequence (context_length ${T} tokens); ask for at least ${T}`);
  }
  const wantSeqs = Math.floor(N / T);
  const device = opts.device ?? 'cpu';
  const layers = new Map<string, LayerAccumulators>();
  const acc = (layer: string) => {
    let a = layers.get(layer);
    if (!a) { a = new LayerAccumulators(T); layers.set(layer, a); }
    return a;
  };
  const observe = (name: string, value: Tensor): void => {
    const m = POINT.exec(name);
    if (!m) return;
    const last = value.shape[value.rank - 1];
    if (m[2] === 'act') {
      acc(m[1]).addActs(floatData(name, value), value.size / last, last);
    } else {
      // [.., nb, N]
      const nb = value.shape[value.rank - 2];
      const a = acc(m[1]);
      a.controller ??= new ControllerUsage();
      a.controller.add(floatData(name, value), value.size / (nb * last), nb, last);
    }
  };

  let seqs = 0;
  for await (const batch of validationBatches({ paths, tokenizer, batchSize: opts.batchSize ?? 8, seqLen: T, device })) {
    const have = batch.inputs.shape[0];
    const rows = Math.min(have, wantSeqs - seqs);
    const inputs = rows === have ? batch.inputs
      : tensor(batch.inputs.toArray().subarray(0, rows * T), [rows, T], { dtype: 'int32', device });
    noGrad(() => forward(config, params, inputs, { mode: 'eval', observe }));
    seqs += rows;
    if (seqs >= wantSeqs) break;
  }
  if (seqs === 0) throw new SparselmError(`analyze: no complete sequence of ${T + 1} tokens in ${paths.join(', ')}`);

  const exactZeros = config.ffn !== 'dense' || config.activation === 'relu';
  const notes: string[] = [];
  if (!exactZeros) {
    notes.push(`activation ${config.activation} is not ReLU-family: exact zeros are rare, so the exact-zero statistics (nonzero fraction, dead neurons, active-set overlap) are near trivial; the near-zero fractions |a| <= t are the meaningful ones`);
  }
  const tokens = seqs * T;
  if (seqs < wantSeqs) notes.push(`the data ended after ${tokens} tokens (${wantSeqs * T} requested)`);
  if (N % T !== 0) notes.push(`${N} tokens is not a multiple of the sequence length ${T}; analysed whole sequences only`);
  const order = (name: string) => Number(name.slice('blk.'.length));
  return {
    tokens,
    requestedTokens: N,
    sequences: seqs,
    seqLen: T,
    data: [...paths],
    split: opts.split ?? 'validation',
    model: {
      ffn: config.ffn,
      activation: config.ffn === 'sparse' ? 'relu' : config.activation,
      d_ff: config.d_ff,
      n_layers: config.n_layers,
      topk_k: config.ffn === 'topk' ? derived(config).topk_per_layer : null,
      sparse_block: config.ffn === 'sparse' ? config.sparse_block : null,
    },
    exactZeros,
    notes,
    layers: [...layers].sort(([a], [b]) => order(a) - order(b)).map(([k, a]) => a.result(k)),
  };
}
