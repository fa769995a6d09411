/**
 * Reads what `sparselm report` plots from a run directory: the training and
 * evaluation lines of metrics.jsonl, the model config of the latest
 * checkpoint, and the optional inputs that other commands write beside them
 * (analysis.json, sweep.json, calibration.json). A sweep directory (written
 * by `sparselm sweep`: a depth × width sweep.json and one run directory per
 * configuration, no metrics.jsonl of its own) stands for its configurations'
 * runs plus the sweep (readInputs).
 *
 * Not a validator of those files: a run may still be training, so a torn last
 * line of metrics.jsonl is skipped, and an optional input that is absent or
 * unreadable is simply reported as absent. Invariant: every number returned
 * is finite; lines without a finite `step` are ignored.
 */

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { SparselmError } from '../tensor/errors.js';
import { findDepthWidthSweep, type DepthWidthSweep } from './extras.js';

/** One `{"step":..,"loss":..,"sparsity":{..}}` line: fraction nonzero per FF layer. */
export interface TrainPoint {
  step: number;
  loss: number | null;
  sparsity: Record<string, number>;
}

/** One `{"step":..,"val_loss":..,"val_sparsity":{..}}` line. */
export interface EvalPoint {
  step: number;
  valLoss: number | null;
  valBitsPerByte: number | null;
  sparsity: Record<string, number>;
}

export interface RunData {
  /** Display name: the directory's base name, made unique among the runs. */
  name: string;
  dir: string;
  train: TrainPoint[];
  evals: EvalPoint[];
  /** The latest checkpoint's config.json, or null when there is none yet. */
  config: Record<string, unknown> | null;
  /** Parsed optional inputs, null when the file is absent or not JSON. */
  analysis: unknown;
  sweep: unknown;
  calibration: unknown;
  /** metrics.jsonl lines that were not JSON objects (e.g. a torn last line). */
  skippedLines: number;
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function numberRecord(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return out;
  for (const [k, x] of Object.entries(v)) if (finite(x)) out[k] = x;
  return out;
}

function readJsonOrNull(path: string): unknown {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return null;
  }
}

/** The config.json of `checkpoints/latest` if present, else of the highest `step-N`. */
function latestConfig(dir: string): Record<string, unknown> | null {
  const ckDir = join(dir, 'checkpoints');
  if (!existsSync(ckDir)) return null;
  const candidates = ['latest', ...readdirSync(ckDir).filter((n) => /^step-\d+$/.test(n)).sort((a, b) => Number(b.slice(5)) - Number(a.slice(5)))];
  for (const c of candidates) {
    const cfg = readJsonOrNull(join(ckDir, c, 'config.json'));
    if (cfg !== null && typeof cfg === 'object' && !Array.isArray(cfg)) return cfg as Record<string, unknown>;
  }
  return null;
}

export function readRun(dirArg: string, name: string): RunData {
  const dir = resolve(dirArg);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new SparselmError(`report: '${dirArg}' is not a run directory`);
  const metricsPath = join(dir, 'metrics.jsonl');
  if (!existsSync(metricsPath)) throw new SparselmError(`report: '${dirArg}' has no metrics.jsonl`);
  const train: TrainPoint[] = [];
  const evals: EvalPoint[] = [];
  let skippedLines = 0;
  for (const line of readFileSync(metricsPath, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      skippedLines++;
      continue;
    }
    if (o === null || typeof o !== 'object' || Array.isArray(o)) {
      skippedLines++;
      continue;
    }
    const r = o as Record<string, unknown>;
    if (!finite(r.step)) continue;
    if ('val_loss' in r || 'val_sparsity' in r) {
      evals.push({
        step: r.step,
        valLoss: finite(r.val_loss) ? r.val_loss : null,
        valBitsPerByte: finite(r.val_bits_per_byte) ? r.val_bits_per_byte : null,
        sparsity: numberRecord(r.val_sparsity),
      });
    } else {
      train.push({ step: r.step, loss: finite(r.loss) ? r.loss : null, sparsity: numberRecord(r.sparsity) });
    }
  }
  return {
    name,
    dir,
    train,
    evals,
    config: latestConfig(dir),
    analysis: readJsonOrNull(join(dir, 'analysis.json')),
    sweep: readJsonOrNull(join(dir, 'sweep.json')),
    calibration: readJsonOrNull(join(dir, 'calibration.json')),
    skippedLines,
  };
}

/** Reads every run; names are base names, suffixed `#2`, `#3` when two runs share one. */
export function readRuns(dirs: string[]): RunData[] {
  const seen = new Map<string, number>();
  return dirs.map((d) => {
    const base = basename(resolve(d));
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    return readRun(d, n === 1 ? base : `${base}#${n}`);
  });
}

/** A depth × width sweep to plot, named after its directory (or the run that carries it). */
export interface SweepData extends DepthWidthSweep {
  name: string;
  dir: string;
}

function isDir(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}

/**
 * The runs and the depth × width sweeps behind the given directories. A
 * directory without metrics.jsonl whose sweep.json is a depth × width sweep is
 * a sweep directory: each configuration's run directory that exists becomes a
 * run (a sweep still training has fewer), and the sweep is plotted. A run
 * directory whose sweep.json is a depth × width sweep adds that sweep too.
 * Any other directory is read as a run (readRun's errors apply).
 */
export function readInputs(dirs: string[]): { runs: RunData[]; sweeps: SweepData[] } {
  const runDirs: string[] = [];
  const sweeps: SweepData[] = [];
  for (const d of dirs) {
    const dir = resolve(d);
    const sweep = isDir(dir) && !existsSync(join(dir, 'metrics.jsonl')) ? findDepthWidthSweep(readJsonOrNull(join(dir, 'sweep.json'))) : null;
    if (!sweep) {
      runDirs.push(d);
      continue;
    }
    sweeps.push({ name: basename(dir), dir, ...sweep });
    const raw = readJsonOrNull(join(dir, 'sweep.json')) as { configs?: { dir?: unknown; name?: unknown }[] };
    for (const c of raw.configs ?? []) {
      const sub = typeof c.dir === 'string' ? c.dir : typeof c.name === 'string' ? c.name : null;
      if (sub !== null && existsSync(join(dir, sub, 'metrics.jsonl'))) runDirs.push(join(dir, sub));
    }
  }
  const runs = readRuns(runDirs);
  for (const r of runs) {
    const s = findDepthWidthSweep(r.sweep);
    if (s && !sweeps.some((x) => x.dir === r.dir)) sweeps.push({ name: r.name, dir: r.dir, ...s });
  }
  if (runs.length === 0 && sweeps.length === 0) throw new SparselmError('report: no run directories given');
  return { runs, sweeps };
}

/** Layer names in model order: `blk.2` before `blk.10`. */
export function sortLayers(names: Iterable<string>): string[] {
  const key = (s: string) => Number(/(\d+)(?!.*\d)/.exec(s)?.[1] ?? NaN);
  return [...new Set(names)].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (Number.isFinite(ka) && Number.isFinite(kb) && ka !== kb) return ka - kb;
    return a < b ? -1 : a > b ? 1 : 0;
  });
}
