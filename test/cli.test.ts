/**
 * The command line as a user runs it: the demo trains, beats the unigram
 * entropy of the data, reports sparsity, samples text and exits; train and
 * eval work together through a run directory; bad flags and inputs are
 * one-line errors with exit code 1.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readDocuments, samplePath } from '../src/data/documents.js';

const MAIN = new URL('../src/cli/main.js', import.meta.url).pathname;

function sparselm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Entropy in bits of the byte distribution of the validation sample: what a model with no context would get. */
async function unigramBitsPerByte(): Promise<number> {
  const counts = new Float64Array(256);
  let n = 0;
  for await (const d of readDocuments([samplePath('validation')])) {
    for (const b of Buffer.from(d.text, 'utf8')) { counts[b]++; n++; }
  }
  return -counts.reduce((h, c) => (c > 0 ? h + (c / n) * Math.log2(c / n) : h), 0);
}

describe('sparselm CLI', () => {
  it('demo trains a Sparse FF model below the unigram entropy, reports sparsity and samples text', async () => {
    const r = sparselm(['demo', '--steps', '120', '--max-tokens', '20']);
    assert.equal(r.status, 0, r.stderr);
    const m = /validation: loss [\d.]+ \| ([\d.]+) bits per byte/.exec(r.stdout);
    assert.ok(m, `no validation line in:\n${r.stdout}`);
    const unigram = await unigramBitsPerByte();
    assert.ok(Number(m[1]) < unigram, `validation ${m[1]} bits/byte should beat the unigram entropy ${unigram.toFixed(3)}`);
    const s = /nonzero FF activations per token: blk\.0 ([\d.]+)%, blk\.1 ([\d.]+)%/.exec(r.stdout);
    assert.ok(s, r.stdout);
    // Sparse FF with blocks of 16: at most one active neuron per block.
    for (const v of [s[1], s[2]]) assert.ok(Number(v) > 0 && Number(v) <= 100 / 16, `${v}% nonzero`);
    assert.match(r.stdout, /\nThe kernel .+/);
  });

  it('train then eval through a run directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sparselm-cli-'));
    const t = sparselm(['train', '--preset', 'tiny', '--out', dir, '--steps', '20', '--warmup', '2', '--context-length', '32', '--ffn', 'topk', '--topk-k', '8', '--eval-every', '0', '--checkpoint-every', '10', '--eval-tokens', '2048']);
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stdout, /final validation loss [\d.]+/);
    assert.match(t.stderr, /"ffn":"topk"/, 'the effective config is printed at start');
    const e = sparselm(['eval', '--model', dir, '--tokens', '2048', '--json']);
    assert.equal(e.status, 0, e.stderr);
    const r = JSON.parse(e.stdout) as { loss: number; perplexity: number; bitsPerByte: number; tokens: number; step: number; sparsity: Record<string, number> };
    assert.equal(r.step, 20);
    assert.ok(Math.abs(r.perplexity - Math.exp(r.loss)) < 1e-9 * r.perplexity);
    assert.ok(r.tokens >= 2048);
    // Top-k keeps at most 8 of 128 activations per token.
    for (const v of Object.values(r.sparsity)) assert.ok(v > 0 && v <= 8 / 128 + 1e-12, `sparsity ${v}`);
  });

  it('unknown flags, bad values and bad inputs are clear errors', () => {
    const cases: [string[], RegExp][] = [
      [['demo', '--stepz', '3'], /unknown option '--stepz'/],
      [['demo', '--steps', '-4'], /--steps must be a positive integer, got '-4'/],
      [['train', '--out', '/tmp/x', '--ffn', 'wide'], /^sparselm: config: ffn: must be one of dense, topk, sparse, got 'wide'/m],
      [['train', '--out', '/tmp/x', '--d-ff', 'lots'], /--d-ff takes a number, got 'lots'/],
      [['train', '--out', '/tmp/x', '--preset', 'huge'], /^sparselm: preset: unknown preset 'huge' \(known: 17b-block, 800m, llama, small, tiny\)/m],
      [['eval', '--model', '/nonexistent/run'], /^sparselm: .*\/nonexistent\/run/m],
    ];
    for (const [args, pattern] of cases) {
      const r = sparselm(args);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
    }
  });
});
