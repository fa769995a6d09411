/**
 * `sparselm train` and `sparselm eval`.
 *
 * Every model config field is a flag of the same name (`d_ff` is `--d-ff`,
 * `ffn` is `--ffn`), generated from DEFAULT_CONFIG so the two can never drift
 * apart; values are parsed by the field's type and then validated by
 * makeConfig, which names the field in any error. Unknown flags are errors.
 */

import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_CONFIG, makeConfig } from '../models/config.js';
import { loadPreset, presetConfig, presetNames } from '../models/presets.js';
import { train, type TrainSettings } from '../train/trainer.js';
import { evaluate } from '../train/evaluate.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { samplePath } from '../data/documents.js';
import { checkParameters } from '../models/transformer.js';
import { tensor } from '../tensor/create.js';
import { configureCpu } from '../backends/registry.js';
import { intArg, numArg } from './args.js';
import { SparselmError } from '../tensor/errors.js';

const flagOf = (field: string) => `--${field.replace(/_/g, '-')}`;
const fieldOf = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The model config fields given as flags, from the train command's parsed options (commander's camelCase keys). */
export function configFieldsOf(options: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    const field = fieldOf(key);
    if (field in DEFAULT_CONFIG && value !== undefined) fields[field] = value;
  }
  return fields;
}

function parseField(field: string, def: unknown) {
  return (value: string): unknown => {
    if (field === 'topk_k') {
      const ks = value.split(',').map(Number);
      if (ks.some((k) => !Number.isFinite(k))) throw new InvalidArgumentError(`${flagOf(field)} takes a number or a comma-separated list, got '${value}'`);
      return ks.length === 1 ? ks[0] : ks;
    }
    if (typeof def === 'number') {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${flagOf(field)} takes a number, got '${value}'`);
      return n;
    }
    if (typeof def === 'boolean') {
      if (value !== 'true' && value !== 'false') throw new InvalidArgumentError(`${flagOf(field)} takes true or false, got '${value}'`);
      return value === 'true';
    }
    return value;
  };
}

/** A probability in [0, 1]. */
function probabilityArg(name: string): (value: string) => number {
  return (value) => {
    const p = Number(value);
    if (value.trim() === '' || !(p >= 0 && p <= 1)) throw new InvalidArgumentError(`${name} must be a probability in [0, 1], got '${value}'`);
    return p;
  };
}

export function addTrainCommands(program: Command): void {
  const cmd = program
    .command('train')
    .description('train a language model (dense, top-k, Sparse FF, Sparse QKV) on C4-format shards or text')
    .option('--preset <name>', `model shape: ${presetNames().join(', ')}`, 'small')
    .option('--data <paths...>', 'training shards, text files or directories', [samplePath('train')])
    .option('--val-data <paths...>', 'validation shards (default: the bundled sample\'s validation split when training on the bundled sample)')
    .requiredOption('--out <dir>', 'run directory (checkpoints, metrics.jsonl)')
    .option('--resume', 'continue the run in --out from its latest checkpoint', false)
    .option('--steps <n>', 'optimizer steps', intArg('--steps'), 2000)
    .option('--batch <n>', 'sequences per micro-batch (default: the preset\'s)', intArg('--batch'))
    .option('--accum <n>', 'micro-batches per step (gradient accumulation)', intArg('--accum'), 1)
    .addOption(new Option('--optimizer <name>', 'optimizer').choices(['adamw', 'adafactor']).default('adamw'))
    .option('--lr <x>', 'peak learning rate (default: the preset\'s)', numArg('--lr'))
    .addOption(new Option('--schedule <name>', 'learning-rate schedule').choices(['cosine', 'rsqrt', 'constant']).default('cosine'))
    .option('--warmup <n>', 'warmup steps (default: the preset\'s)', intArg('--warmup', 0))
    .option('--min-lr <x>', 'final learning rate of the cosine schedule', numArg('--min-lr'), 0)
    .option('--weight-decay <x>', 'decoupled weight decay on matrices', numArg('--weight-decay'), 0.01)
    .option('--clip <x>', 'clip the global gradient norm (0: off)', numArg('--clip'), 1)
    .option('--seed <n>', 'seed of init, data order, dropout and Sparse FF noise', intArg('--seed', 0), 0)
    .option('--shuffle-buffer <n>', 'sequences per shuffle block', intArg('--shuffle-buffer'), 1024)
    .option('--eval-every <n>', 'steps between validation passes (0: only at the end)', intArg('--eval-every', 0), 500)
    .option('--eval-tokens <n>', 'validation tokens per pass', intArg('--eval-tokens'), 65536)
    .option('--checkpoint-every <n>', 'steps between checkpoints', intArg('--checkpoint-every'), 500)
    .option('--keep <n>', 'checkpoints to keep', intArg('--keep'), 3)
    .option('--log-every <n>', 'steps between metrics lines', intArg('--log-every'), 10)
    .option('--tokenizer <spec>', 'byte, gpt2 or bpe:<vocab size> (default: the preset\'s)')
    .option('--device <name>', 'ref or cpu', 'cpu')
    .option('--threads <n>', 'cpu backend threads (default: all cores)', intArg('--threads'))
    .option('--label-noise <p>', 'replace each training target with probability p by a uniformly random token id (validation stays clean)', probabilityArg('--label-noise'), 0)
    .option('--random-labels', 'replace every training target by a random token id (the Lazy Neuron random-label experiment)', false)
    .option('--random-inputs', 'replace every training input by a random token id; targets stay the real next tokens unless --random-labels', false);
  for (const [field, def] of Object.entries(DEFAULT_CONFIG)) {
    if (field === 'version' || field === 'vocab_size') continue;
    cmd.option(`${flagOf(field)} <value>`, `model config field ${field} (default: preset, else ${JSON.stringify(def)})`, parseField(field, def));
  }
  cmd.action(async (o: Record<string, unknown>) => {
    if (o.threads !== undefined) configureCpu({ threads: o.threads as number });
    const preset = loadPreset(o.preset as string);
    const pt = (preset.train ?? {}) as Record<string, unknown>;
    const configOverrides = configFieldsOf(o);
    if (o.randomLabels === true && (o.labelNoise as number) > 0) {
      throw new SparselmError(`train: --label-noise ${o.labelNoise as number} and --random-labels cannot be combined: random labels already replace every target (they are --label-noise 1)`);
    }
    const configFields = presetConfig(preset, configOverrides);
    makeConfig({ ...configFields }); // fail fast on a bad config, before any data is read
    // Absolute paths: the run's settings are saved with its checkpoints and must resolve from any directory.
    const data = (o.data as string[]).map((p) => resolve(p));
    const onSample = data.length === 1 && data[0] === samplePath('train');
    const settings: TrainSettings = {
      data,
      valData: ((o.valData as string[] | undefined) ?? (onSample ? [samplePath('validation')] : [])).map((p) => resolve(p)),
      steps: o.steps as number,
      batch: (o.batch as number | undefined) ?? (pt.batch as number),
      accum: o.accum as number,
      optimizer: o.optimizer as TrainSettings['optimizer'],
      lr: (o.lr as number | undefined) ?? (pt.lr as number),
      schedule: o.schedule as TrainSettings['schedule'],
      warmup: (o.warmup as number | undefined) ?? (pt.warmup as number),
      minLr: o.minLr as number,
      weightDecay: o.weightDecay as number,
      clip: o.clip as number,
      seed: o.seed as number,
      shuffleBuffer: o.shuffleBuffer as number,
      evalEvery: o.evalEvery as number,
      evalTokens: o.evalTokens as number,
      checkpointEvery: o.checkpointEvery as number,
      keep: o.keep as number,
      logEvery: o.logEvery as number,
      tokenizer: (o.tokenizer as string | undefined) ?? (pt.tokenizer as string),
      device: o.device as string,
      labelNoise: o.labelNoise as number,
      randomLabels: o.randomLabels as boolean,
      randomInputs: o.randomInputs as boolean,
    };
    const r = await train({ out: o.out as string, settings, configFields, resume: o.resume as boolean });
    if (r.finalValLoss !== null) process.stdout.write(`final validation loss ${r.finalValLoss.toFixed(4)}\n`);
  });

  program
    .command('eval')
    .description('loss, perplexity and bits per byte of a trained model on held-out data')
    .requiredOption('--model <dir>', 'a run directory or checkpoint directory')
    .option('--data <paths...>', 'shards, text files or directories', [samplePath('validation')])
    .option('--tokens <n>', 'evaluate at most this many tokens', intArg('--tokens'))
    .option('--batch <n>', 'sequences per batch', intArg('--batch'), 8)
    .option('--device <name>', 'ref or cpu', 'cpu')
    .option('--json', 'print JSON', false)
    .action(async (o: { model: string; data: string[]; tokens?: number; batch: number; device: string; json: boolean }) => {
      const ck = loadCheckpoint(o.model, { device: o.device });
      const config = makeConfig(ck.config);
      const params = Object.fromEntries(Object.entries(ck.params).map(([k, v]) => [k, tensor(v.toArray(), v.shape, { device: o.device })]));
      checkParameters(config, params);
      const tokenizer = loadTokenizer(ck.tokenizer);
      const r = await evaluate(config, params, tokenizer, o.data, { batchSize: o.batch, maxTokens: o.tokens, device: o.device });
      const result = { checkpoint: ck.dir, step: ck.step, ...r };
      if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
      else {
        process.stdout.write(`checkpoint ${ck.dir} (step ${ck.step})\n`);
        process.stdout.write(`tokens ${r.tokens.toLocaleString()} (${r.bytes.toLocaleString()} bytes)\n`);
        process.stdout.write(`loss ${r.loss.toFixed(4)} | perplexity ${r.perplexity.toFixed(2)} | bits per byte ${r.bitsPerByte.toFixed(4)}\n`);
        process.stdout.write(`nonzero FF activations per token: ${Object.entries(r.sparsity).map(([k, v]) => `${k} ${(100 * v).toFixed(2)}%`).join(', ')}\n`);
      }
    });
}
