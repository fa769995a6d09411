/**
 * `sparselm analyze --model runs/x [--data shards...] [--tokens N] [--json]
 * [--calibration] [--corrupt-inputs F] [--save]`:
 * the Lazy Neuron statistics of every FF layer of a trained model over N
 * tokens of text (src/analysis/analyze.ts computes them). Text output is one
 * table per statistic with a row per layer; --json prints every number.
 *
 * --calibration adds next-token calibration over the same tokens
 * (src/analysis/calibration.ts: accuracy, confidence, NLL, ECE with equal-
 * width and equal-mass bins); --corrupt-inputs F (implies --calibration)
 * measures it with a fraction F of the input tokens replaced by random ids
 * (the activation statistics stay those of the clean inputs). Calibration
 * is a second forward pass over the same tokens, so it doubles the run time.
 * --save writes the --json object as `analysis.json` and, with calibration,
 * the calibration object as `calibration.json` into the run directory
 * (atomically), where `sparselm report` plots them.
 */

import { basename, dirname, join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { analyzeModel, type AnalysisResult } from '../analysis/analyze.js';
import { calibrateModel, type CalibrationResult } from '../analysis/calibration.js';
import { writeFileAtomic } from '../io/atomic.js';
import { CHECKPOINTS_DIR } from '../io/checkpoint.js';
import { samplePath } from '../data/documents.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { makeConfig } from '../models/config.js';
import { checkParameters } from '../models/transformer.js';
import { tensor } from '../tensor/create.js';
import { intArg } from './args.js';


const fraction = (value: string): number => {
  const f = Number(value);
  if (value.trim() === '' || !(f >= 0 && f <= 1)) throw new InvalidArgumentError(`--corrupt-inputs must be a fraction in [0, 1], got '${value}'`);
  return f;
};

const seedArg = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new InvalidArgumentError(`--corrupt-seed must be an integer in [0, 2^32), got '${value}'`);
  return n;
};

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/** Right-aligned columns under a title. */
function table(title: string, header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return `${title}\n${line(header)}\n${rows.map(line).join('\n')}\n`;
}

export function formatAnalysis(r: AnalysisResult, source: { checkpoint: string; step: number }): string {
  const out: string[] = [];
  out.push(`checkpoint ${source.checkpoint} (step ${source.step})\n`
    + `model: ffn ${r.model.ffn}, activation ${r.model.activation}, d_ff ${r.model.d_ff}, ${r.model.n_layers} layers`
    + `${r.model.topk_k ? `, top-k ${r.model.topk_k.join(',')}` : ''}${r.model.sparse_block ? `, block ${r.model.sparse_block}` : ''}\n`
    + `data (${r.split}): ${r.data.join(', ')}\n`
    + `tokens ${r.tokens.toLocaleString()} (${r.sequences} sequences of ${r.seqLen})\n`);
  for (const n of r.notes) out.push(`note: ${n}\n`);
  const L = r.layers;
  out.push(table('nonzero activations per token (a != 0; percentiles exact)',
    ['layer', 'mean', 'std', 'min', 'p5', 'p25', 'median', 'p75', 'p95', 'max'],
    L.map((l) => { const f = l.nonzero.fraction; return [l.layer, ...[f.mean, f.std, f.min, f.p5, f.p25, f.median, f.p75, f.p95, f.max].map(pct)]; })));
  out.push(table('near-zero activations per token (|a| <= t, mean over tokens)',
    ['layer', ...(L[0]?.nearZero.thresholds.map((t) => `t=${t.threshold}`) ?? [])],
    L.map((l) => [l.layer, ...l.nearZero.thresholds.map((t) => pct(t.fraction))])));
  out.push(table(`neuron firing frequency (fraction of tokens where nonzero; histogram: neurons per 1/${L[0]?.firing.histogram.length ?? 0} of frequency)`,
    ['layer', 'dead', 'always on', 'nonzero among live', 'histogram'],
    L.map((l) => [l.layer, `${l.firing.dead}/${l.firing.dff}`, `${l.firing.alwaysOn}/${l.firing.dff}`, pct(l.firing.liveSparsity), l.firing.histogram.join(' ')])));
  out.push(table('share of activation mass in the top-k entries per token (L1 | L2², mean over tokens)',
    ['layer', ...(L[0]?.topMass.ks.map((k) => `k=${k.k}`) ?? [])],
    L.map((l) => [l.layer, ...l.topMass.ks.map((k) => `${pct(k.l1Share)} | ${pct(k.l2Share)}`)])));
  out.push(table('active-set overlap of consecutive tokens (mean Jaccard; 1 for two empty sets)',
    ['layer', 'pairs', 'Jaccard'],
    L.map((l) => [l.layer, l.overlap.pairs.toLocaleString(), l.overlap.meanJaccard === null ? '-' : l.overlap.meanJaccard.toFixed(4)])));
  const ctrl = L.flatMap((l) => (l.controller ? [{ layer: l.layer, c: l.controller }] : []));
  if (ctrl.length > 0) {
    out.push(table('Sparse FF controller: use of the N neurons of each block (over blocks)',
      ['layer', 'blocks x N', 'mean H/log N', 'min H/log N', 'mean max share', 'max share'],
      ctrl.map(({ layer, c }) => [layer, `${c.blocks} x ${c.blockSize}`, c.meanNormEntropy.toFixed(4), c.minNormEntropy.toFixed(4), pct(c.meanMaxShare), pct(c.maxMaxShare)])));
  }
  if (r.calibration) out.push(formatCalibration(r.calibration));
  return out.join('\n');
}

export function formatCalibration(c: CalibrationResult): string {
  const head = `next-token calibration over ${c.tokens.toLocaleString()} predictions`
    + (c.corrupt ? ` (inputs corrupted: ${c.corrupt.replaced.toLocaleString()} replaced at fraction ${c.corrupt.fraction}, seed ${c.corrupt.seed}; `
      + `${c.corrupt.changed.toLocaleString()} changed; the activation statistics above are of clean inputs)` : '')
    + `\naccuracy ${pct(c.accuracy)}, mean confidence ${pct(c.meanConfidence)}, NLL ${c.nll.toFixed(4)} nats/token, `
    + `ECE ${c.equalWidth.ece.toFixed(4)} (${c.equalWidth.bins.length} equal-width bins), ${c.equalMass.ece.toFixed(4)} (${c.equalMass.bins.length} equal-mass bins)\n`;
  const num = (x: number | null) => (x === null ? '-' : x.toFixed(4));
  return head + '\n' + table('reliability diagram (equal-width bins)', ['confidence bin', 'count', 'mean confidence', 'accuracy'],
    c.equalWidth.bins.map((b, i, all) => [`[${b.lo.toFixed(3)}, ${b.hi.toFixed(3)}${i === all.length - 1 ? ']' : ')'}`, b.count.toLocaleString(), num(b.confidence), num(b.accuracy)]));
}

/** The run directory of a checkpoint `<run>/checkpoints/<name>`, else the directory given. */
function runDirOf(checkpointDir: string, given: string): string {
  return basename(dirname(checkpointDir)) === CHECKPOINTS_DIR ? dirname(dirname(checkpointDir)) : given;
}

export function addAnalyzeCommand(program: Command): void {
  program
    .command('analyze')
    .description('Lazy Neuron statistics of every FF layer: nonzero fraction, near-zero fractions, dead neurons, top-k mass, active-set overlap, controller use')
    .requiredOption('--model <dir>', 'a run directory or checkpoint directory')
    .option('--data <paths...>', 'shards, text files or directories (default: the bundled sample\'s --split-name split)')
    .addOption(new Option('--split-name <name>', 'which split the data is (labels the output; picks the bundled sample without --data)').choices(['train', 'validation']).default('validation'))
    .option('--tokens <n>', 'tokens to analyse (whole sequences of context_length)', intArg('--tokens'), 65536)
    .option('--batch <n>', 'sequences per forward pass', intArg('--batch'), 8)
    .option('--device <name>', 'ref or cpu', 'cpu')
    .option('--json', 'print every number as JSON', false)
    .option('--calibration', 'also measure next-token calibration (accuracy, confidence, NLL, ECE, reliability diagram)', false)
    .option('--corrupt-inputs <fraction>', 'replace this fraction of input tokens with uniformly random ids before measuring calibration (implies --calibration)', fraction)
    .option('--corrupt-seed <n>', 'seed of the input corruption', seedArg, 1)
    .option('--save', 'write analysis.json (and calibration.json) into the run directory for `sparselm report`', false)
    .action(async (o: {
      model: string; data?: string[]; splitName: 'train' | 'validation'; tokens: number; batch: number; device: string; json: boolean;
      calibration: boolean; corruptInputs?: number; corruptSeed: number; save: boolean;
    }) => {
      const ck = loadCheckpoint(o.model, { device: o.device });
      const config = makeConfig(ck.config);
      const params = Object.fromEntries(Object.entries(ck.params).map(([k, v]) => [k, tensor(v.toArray(), v.shape, { device: o.device })]));
      checkParameters(config, params);
      const tokenizer = loadTokenizer(ck.tokenizer);
      const data = o.data ?? [samplePath(o.splitName)];
      const r: AnalysisResult = await analyzeModel(config, params, tokenizer, data, { tokens: o.tokens, batchSize: o.batch, device: o.device, split: o.splitName });
      if (o.calibration || o.corruptInputs !== undefined) {
        const corrupt = o.corruptInputs === undefined ? undefined : { fraction: o.corruptInputs, seed: o.corruptSeed };
        r.calibration = await calibrateModel(config, params, tokenizer, data, { tokens: o.tokens, batchSize: o.batch, device: o.device, corrupt });
      }
      const full = { checkpoint: ck.dir, step: ck.step, ...r };
      if (o.json) process.stdout.write(JSON.stringify(full, null, 2) + '\n');
      else process.stdout.write(formatAnalysis(r, { checkpoint: ck.dir, step: ck.step }));
      if (o.save) {
        const dir = runDirOf(ck.dir, o.model);
        const saved = [join(dir, 'analysis.json')];
        writeFileAtomic(saved[0], JSON.stringify(full, null, 1) + '\n');
        if (r.calibration) {
          saved.push(join(dir, 'calibration.json'));
          writeFileAtomic(saved[1], JSON.stringify({ checkpoint: ck.dir, step: ck.step, data: r.data, split: r.split, ...r.calibration }, null, 1) + '\n');
        }
        // Under --json stdout is the JSON object alone.
        (o.json ? process.stderr : process.stdout).write(`wrote ${saved.join(', ')}\n`);
      }
    });
}
