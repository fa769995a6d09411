/**
 * Checkpoints: saving and loading a model (and, for resuming, its training
 * state) as a directory, in the layout of docs/format.md sections 1 and 2.
 *
 *   runs/x/checkpoints/step-000123/{model.safetensors, config.json, tokenizer.json,
 *                                   optimizer.safetensors?, trainer.json?}
 *   runs/x/checkpoints/latest      "step-000123\n"
 *
 * Invariant: nothing half-written is ever visible. A checkpoint directory is
 * filled under a temporary name and renamed into place; the `latest` pointer
 * is replaced atomically only after that; pruning renames a directory away
 * before deleting it (src/io/atomic.ts). A crash at any point leaves the
 * previous pointer and the checkpoint it names intact.
 *
 * What is not here: the meaning of the optimizer and trainer objects (they
 * belong to src/train and are stored verbatim) and config validation (the
 * model validates what it loads; `validateAgainst` checks the parameters
 * against the shapes the model expects).
 */

import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Backend } from '../backends/backend.js';
import { fmtShape, SparselmError } from '../tensor/errors.js';
import { sameShape, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { cleanStaleTemps, ioError, isTempName, publishDirAtomic, removeDirAtomic, writeFileAtomic, writeFileDurable } from './atomic.js';
import { readSafetensors, writeSafetensorsFrom, type TensorSource } from './safetensors.js';

/** The checkpoint format version (docs/format.md). */
export const FORMAT_VERSION = 1;

export const CHECKPOINTS_DIR = 'checkpoints';
export const LATEST_FILE = 'latest';
export const FILES = {
  model: 'model.safetensors',
  config: 'config.json',
  tokenizer: 'tokenizer.json',
  optimizer: 'optimizer.safetensors',
  trainer: 'trainer.json',
} as const;

/** `step-000123`: checkpoint directory names, and the only names a pointer may hold. */
export const STEP_DIR = /^step-(\d+)$/;

export interface CheckpointParts {
  /** Model parameters by the names of docs/model.md; stored as float32. */
  params: Record<string, Tensor>;
  /** The ModelConfig (must have a numeric `version`). */
  config: object;
  /** The tokenizer's toJSON(). */
  tokenizer: object;
  /** Optimizer state: stateTensors() (kept in their dtype) and stateJSON() (kind, steps, options). */
  optimizer?: { tensors: Record<string, Tensor>; state: object };
  /** Trainer state: LR schedule, RNG {seed, position}, data loader position, training config. */
  trainer?: object;
}

export interface LoadedCheckpoint {
  /** The checkpoint directory that was read (absolute). */
  dir: string;
  step: number;
  formatVersion: number;
  /** The sparselm version that wrote it. */
  sparselmVersion: string;
  params: Record<string, Tensor>;
  config: Record<string, unknown>;
  tokenizer: Record<string, unknown>;
  optimizer?: { tensors: Record<string, Tensor>; state: Record<string, unknown> };
  trainer?: Record<string, unknown>;
}

export interface SaveOptions {
  /** Keep the checkpoint `latest` names and the keep-1 others with the highest steps; delete the rest. Default: keep all. */
  keep?: number;
}

export interface LoadOptions {
  device?: string | Backend;
}

let cachedVersion: string | null = null;

/** This package's version, from package.json (two levels up from src/io, three from build/src/io). */
export function sparselmVersion(): string {
  if (cachedVersion !== null) return cachedVersion;
  cachedVersion = 'unknown';
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'sparselm' && typeof pkg.version === 'string') {
        cachedVersion = pkg.version;
        break;
      }
    } catch {
      // not there: try the next candidate
    }
  }
  return cachedVersion;
}

/** `step-000123` (at least 6 digits; more when the step needs them). */
export function stepDirName(step: number): string {
  return `step-${String(step).padStart(6, '0')}`;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function toJson(op: string, file: string, value: unknown): string {
  try {
    return `${JSON.stringify(value, null, 2)}\n`;
  } catch (e) {
    throw new SparselmError(`${op}: ${file}: cannot serialise to JSON: ${(e as Error).message}`);
  }
}

/** Float parameters become float32 (docs/format.md, "Parameters"); int32 stays int32. Converted one tensor at a time, as written. */
function paramSource(t: Tensor): TensorSource {
  if (t.dtype === 'int32') return { dtype: 'I32', shape: t.shape, data: () => t.toArray() };
  return {
    dtype: 'F32',
    shape: t.shape,
    data: () => {
      const a = t.toArray();
      return a instanceof Float32Array ? a : Float32Array.from(a);
    },
  };
}

function keepSource(t: Tensor): TensorSource {
  const dtype = t.dtype === 'float32' ? 'F32' : t.dtype === 'float64' ? 'F64' : 'I32';
  return { dtype, shape: t.shape, data: () => t.toArray() };
}

function mapValues<A, B>(r: Record<string, A>, f: (a: A) => B): Record<string, B> {
  const out: Record<string, B> = {};
  for (const [k, v] of Object.entries(r)) out[k] = f(v);
  return out;
}

/** The name `checkpoints/latest` holds, or null when there is no pointer yet. */
export function readPointer(checkpointsDir: string): string | null {
  const file = join(checkpointsDir, LATEST_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError('checkpoint', file, e);
  }
  const name = text.trim();
  if (!STEP_DIR.test(name)) throw new SparselmError(`checkpoint: ${file}: pointer holds ${JSON.stringify(name.slice(0, 80))}, not a checkpoint name like step-000123`);
  return name;
}

/** The complete checkpoints under `checkpoints/` of a run directory (or of that directory itself), by ascending step. Temporary directories are never listed. */
export function listCheckpoints(dir: string): { step: number; name: string; dir: string }[] {
  const ck = checkpointsDirOf(dir);
  let names: string[];
  try {
    names = readdirSync(ck);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw ioError('checkpoint', ck, e);
  }
  const out: { step: number; name: string; dir: string }[] = [];
  for (const name of names) {
    const m = STEP_DIR.exec(name);
    if (!m) continue;
    const full = resolve(ck, name);
    if (!statSync(full).isDirectory()) continue;
    out.push({ step: Number(m[1]), name, dir: full });
  }
  return out.sort((a, b) => a.step - b.step);
}

function checkpointsDirOf(dir: string): string {
  return basename(resolve(dir)) === CHECKPOINTS_DIR && !existsSync(join(dir, CHECKPOINTS_DIR)) ? resolve(dir) : resolve(dir, CHECKPOINTS_DIR);
}

/**
 * Saves a checkpoint as `<runDir>/checkpoints/step-NNNNNN/`, then points
 * `latest` at it, then prunes to `opts.keep`. Returns the checkpoint
 * directory. Every argument is checked and serialised before anything is
 * written; a failure part-way (or a crash) leaves the previous checkpoint and
 * pointer as they were.
 */
export function saveCheckpoint(runDir: string, step: number, parts: CheckpointParts, opts: SaveOptions = {}): string {
  const op = 'saveCheckpoint';
  if (!Number.isSafeInteger(step) || step < 0) throw new SparselmError(`${op}: step must be a non-negative integer, got ${step}`);
  if (opts.keep !== undefined && !(Number.isInteger(opts.keep) && opts.keep >= 1)) throw new SparselmError(`${op}: keep must be an integer >= 1, got ${opts.keep}`);
  if (!isPlainObject(parts.params)) throw new SparselmError(`${op}: params must be an object of tensors`);
  if (!isPlainObject(parts.config) || typeof parts.config.version !== 'number') {
    throw new SparselmError(`${op}: config must be the ModelConfig object, with a numeric version`);
  }
  if (!isPlainObject(parts.tokenizer)) throw new SparselmError(`${op}: tokenizer must be the tokenizer's toJSON() object`);
  if (parts.optimizer && !(isPlainObject(parts.optimizer.tensors) && isPlainObject(parts.optimizer.state))) {
    throw new SparselmError(`${op}: optimizer must be { tensors, state } with state a JSON object`);
  }
  if (parts.trainer !== undefined && !isPlainObject(parts.trainer)) throw new SparselmError(`${op}: trainer must be a JSON object`);

  const version = sparselmVersion();
  const config = toJson(op, FILES.config, parts.config);
  const tokenizer = toJson(op, FILES.tokenizer, parts.tokenizer);
  const withTrainer = parts.optimizer !== undefined || parts.trainer !== undefined;
  const trainer = withTrainer
    ? toJson(op, FILES.trainer, {
      format_version: FORMAT_VERSION,
      sparselm_version: version,
      step,
      ...(parts.optimizer ? { optimizer: parts.optimizer.state } : {}),
      ...(parts.trainer ? { trainer: parts.trainer } : {}),
    })
    : null;
  const meta = (contents: string): Record<string, string> => ({
    format: 'sparselm', format_version: String(FORMAT_VERSION), contents, step: String(step), sparselm_version: version,
  });

  const ck = resolve(runDir, CHECKPOINTS_DIR);
  try {
    mkdirSync(ck, { recursive: true });
  } catch (e) {
    throw ioError(op, ck, e);
  }
  cleanStaleTemps(ck);
  const name = stepDirName(step);
  const finalDir = join(ck, name);
  const current = readPointer(ck);
  if (current === name && existsSync(finalDir)) {
    throw new SparselmError(`${op}: ${finalDir} is the latest checkpoint; the checkpoint that '${LATEST_FILE}' names is never replaced (save a later step)`);
  }

  // A step directory that exists but is not the pointer's (published, then a
  // crash before the pointer moved; training replayed to here) is replaced.
  publishDirAtomic(finalDir, (tmp) => {
    writeSafetensorsFrom(join(tmp, FILES.model), mapValues(parts.params, paramSource), meta('model'));
    writeFileDurable(join(tmp, FILES.config), config);
    writeFileDurable(join(tmp, FILES.tokenizer), tokenizer);
    if (parts.optimizer) writeSafetensorsFrom(join(tmp, FILES.optimizer), mapValues(parts.optimizer.tensors, keepSource), meta('optimizer'));
    if (trainer !== null) writeFileDurable(join(tmp, FILES.trainer), trainer);
  }, { replace: true });
  writeFileAtomic(join(ck, LATEST_FILE), `${name}\n`);
  if (opts.keep !== undefined) prune(ck, opts.keep, name);
  return finalDir;
}

/** Deletes all checkpoints but `latest` and the keep-1 others with the highest steps. */
function prune(ck: string, keep: number, latest: string): void {
  const others = listCheckpoints(ck).filter((c) => c.name !== latest).sort((a, b) => b.step - a.step);
  for (const c of others.slice(keep - 1)) removeDirAtomic(c.dir);
}

/**
 * The checkpoint directory `path` refers to: a checkpoint directory itself
 * (it holds model.safetensors), a run directory (its checkpoints/latest), or
 * a checkpoints directory (its latest). Without a pointer, the highest step.
 */
export function resolveCheckpoint(path: string): string {
  const op = 'loadCheckpoint';
  const abs = resolve(path);
  let st;
  try {
    st = statSync(abs);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new SparselmError(`${op}: ${abs} does not exist`);
    throw ioError(op, abs, e);
  }
  if (!st.isDirectory()) throw new SparselmError(`${op}: ${abs} is not a directory (give a checkpoint directory or a run directory)`);
  if (isTempName(basename(abs))) throw new SparselmError(`${op}: ${abs} is the temporary directory of an unfinished save, not a checkpoint`);
  if (existsSync(join(abs, FILES.model))) return abs;

  const ck = existsSync(join(abs, CHECKPOINTS_DIR)) ? join(abs, CHECKPOINTS_DIR) : abs;
  const pointer = readPointer(ck);
  if (pointer !== null) {
    const dir = join(ck, pointer);
    if (!existsSync(dir)) throw new SparselmError(`${op}: ${join(ck, LATEST_FILE)} names ${pointer}, which does not exist in ${ck}`);
    return dir;
  }
  const all = listCheckpoints(ck);
  if (all.length === 0) {
    throw new SparselmError(`${op}: ${abs} is neither a checkpoint directory (no ${FILES.model}) nor a run directory with checkpoints (no ${CHECKPOINTS_DIR}/${LATEST_FILE}, no step-* directories)`);
  }
  return all[all.length - 1].dir;
}

function readJson(op: string, file: string, required: boolean): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      if (!required) return undefined;
      throw new SparselmError(`${op}: ${file} is missing`);
    }
    throw ioError(op, file, e);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new SparselmError(`${op}: ${file}: invalid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(v)) throw new SparselmError(`${op}: ${file}: must hold a JSON object`);
  return v;
}

/** Loads a checkpoint (or the latest of a run directory); see resolveCheckpoint for what `path` may be. */
export function loadCheckpoint(path: string, opts: LoadOptions = {}): LoadedCheckpoint {
  const op = 'loadCheckpoint';
  const dir = resolveCheckpoint(path);
  const modelFile = join(dir, FILES.model);
  if (!existsSync(modelFile)) throw new SparselmError(`${op}: ${dir}: ${FILES.model} is missing`);
  const model = readSafetensors(modelFile, { device: opts.device });
  const meta = model.metadata;
  let formatVersion = FORMAT_VERSION;
  if (meta.format === 'sparselm') {
    formatVersion = Number(meta.format_version);
    if (formatVersion !== FORMAT_VERSION) {
      throw new SparselmError(`${op}: ${modelFile}: format version ${meta.format_version}; this sparselm (${sparselmVersion()}) reads version ${FORMAT_VERSION}`);
    }
  }
  const config = readJson(op, join(dir, FILES.config), true) as Record<string, unknown>;
  if (typeof config.version !== 'number') throw new SparselmError(`${op}: ${join(dir, FILES.config)}: no numeric 'version' field`);
  const tokenizer = readJson(op, join(dir, FILES.tokenizer), true) as Record<string, unknown>;
  const trainerFile = join(dir, FILES.trainer);
  const trainerJson = readJson(op, trainerFile, false);
  if (trainerJson && trainerJson.format_version !== FORMAT_VERSION) {
    throw new SparselmError(`${op}: ${trainerFile}: format version ${String(trainerJson.format_version)}; this sparselm reads version ${FORMAT_VERSION}`);
  }
  const dirStep = STEP_DIR.exec(basename(dir));
  const step = trainerJson && typeof trainerJson.step === 'number' ? trainerJson.step
    : meta.step !== undefined ? Number(meta.step)
      : dirStep ? Number(dirStep[1]) : 0;

  const out: LoadedCheckpoint = {
    dir, step, formatVersion, sparselmVersion: meta.sparselm_version ?? 'unknown', params: model.tensors, config, tokenizer,
  };
  const optFile = join(dir, FILES.optimizer);
  if (existsSync(optFile)) {
    const state = trainerJson?.optimizer;
    if (!isPlainObject(state)) throw new SparselmError(`${op}: ${dir}: ${FILES.optimizer} is present but ${FILES.trainer} has no 'optimizer' object`);
    out.optimizer = { tensors: readSafetensors(optFile, { device: opts.device }).tensors, state };
  }
  if (trainerJson && isPlainObject(trainerJson.trainer)) out.trainer = trainerJson.trainer;
  return out;
}

/**
 * Checks loaded parameters against the names and shapes a model expects;
 * one error lists every missing, unexpected and mis-shaped tensor.
 */
export function validateAgainst(params: Record<string, Tensor>, expected: Record<string, Shape>, where = 'checkpoint'): void {
  const missing: string[] = [];
  const wrong: string[] = [];
  for (const [name, shape] of Object.entries(expected)) {
    const t = params[name];
    if (!t) missing.push(`${name} ${fmtShape(shape)}`);
    else if (!sameShape(t.shape, shape)) wrong.push(`${name} is ${fmtShape(t.shape)}, the model expects ${fmtShape(shape)}`);
  }
  const unexpected = Object.keys(params).filter((n) => !(n in expected)).map((n) => `${n} ${fmtShape(params[n].shape)}`);
  if (missing.length + wrong.length + unexpected.length === 0) return;
  const list = (label: string, items: string[]): string =>
    items.length === 0 ? '' : `\n  ${label} (${items.length}): ${items.slice(0, 20).join('; ')}${items.length > 20 ? `; ... and ${items.length - 20} more` : ''}`;
  throw new SparselmError(`validateAgainst: ${where}: parameters do not match the model${list('missing', missing)}${list('unexpected', unexpected)}${list('wrong shape', wrong)}`);
}
