/**
 * `sparselm sweep` as a user runs it, on a tiny grid (1, 2 layers × d_ff 16,
 * 32; four steps of the tiny preset on the bundled sample): sweep.json has
 * one entry per configuration whose numbers are those `sparselm analyze`
 * prints for the same run; a rerun skips every finished configuration; an
 * interrupted configuration is resumed from its checkpoint and ends with the
 * numbers of an uninterrupted run; bad flags are one-line errors naming the
 * flag, given before anything trains.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { intListArg, runSweep, type SweepFile, type SweepOptions } from '../src/cli/sweep.js';
import { SparselmError } from '../src/tensor/errors.js';
import { listCheckpoints } from '../src/io/checkpoint.js';
import type { AnalysisResult } from '../src/analysis/analyze.js';

const MAIN = new URL('../src/cli/main.js', import.meta.url).pathname;

function sparselm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const TRAIN = ['--preset', 'tiny', '--steps', '4', '--warmup', '1', '--eval-every', '0', '--eval-tokens', '512', '--checkpoint-every', '2', '--log-every', '2'];
const sweepArgs = (out: string) => ['sweep', '--layers', '1,2', '--d-ff', '16,32', '--out', out, '--analyze-tokens', '256', '--threads', '1', ...TRAIN];
const readSweep = (out: string) => JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')) as SweepFile;
/** An entry without its wall-clock throughput, which differs between two runs of the same computation. */
const numbers = (e: SweepFile['configs'][number]) => ({ ...e, tokens_per_s: null });

describe('sparselm sweep', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'sparselm-sweep-')), 'grid');

  it('trains and analyses every configuration; the numbers are those of sparselm analyze', () => {
    const r = sparselm(sweepArgs(out));
    assert.equal(r.status, 0, r.stderr);
    for (let i = 1; i <= 4; i++) assert.match(r.stderr, new RegExp(`\\[sweep ${i}/4\\] L\\d-ff\\d+: training`), 'progress names the configuration');
    assert.match(r.stderr, /train 4\/4 \| loss/, 'the trainer\'s progress passes through');
    const s = readSweep(out);
    assert.equal(s.kind, 'depth-width');
    assert.deepEqual(s.configs.map((c) => [c.name, c.n_layers, c.d_ff]), [['L1-ff16', 1, 16], ['L1-ff32', 1, 32], ['L2-ff16', 2, 16], ['L2-ff32', 2, 32]]);
    for (const c of s.configs) {
      assert.equal(c.steps, 4);
      assert.equal(c.tokens_trained, 4 * 8 * 64, 'batch 8 × context 64 per step (tiny preset)');
      assert.equal(c.validation.layers.length, c.n_layers);
      assert.equal(c.train.layers.length, c.n_layers);
      assert.ok(c.final_val_loss !== null && Number.isFinite(c.final_val_loss));
      assert.ok(existsSync(join(out, c.dir, 'analysis.json')), 'the report\'s analysis.json is saved');
    }
    assert.ok(s.configs[3].params > s.configs[2].params && s.configs[2].params > s.configs[0].params, 'parameters grow with depth and width');
    // The printed table has a row per configuration with its mean % nonzero.
    const row = new RegExp(`L2-ff32\\s+2\\s+32\\s+[\\d,]+\\s+${s.configs[3].final_val_loss?.toFixed(4)}\\s+${(100 * s.configs[3].validation.mean).toFixed(2)}%`);
    assert.match(r.stdout, row);

    // Against `sparselm analyze` on the same run, validation and training text.
    const c = s.configs[3];
    for (const [split, mine] of [['validation', c.validation], ['train', c.train]] as const) {
      const a = sparselm(['analyze', '--model', join(out, c.dir), '--tokens', '256', '--split-name', split, '--json']);
      assert.equal(a.status, 0, a.stderr);
      const ref = JSON.parse(a.stdout) as AnalysisResult;
      assert.equal(ref.tokens, mine.tokens);
      assert.deepEqual(mine.layers, ref.layers.map((l) => ({ layer: l.layer, mean: l.nonzero.fraction.mean, median: l.nonzero.fraction.median, std: l.nonzero.fraction.std })));
      assert.equal(mine.mean, (ref.layers[0].nonzero.fraction.mean + ref.layers[1].nonzero.fraction.mean) / 2);
    }
  });

  it('skips finished configurations on a rerun', () => {
    const before = readSweep(out);
    const r = sparselm(sweepArgs(out));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.match(/: done, skipped/g)?.length, 4, r.stderr);
    assert.doesNotMatch(r.stderr, /training|analysing/);
    assert.deepEqual(readSweep(out), before);
  });

  it('resumes an interrupted configuration from its checkpoint, ending where an uninterrupted run ends', () => {
    const before = readSweep(out);
    // Interrupted after step 2: step 4 never written, the pointer at step 2, no sweep entry yet.
    const run = join(out, 'L2-ff16');
    const last = listCheckpoints(run).at(-1);
    assert.equal(last?.step, 4);
    rmSync(last.dir, { recursive: true });
    writeFileSync(join(run, 'checkpoints', 'latest'), `${listCheckpoints(run).at(-1)?.name}\n`);
    writeFileSync(join(out, 'sweep.json'), JSON.stringify({ ...before, configs: before.configs.filter((c) => c.name !== 'L2-ff16') }));
    const r = sparselm(sweepArgs(out));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /\[sweep 3\/4\] L2-ff16: training \(n_layers 2, d_ff 16\) resuming at step 2, to step 4/);
    assert.equal(r.stderr.match(/: done, skipped/g)?.length, 3);
    const after = readSweep(out);
    assert.deepEqual(after.configs.map((c) => c.name), before.configs.map((c) => c.name), 'grid order kept');
    assert.deepEqual(after.configs.map(numbers), before.configs.map(numbers));
  });

  it('refuses to continue a sweep with other train flags', () => {
    const r = sparselm([...sweepArgs(out), '--seed', '3']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^sparselm: sweep: '.*grid' holds a sweep made with other flags \(train: --preset tiny .*\); rerun with those, or choose another --out\n$/);
  });

  it('names the bad flag, before anything trains', async () => {
    const root = mkdtempSync(join(tmpdir(), 'sparselm-sweep-bad-'));
    const bad = join(root, 'never');
    // From the command line: one line naming the flag, exit code 1, no stack trace.
    const cli: [string[], RegExp][] = [
      [['--layers', '', '--d-ff', '16'], /--layers takes a comma-separated list of positive integers, got ''/],
      [['--layers', '1', '--d-ff', '16,48', '--ffn', 'sparse', '--sparse-block', '32'], /^sparselm: sweep: --layers 1 with --d-ff 16: config: d_ff: d_ff 16 is not a multiple of sparse_block 32\n$/],
      [['--layers', '1', '--d-ff', '16', '--bogus', '3'], /^sparselm: sweep: train flags: unknown option '--bogus'/],
    ];
    for (const [flags, want] of cli) {
      const r = sparselm(['sweep', '--out', bad, '--preset', 'tiny', ...flags]);
      assert.equal(r.status, 1, `${flags.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, want, flags.join(' '));
      assert.ok(!r.stderr.includes('    at '), 'no stack trace');
    }
    // The list parser behind --layers and --d-ff.
    const list = intListArg('--d-ff');
    assert.deepEqual(list('16, 32,64'), [16, 32, 64]);
    assert.throws(() => list('16,2.5'), /--d-ff must be a positive integer, got '2.5'/);
    assert.throws(() => list('1,x'), /--d-ff must be a positive integer, got 'x'/);
    assert.throws(() => list('16,,32'), /--d-ff takes a comma-separated list of positive integers, got '16,,32'/);
    assert.throws(() => list('16,16'), /--d-ff lists a value twice: '16,16'/);
    // The rest in-process: every grid point and train flag is checked before training.
    const cases: [Partial<SweepOptions>, RegExp][] = [
      [{ layers: [] }, /^sweep: --layers must list at least one depth$/],
      [{ trainArgs: ['--ffn', 'wide'] }, /^sweep: --layers 1 with --d-ff 16: config: ffn: must be one of dense, topk, sparse, got 'wide'$/],
      [{ dff: [16, 20], trainArgs: ['--ffn', 'topk', '--topk-k', '18'] }, /^sweep: --layers 1 with --d-ff 16: config: topk_k: each k must be an integer in 1..d_ff \(16\), got 18$/],
      [{ trainArgs: ['--resume'] }, /^sweep: --resume is not a train flag here: a sweep resumes by itself/],
      [{ trainArgs: ['--n-layers', '3'] }, /^sweep: --n-layers is not a train flag here: use --layers <list>/],
      [{ trainArgs: ['--lr', '-1'] }, /^sweep: train flags: .*--lr must be a non-negative number, got '-1'/],
      [{ tokens: 4096, trainArgs: ['--steps', '3'] }, /^sweep: give the budget as --tokens or as --steps, not both$/],
      [{ trainArgs: ['--data', join(root, 'x.txt')] }, /^sweep: --val-data is required/],
    ];
    for (const [o, want] of cases) {
      const opts: SweepOptions = { layers: [1, 2], dff: [16], out: bad, analyzeTokens: 256, log: () => undefined, ...o, trainArgs: ['--preset', 'tiny', ...(o.trainArgs ?? [])] };
      await assert.rejects(runSweep(opts), (e: unknown) => e instanceof SparselmError && want.test(e.message), JSON.stringify(o));
    }
    assert.ok(!existsSync(bad), 'nothing written');
  });
});
