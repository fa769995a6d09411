/**
 * `sparselm sweep --layers 2,4,8 --d-ff 256,512,1024 --out runs/sweep [train flags...]`:
 * the Lazy Neuron depth × width sweep. Trains one model per (n_layers, d_ff)
 * pair at the same token budget, each into `<out>/L<layers>-ff<d_ff>/`, then
 * measures its FF activation sparsity on validation and training text with
 * src/analysis (what `sparselm analyze` prints), and writes `<out>/sweep.json`
 * (every number) and a table.
 *
 * How it reuses the rest: every flag it does not know is a `sparselm train`
 * flag and is handed to the train command itself (src/cli/train.ts, which
 * calls train()), so the two accept exactly the same flags, parsed and
 * checked the same way. `--threads` is the sweep's (the cpu backend is
 * configured once per process), and so are `--layers`, `--d-ff` (lists) and
 * `--out` (the sweep directory).
 *
 * Invariants:
 * - Every flag and every grid point's model config is checked before
 *   anything trains: a bad width in the last column fails at once, not after
 *   an hour.
 * - Resumable: sweep.json is rewritten atomically after each configuration;
 *   a configuration with an entry there and a final checkpoint is skipped; one
 *   with checkpoints short of the budget is resumed (train's `--resume`); one
 *   trained but not analysed is only analysed. A sweep directory is only
 *   continued with the train flags it was started with.
 * - The analysis numbers equal `sparselm analyze --model <run> --data <val>
 *   --tokens N` on the same run (same code, same default batch); the
 *   validation analysis is also saved as the run's analysis.json, where
 *   `sparselm report` finds it.
 */

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { analyzeModel, type AnalysisResult } from '../analysis/analyze.js';
import { configureCpu } from '../backends/registry.js';
import { samplePath } from '../data/documents.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { writeFileAtomic } from '../io/atomic.js';
import { listCheckpoints, loadCheckpoint } from '../io/checkpoint.js';
import { makeConfig } from '../models/config.js';
import { countParameters } from '../models/params.js';
import { loadPreset, presetConfig } from '../models/presets.js';
import { checkParameters } from '../models/transformer.js';
import { tensor } from '../tensor/create.js';
import { SparselmError } from '../tensor/errors.js';
import { intArg } from './args.js';
import { addTrainCommands, configFieldsOf } from './train.js';

export const SWEEP_VERSION = 1;
export const SWEEP_KIND = 'depth-width';

/** One FF layer's nonzero fraction per token (fractions in [0, 1], not percent). */
export interface SweepLayer { layer: string; mean: number; median: number; std: number }

/** Sparsity of one model on one split. */
export interface SweepSplit {
  data: string[];
  tokens: number;
  layers: SweepLayer[];
  /** Mean over layers of the per-layer mean nonzero fraction. */
  mean: number;
  notes: string[];
}

export interface SweepEntry {
  name: string;
  /** Relative to the sweep directory. */
  dir: string;
  n_layers: number;
  d_ff: number;
  d_model: number;
  ffn: string;
  activation: string;
  params: number;
  steps: number;
  tokens_trained: number;
  /** Validation loss (nats/token) of the final validation pass in metrics.jsonl; null when the run has no validation data. */
  final_val_loss: number | null;
  /** Training throughput at the last logged step (tokens/s). */
  tokens_per_s: number | null;
  validation: SweepSplit;
  train: SweepSplit;
}

export interface SweepFile {
  version: number;
  kind: typeof SWEEP_KIND;
  /** The train flags every configuration was trained with (the sweep's own flags excluded). */
  train_args: string[];
  analysis_tokens: number;
  layers: number[];
  d_ff: number[];
  configs: SweepEntry[];
}

export interface SweepOptions {
  layers: number[];
  dff: number[];
  out: string;
  /** `sparselm train` flags, as typed. */
  trainArgs: string[];
  /** Token budget per configuration (sets --steps); else the train flags' --steps. */
  tokens?: number;
  analyzeTokens: number;
  analyzeBatch?: number;
  log?: (line: string) => void;
}

/** A comma-separated list of distinct positive integers: `--layers 2,4,8`. */
export function intListArg(name: string): (value: string) => number[] {
  const one = intArg(name);
  return (value) => {
    const parts = value.split(',').map((s) => s.trim());
    if (value.trim() === '' || parts.some((s) => s === '')) throw new InvalidArgumentError(`${name} takes a comma-separated list of positive integers, got '${value}'`);
    const xs = parts.map((s) => one(s));
    if (new Set(xs).size !== xs.length) throw new InvalidArgumentError(`${name} lists a value twice: '${value}'`);
    return xs;
  };
}

/** Flags that belong to the sweep, or that it sets per configuration, and so may not be passed through. */
const OWN_FLAGS: Record<string, string> = {
  '--out': 'the sweep directory is --out; each configuration trains into <out>/L<layers>-ff<d_ff>',
  '--resume': 'a sweep resumes by itself: rerun the same command',
  '--n-layers': 'use --layers <list>',
  '--threads': 'give --threads to the sweep (it is set once for all configurations)',
};

export const configName = (layers: number, dff: number) => `L${layers}-ff${dff}`;

/** A program holding only `sparselm train`, whose errors throw instead of exiting. */
function trainProgram(): { program: Command; train: Command } {
  const program = new Command().exitOverride().configureOutput({ writeErr: () => undefined, writeOut: (s) => process.stdout.write(s) });
  addTrainCommands(program);
  const train = program.commands.find((c) => c.name() === 'train');
  if (!train) throw new Error('sweep: the train command is not registered');
  return { program, train };
}

/**
 * Runs `sparselm train <args>` in this process. With `dryRun` the train
 * action is replaced by one that only keeps the parsed flags, so every flag
 * is checked by the train command's own parsers without training; the parsed
 * flags are returned (empty after a real run).
 */
async function runTrainCommand(args: string[], dryRun: boolean): Promise<Record<string, unknown>> {
  const { program, train } = trainProgram();
  let opts: Record<string, unknown> = {};
  if (dryRun) train.action((o: Record<string, unknown>) => { opts = o; });
  try {
    await program.parseAsync(['train', ...args], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) throw new SparselmError(`sweep: train flags: ${e.message.replace(/^error: /, '')}`);
    throw e;
  }
  return opts;
}

interface Plan {
  trainArgs: string[];
  steps: number;
  tokensPerStep: number;
  valData: string[];
  trainData: string[];
  device: string;
}

/** Checks every flag and every grid point's config, before anything trains. */
async function plan(o: SweepOptions): Promise<Plan> {
  for (const a of o.trainArgs) {
    const flag = a.split('=')[0];
    if (flag in OWN_FLAGS) throw new SparselmError(`sweep: ${flag} is not a train flag here: ${OWN_FLAGS[flag]}`);
    if (flag === '--d-ff') throw new SparselmError('sweep: --d-ff takes one comma-separated list');
  }
  if (o.layers.length === 0) throw new SparselmError('sweep: --layers must list at least one depth');
  if (o.dff.length === 0) throw new SparselmError('sweep: --d-ff must list at least one width');
  const probe = await runTrainCommand([...o.trainArgs, '--out', o.out, '--n-layers', String(o.layers[0]), '--d-ff', String(o.dff[0])], true);
  const stepsGiven = o.trainArgs.some((a) => a === '--steps' || a.startsWith('--steps='));
  if (o.tokens !== undefined && stepsGiven) throw new SparselmError('sweep: give the budget as --tokens or as --steps, not both');
  const preset = loadPreset(probe.preset as string);
  const pt = (preset.train ?? {}) as Record<string, unknown>;
  const overrides = configFieldsOf(probe);
  let contextLength = 0;
  for (const L of o.layers) {
    for (const F of o.dff) {
      try {
        contextLength = makeConfig({ ...presetConfig(preset, { ...overrides, n_layers: L, d_ff: F }) }).context_length;
      } catch (e) {
        if (e instanceof SparselmError) throw new SparselmError(`sweep: --layers ${L} with --d-ff ${F}: ${e.message}`);
        throw e;
      }
    }
  }
  const batch = (probe.batch as number | undefined) ?? (pt.batch as number);
  const tokensPerStep = batch * (probe.accum as number) * contextLength;
  const steps = o.tokens !== undefined ? Math.ceil(o.tokens / tokensPerStep) : (probe.steps as number);
  const trainData = (probe.data as string[]).map((p) => resolve(p));
  const onSample = trainData.length === 1 && trainData[0] === samplePath('train');
  const valData = ((probe.valData as string[] | undefined) ?? (onSample ? [samplePath('validation')] : [])).map((p) => resolve(p));
  if (valData.length === 0) throw new SparselmError('sweep: --val-data is required (the sparsity of each model is measured on validation data)');
  const trainArgs = o.tokens !== undefined ? [...o.trainArgs, '--steps', String(steps)] : [...o.trainArgs];
  return { trainArgs, steps, tokensPerStep, valData, trainData, device: probe.device as string };
}

function readSweep(path: string): SweepFile | null {
  if (!existsSync(path)) return null;
  let s: SweepFile;
  try {
    s = JSON.parse(readFileSync(path, 'utf8')) as SweepFile;
  } catch {
    throw new SparselmError(`sweep: '${path}' is not JSON; move it away to start the sweep afresh`);
  }
  if (s.kind !== SWEEP_KIND || !Array.isArray(s.configs)) throw new SparselmError(`sweep: '${path}' is not a depth × width sweep file`);
  return s;
}

/** The final validation loss and last throughput from a run's metrics.jsonl. */
function finalMetrics(runDir: string, step: number): { valLoss: number | null; tokensPerS: number | null } {
  const path = join(runDir, 'metrics.jsonl');
  let valLoss: number | null = null;
  let tokensPerS: number | null = null;
  if (!existsSync(path)) return { valLoss, tokensPerS };
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let r: Record<string, unknown>;
    try { r = JSON.parse(line) as Record<string, unknown>; } catch { continue; }
    if (r.step !== step) continue;
    if (typeof r.val_loss === 'number') valLoss = r.val_loss;
    if (typeof r.tokens_per_s === 'number') tokensPerS = r.tokens_per_s;
  }
  return { valLoss, tokensPerS };
}

function splitSummary(r: AnalysisResult): SweepSplit {
  const layers = r.layers.map((l) => ({ layer: l.layer, mean: l.nonzero.fraction.mean, median: l.nonzero.fraction.median, std: l.nonzero.fraction.std }));
  return { data: r.data, tokens: r.tokens, layers, mean: layers.reduce((s, l) => s + l.mean, 0) / Math.max(1, layers.length), notes: r.notes };
}

const pct = (f: number) => `${(100 * f).toFixed(2)}%`;

/** The sweep as a text table: one row per configuration, per-layer validation sparsity at the right. */
export function formatSweep(s: SweepFile): string {
  const maxLayers = Math.max(0, ...s.configs.map((c) => c.validation.layers.length));
  const header = ['config', 'layers', 'd_ff', 'params', 'val loss', 'val mean', 'train mean', ...Array.from({ length: maxLayers }, (_, i) => `blk.${i}`)];
  const rows = s.configs.map((c) => [
    c.name, String(c.n_layers), String(c.d_ff), c.params.toLocaleString('en-US'), c.final_val_loss === null ? '-' : c.final_val_loss.toFixed(4),
    pct(c.validation.mean), pct(c.train.mean), ...Array.from({ length: maxLayers }, (_, i) => (c.validation.layers[i] ? pct(c.validation.layers[i].mean) : '')),
  ]);
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return `nonzero FF activations per token (mean over tokens; "val mean"/"train mean": mean over layers; blk.i: validation)\n${all.map(line).join('\n')}\n`;
}

export async function runSweep(o: SweepOptions): Promise<SweepFile> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const p = await plan(o);
  const out = resolve(o.out);
  const sweepPath = join(out, 'sweep.json');
  const previous = readSweep(sweepPath);
  if (previous && (JSON.stringify(previous.train_args) !== JSON.stringify(p.trainArgs) || previous.analysis_tokens !== o.analyzeTokens)) {
    throw new SparselmError(`sweep: '${out}' holds a sweep made with other flags (train: ${previous.train_args.join(' ') || '(none)'}; --analyze-tokens ${previous.analysis_tokens}); rerun with those, or choose another --out`);
  }
  mkdirSync(out, { recursive: true });
  const entries = new Map<string, SweepEntry>((previous?.configs ?? []).map((c) => [c.name, c]));
  const grid = o.layers.flatMap((L) => o.dff.map((F) => ({ L, F, name: configName(L, F) })));
  const file = (): SweepFile => {
    const inGrid = grid.flatMap((g) => { const e = entries.get(g.name); return e ? [e] : []; });
    const others = [...entries.values()].filter((e) => !grid.some((g) => g.name === e.name));
    return {
      version: SWEEP_VERSION, kind: SWEEP_KIND, train_args: p.trainArgs, analysis_tokens: o.analyzeTokens,
      layers: [...new Set([...(previous?.layers ?? []), ...o.layers])].sort((a, b) => a - b),
      d_ff: [...new Set([...(previous?.d_ff ?? []), ...o.dff])].sort((a, b) => a - b),
      configs: [...inGrid, ...others],
    };
  };

  for (const [i, g] of grid.entries()) {
    const tag = `[sweep ${i + 1}/${grid.length}] ${g.name}`;
    const dir = join(out, g.name);
    const done = listCheckpoints(dir).at(-1)?.step ?? 0;
    if (entries.has(g.name) && done >= p.steps) {
      log(`${tag}: done, skipped`);
      continue;
    }
    entries.delete(g.name);
    if (done < p.steps) {
      log(`${tag}: training (n_layers ${g.L}, d_ff ${g.F}) ${done > 0 ? `resuming at step ${done}` : 'from scratch'}, to step ${p.steps}`);
      await runTrainCommand([...p.trainArgs, '--out', dir, '--n-layers', String(g.L), '--d-ff', String(g.F), ...(done > 0 ? ['--resume'] : [])], false);
    }
    log(`${tag}: analysing ${o.analyzeTokens.toLocaleString('en-US')} tokens of validation and of training data`);
    const ck = loadCheckpoint(dir, { device: p.device });
    const config = makeConfig(ck.config);
    const params = Object.fromEntries(Object.entries(ck.params).map(([k, v]) => [k, tensor(v.toArray(), v.shape, { device: p.device })]));
    checkParameters(config, params);
    const tokenizer = loadTokenizer(ck.tokenizer);
    const analyse = (data: string[], split: string) => analyzeModel(config, params, tokenizer, data, { tokens: o.analyzeTokens, batchSize: o.analyzeBatch, device: p.device, split });
    const val = await analyse(p.valData, 'validation');
    const trn = await analyse(p.trainData, 'train');
    writeFileAtomic(join(dir, 'analysis.json'), JSON.stringify({ checkpoint: ck.dir, step: ck.step, ...val }, null, 1) + '\n');
    writeFileAtomic(join(dir, 'analysis-train.json'), JSON.stringify({ checkpoint: ck.dir, step: ck.step, ...trn }, null, 1) + '\n');
    const m = finalMetrics(dir, ck.step);
    const entry: SweepEntry = {
      name: g.name, dir: g.name, n_layers: config.n_layers, d_ff: config.d_ff, d_model: config.d_model, ffn: config.ffn, activation: config.activation,
      params: countParameters(config), steps: ck.step, tokens_trained: ck.step * p.tokensPerStep,
      final_val_loss: m.valLoss, tokens_per_s: m.tokensPerS, validation: splitSummary(val), train: splitSummary(trn),
    };
    entries.set(g.name, entry);
    writeFileAtomic(sweepPath, JSON.stringify(file(), null, 1) + '\n');
    log(`${tag}: val loss ${entry.final_val_loss === null ? '-' : entry.final_val_loss.toFixed(4)}, nonzero ${pct(entry.validation.mean)} (validation, mean over layers)`);
  }
  const result = file();
  writeFileAtomic(sweepPath, JSON.stringify(result, null, 1) + '\n');
  return result;
}

export function addSweepCommand(program: Command): void {
  program
    .command('sweep')
    .description('train a depth x width grid at one token budget and measure each model\'s FF activation sparsity (sweep.json, a table); every other flag is a `sparselm train` flag')
    .requiredOption('--layers <list>', 'depths to train, e.g. 2,4,8', intListArg('--layers'))
    .requiredOption('--d-ff <list>', 'FF widths to train, e.g. 512,1024,2048', intListArg('--d-ff'))
    .requiredOption('--out <dir>', 'sweep directory: <out>/L<layers>-ff<d_ff>/ per configuration, <out>/sweep.json')
    .option('--tokens <n>', 'training tokens per configuration: --steps is this over batch x accum x context_length, rounded up', intArg('--tokens'))
    .option('--analyze-tokens <n>', 'tokens of validation and of training data to analyse per model', intArg('--analyze-tokens'), 32768)
    .addOption(new Option('--analyze-batch <n>', 'sequences per analysis forward pass').argParser(intArg('--analyze-batch')).default(8))
    .option('--threads <n>', 'cpu backend threads (default: all cores)', intArg('--threads'))
    .allowUnknownOption()
    .allowExcessArguments()
    .addHelpText('after', '\nAll other flags (--data, --val-data, --tokenizer, --steps, --d-model, --ffn, --seed, ...) go to `sparselm train` for every configuration; `sparselm train --help` lists them.\nRerunning the same command skips finished configurations and resumes an interrupted one.')
    .action(async (o: { layers: number[]; dFf: number[]; out: string; tokens?: number; analyzeTokens: number; analyzeBatch: number; threads?: number }, cmd: Command) => {
      if (o.threads !== undefined) configureCpu({ threads: o.threads });
      const s = await runSweep({ layers: o.layers, dff: o.dFf, out: o.out, trainArgs: cmd.args, tokens: o.tokens, analyzeTokens: o.analyzeTokens, analyzeBatch: o.analyzeBatch });
      process.stdout.write(formatSweep(s));
      process.stdout.write(`wrote ${join(resolve(o.out), 'sweep.json')}\n`);
    });
}
