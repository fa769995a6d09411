/**
 * The training loop: data, model, optimizer, schedule, checkpoints, metrics.
 *
 * Guarantees:
 * - Deterministic on CPU: the same settings give the same loss trajectory.
 *   All randomness (init, dropout, Sparse FF noise, data order) comes from
 *   counter-based generators whose positions are saved.
 * - Resumable exactly: a checkpoint holds parameters, optimizer state, the
 *   dropout/noise generator's position and the data loader's position;
 *   `resume` continues with the loss trajectory of an uninterrupted run.
 * - Nothing lost or half-written: checkpoints are published atomically
 *   (src/io/checkpoint.ts); a run directory that already has checkpoints is
 *   only continued with `resume`; a NaN/Inf loss or gradient stops training
 *   with a clear error and leaves the last good checkpoint in place.
 * - Observable: progress (step, loss, tokens/s, time left) and a metrics log
 *   (metrics.jsonl in the run directory) with train/validation loss and, per
 *   FF layer, the fraction of nonzero activations per token.
 * - Corrupted training data on request (labelNoise, randomLabels,
 *   randomInputs: the Lazy Neuron paper's noisy/random-label and random-input
 *   experiments). The loader applies it (src/data/packing.ts), as a function
 *   of the seed and each token's place in the corpus, so a resumed run sees
 *   exactly the batches of an uninterrupted one. The training loss is on the
 *   corrupted targets; validation is always on clean data.
 */

import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backward } from '../autograd/backward.js';
import { corruptionProblem, createLoader, isCorrupting, type Corruption, type LoaderState } from '../data/packing.js';
import { loadTokenizer, trainBpe, type Tokenizer } from '../data/tokenizer.js';
import { readDocuments } from '../data/documents.js';
import { listCheckpoints, loadCheckpoint, saveCheckpoint } from '../io/checkpoint.js';
import { makeConfig, type ModelConfig } from '../models/config.js';
import { countParameters, initParameters } from '../models/params.js';
import { lossOf, checkParameters } from '../models/transformer.js';
import { mul } from '../ops/index.js';
import { SparselmError } from '../tensor/errors.js';
import { Rng } from '../tensor/random.js';
import { tensor } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { Adafactor } from './adafactor.js';
import { clipGradNorm, gradNorm, nonFiniteGrads } from './clip.js';
import { evaluate, sparsityObserver, sparsityOf } from './evaluate.js';
import { AdamW, type Optimizer } from './optim.js';
import { makeSchedule, type ScheduleConfig } from './schedule.js';
import { progress } from '../cli/progress.js';

/** Everything about a run that is not the model config; saved in the checkpoint and restored on resume. */
export interface TrainSettings {
  data: string[];
  valData: string[];
  steps: number;
  batch: number;
  accum: number;
  optimizer: 'adamw' | 'adafactor';
  lr: number;
  schedule: 'cosine' | 'rsqrt' | 'constant';
  warmup: number;
  minLr: number;
  weightDecay: number;
  clip: number;
  seed: number;
  shuffleBuffer: number;
  evalEvery: number;
  evalTokens: number;
  checkpointEvery: number;
  keep: number;
  logEvery: number;
  /** 'byte', 'gpt2' or 'bpe:<vocab size>' (trained on the training data). */
  tokenizer: string;
  device: string;
  /** Probability that a training target is replaced by a uniformly random token id (default 0). */
  labelNoise?: number;
  /** Every training target is a random token id (default false; not with labelNoise > 0). */
  randomLabels?: boolean;
  /** Every training input is a random token id (default false). */
  randomInputs?: boolean;
}

/** The training-data corruption of a run; settings saved before these fields existed have none. */
export function corruptionOfSettings(s: TrainSettings): Corruption {
  return { labelNoise: s.labelNoise ?? 0, randomLabels: s.randomLabels ?? false, randomInputs: s.randomInputs ?? false };
}

/** The corruption in words, for the log. */
function describeCorruption(c: Corruption): string {
  const parts = [
    c.randomLabels ? 'every target replaced by a uniformly random token id' : c.labelNoise > 0 ? `each target replaced with probability ${c.labelNoise} by a uniformly random token id` : 'targets clean',
    c.randomInputs ? 'every input replaced by a uniformly random token id' : 'inputs clean',
  ];
  return `training data corrupted: ${parts.join('; ')} (fixed per token of the data and seed); validation data clean`;
}

export interface TrainOptions {
  out: string;
  settings: TrainSettings;
  /** Config fields (preset and flags merged); vocab_size comes from the tokenizer. */
  configFields: Record<string, unknown>;
  resume: boolean;
  log?: (line: string) => void;
  /** Stop after this many steps of this call (tests interrupt runs with it). */
  stopAfter?: number;
}

export interface TrainResult { step: number; losses: number[]; finalValLoss: number | null }

interface TrainerState { version: 1; settings: TrainSettings; rng: { seed: number; position: number }; data: LoaderState; lastLoss: number }

function makeSchedulerConfig(s: TrainSettings): ScheduleConfig {
  switch (s.schedule) {
    case 'constant': return { kind: 'constant', lr: s.lr };
    case 'rsqrt': return { kind: 'rsqrt', lr: s.lr, warmupSteps: Math.max(1, s.warmup) };
    case 'cosine': return { kind: 'cosine', lr: s.lr, warmupSteps: s.warmup, totalSteps: s.steps, minLr: s.minLr };
    default: return s.schedule satisfies never;
  }
}

function makeOptimizer(s: TrainSettings, params: Record<string, Tensor>): Optimizer {
  return s.optimizer === 'adafactor'
    ? new Adafactor(params, { lr: s.lr, weightDecay: s.weightDecay })
    : new AdamW(params, { lr: s.lr, weightDecay: s.weightDecay });
}

async function buildTokenizer(spec: string, data: string[], log: (l: string) => void): Promise<Tokenizer> {
  if (spec === 'byte' || spec === 'gpt2') return loadTokenizer({ kind: spec });
  const m = /^bpe:(\d+)$/.exec(spec);
  if (!m) throw new SparselmError(`train: --tokenizer must be byte, gpt2 or bpe:<vocab size>, got '${spec}'`);
  log(`tokenizer: training a ${m[1]}-token byte-level BPE on the first 20 MB of the training data`);
  return trainBpe(readDocuments(data), Number(m[1]), { maxChars: 20_000_000 });
}

/** vocab_size: the tokenizer's, rounded up to a multiple of loss_modules for the sparse loss layer. */
function vocabFor(tokenizer: Tokenizer, fields: Record<string, unknown>): number {
  const sparse = fields.output === 'sparse';
  const S = typeof fields.loss_modules === 'number' ? fields.loss_modules : 4;
  return sparse ? Math.ceil(tokenizer.vocabSize / S) * S : tokenizer.vocabSize;
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const out = opts.out;
  const existing = existsSync(join(out, 'checkpoints')) ? listCheckpoints(join(out, 'checkpoints')) : [];
  if (existing.length > 0 && !opts.resume) {
    throw new SparselmError(`train: '${out}' already has checkpoints (latest step ${existing[existing.length - 1].step}); pass --resume to continue it, or choose another --out`);
  }
  if (opts.resume && existing.length === 0) throw new SparselmError(`train: --resume given but '${out}' has no checkpoint`);

  let config: ModelConfig;
  let tokenizer: Tokenizer;
  let params: Record<string, Tensor>;
  let settings: TrainSettings;
  let step = 0;
  let rng: Rng;
  let resumeData: LoaderState | undefined;
  let optimizerState: { tensors: Record<string, Tensor>; state: Record<string, unknown> } | undefined;

  if (opts.resume) {
    const ck = loadCheckpoint(out, { device: opts.settings.device });
    const state = ck.trainer as unknown as TrainerState;
    config = makeConfig(ck.config);
    tokenizer = loadTokenizer(ck.tokenizer);
    params = Object.fromEntries(Object.entries(ck.params).map(([k, v]) => [k, tensor(v.toArray(), v.shape, { device: opts.settings.device, requiresGrad: true })]));
    checkParameters(config, params);
    // A resumed run keeps its settings; only the step budget may grow.
    settings = { ...state.settings, steps: Math.max(opts.settings.steps, state.settings.steps) };
    step = ck.step;
    rng = new Rng(state.rng.seed, state.rng.position);
    resumeData = state.data;
    optimizerState = ck.optimizer;
    truncateMetrics(join(out, 'metrics.jsonl'), step);
    log(`resuming ${out} at step ${step}`);
    // Like every other setting, the corruption is the run's own; say so when the caller asked for another.
    const asked = corruptionOfSettings(opts.settings);
    const kept = corruptionOfSettings(settings);
    if (isCorrupting(asked) && JSON.stringify(asked) !== JSON.stringify(kept)) {
      log(`resume: the run keeps its own training-data corruption ${JSON.stringify(kept)}; the corruption asked for now ${JSON.stringify(asked)} is ignored`);
    }
  } else {
    settings = opts.settings;
    makeSchedule(makeSchedulerConfig(settings)); // fail fast on bad settings, before any data is read
    const problem = corruptionProblem(corruptionOfSettings(settings));
    if (problem !== null) throw new SparselmError(`train: ${problem}`);
    makeConfig({ ...opts.configFields });
    mkdirSync(out, { recursive: true });
    tokenizer = await buildTokenizer(settings.tokenizer, settings.data, log);
    config = makeConfig({ ...opts.configFields, vocab_size: vocabFor(tokenizer, opts.configFields) });
    params = initParameters(config, new Rng(settings.seed), { device: settings.device });
    rng = new Rng(settings.seed + 1);
    writeFileSync(join(out, 'metrics.jsonl'), '');
  }
  log(`config: ${JSON.stringify(config)}`);
  log(`training: ${JSON.stringify(settings)}`);
  log(`parameters: ${countParameters(config).toLocaleString()}`);
  const corrupt = corruptionOfSettings(settings);
  if (isCorrupting(corrupt)) log(describeCorruption(corrupt));

  const loader = await createLoader({
    paths: settings.data, tokenizer, batchSize: settings.batch, seqLen: config.context_length,
    seed: settings.seed, shuffleBuffer: settings.shuffleBuffer, device: settings.device, resumeFrom: resumeData,
    ...(isCorrupting(corrupt) ? { corrupt } : {}),
  });
  const optimizer = makeOptimizer(settings, params);
  if (optimizerState) optimizer.loadState(optimizerState.tensors, optimizerState.state);
  const schedule = makeSchedule(makeSchedulerConfig(settings));
  const metricsPath = join(out, 'metrics.jsonl');
  const logMetrics = (record: object) => appendFileSync(metricsPath, JSON.stringify(record) + '\n');

  const save = (lastLoss: number) => {
    const trainer: TrainerState = { version: 1, settings, rng: rng.state(), data: loader.position(), lastLoss };
    saveCheckpoint(out, step, {
      params, config, tokenizer: tokenizer.toJSON(),
      optimizer: { tensors: optimizer.stateTensors(), state: optimizer.stateJSON() }, trainer,
    }, { keep: settings.keep });
  };
  const validate = async () => {
    const r = await evaluate(config, params, tokenizer, settings.valData, { batchSize: settings.batch, maxTokens: settings.evalTokens, device: settings.device });
    logMetrics({ step, val_loss: r.loss, val_bits_per_byte: r.bitsPerByte, val_tokens: r.tokens, val_sparsity: r.sparsity });
    log(`step ${step}: validation loss ${r.loss.toFixed(4)} (${r.bitsPerByte.toFixed(3)} bits/byte) | nonzero FF activations per token: ${Object.values(r.sparsity).map((v) => (100 * v).toFixed(1) + '%').join(' ')}`);
    return r.loss;
  };

  const losses: number[] = [];
  const tokensPerStep = settings.batch * settings.accum * config.context_length;
  const bar = progress('train', settings.steps, step, log);
  const t0 = performance.now();
  const startStep = step;
  let finalValLoss: number | null = null;
  const stopAt = opts.stopAfter !== undefined ? Math.min(settings.steps, step + opts.stopAfter) : settings.steps;
  try {
    while (step < stopAt) {
      const sums = new Map<string, { total: number; tokens: number }>();
      const observe = sparsityObserver(sums);
      let loss = 0;
      for (let micro = 0; micro < settings.accum; micro++) {
        const batch = await loader.next();
        const l = lossOf(config, params, batch.inputs, batch.targets, { mode: 'train', rng, observe });
        backward(settings.accum === 1 ? l : mul(l, 1 / settings.accum));
        loss += l.item() / settings.accum;
      }
      const bad = nonFiniteGrads(params);
      if (!Number.isFinite(loss) || bad.length > 0) {
        const saved = listCheckpoints(join(out, 'checkpoints'));
        const kept = saved.length > 0 ? `the last good checkpoint is kept (step ${saved[saved.length - 1].step})` : 'no checkpoint was written yet';
        throw new SparselmError(`train: step ${step + 1}: ${!Number.isFinite(loss) ? `loss is ${loss}` : `non-finite gradient in ${bad.slice(0, 5).join(', ')}`}; stopping, ${kept}. Try a lower --lr or --clip.`);
      }
      const norm = settings.clip > 0 ? clipGradNorm(params, settings.clip) : gradNorm(params);
      step++;
      const lr = schedule(step);
      optimizer.update(lr);
      optimizer.zeroGrad();
      losses.push(loss);
      const tps = ((step - startStep) * tokensPerStep) / ((performance.now() - t0) / 1000);
      bar.update(step, { loss: loss.toFixed(4), 'tokens/s': Math.round(tps).toLocaleString() });
      if (step % settings.logEvery === 0 || step === settings.steps) {
        logMetrics({ step, loss, lr, grad_norm: norm, tokens: step * tokensPerStep, tokens_per_s: tps, epoch: loader.epoch, sparsity: sparsityOf(sums) });
      }
      if (settings.evalEvery > 0 && step % settings.evalEvery === 0 && step !== settings.steps) await validate();
      if (step % settings.checkpointEvery === 0 || step === settings.steps) save(loss);
    }
    if (step === settings.steps) finalValLoss = await validate();
  } finally {
    bar.stop();
    await loader.close();
  }
  return { step, losses, finalValLoss };
}

/** On resume, drop metric lines of steps after the checkpoint (they will be recomputed identically). */
function truncateMetrics(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readFileSync(path, 'utf8').split('\n').filter((line) => {
    if (line.trim() === '') return false;
    try { return (JSON.parse(line) as { step: number }).step <= step; } catch { return false; }
  });
  writeFileSync(path, kept.map((l) => l + '\n').join(''));
}
