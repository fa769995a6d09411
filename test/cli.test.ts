/**
 * The command line as a user runs it: the demo trains, beats the unigram
 * entropy of the data, samples text and exits; bad flags are one-line errors.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readDocuments, samplePath } from '../src/data/documents.js';

const MAIN = new URL('../src/cli/main.js', import.meta.url).pathname;

function sparselm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Entropy in bits of the byte distribution of the validation sample: what a model with no context would get. */
async function unigramBitsPerByte(): Promise<number> {
  const counts = new Float64Array(256);
  let n = 0;
  for await (const d of readDocuments([samplePath('validation')])) {
    for (const b of Buffer.from(d.text + '\n\n', 'utf8')) { counts[b]++; n++; }
  }
  return -counts.reduce((h, c) => (c > 0 ? h + (c / n) * Math.log2(c / n) : h), 0);
}

describe('sparselm CLI', () => {
  it('demo trains below the unigram entropy, reports sparsity and samples text', async () => {
    const r = sparselm(['demo', '--steps', '150', '--sample-bytes', '40']);
    assert.equal(r.status, 0, r.stderr);
    const m = /validation: ([\d.]+) bits per byte .* nonzero per token: ([\d.]+)%/.exec(r.stdout);
    assert.ok(m, `no validation line in:\n${r.stdout}`);
    const unigram = await unigramBitsPerByte();
    assert.ok(Number(m[1]) < unigram, `validation ${m[1]} bits/byte should beat the unigram entropy ${unigram.toFixed(3)}`);
    assert.ok(Number(m[2]) > 0 && Number(m[2]) < 100);
    assert.match(r.stdout, /step 150\/150 \| loss [\d.]+ \| [\d,]+ tokens\/s/);
    assert.match(r.stdout, /sample:\nThe kernel /);
  });

  it('unknown flags and bad values are clear errors', () => {
    const unknown = sparselm(['demo', '--stepz', '3']);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /unknown option '--stepz'/);
    const bad = sparselm(['demo', '--steps', '-4']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--steps must be a positive integer, got '-4'/);
    const device = sparselm(['demo', '--device', 'tpu', '--steps', '1']);
    assert.equal(device.status, 1);
    assert.match(device.stderr, /^sparselm: device: unknown device 'tpu'/m);
  });
});
