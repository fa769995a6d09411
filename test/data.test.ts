/**
 * Reading documents: the bundled sample parses in C4's format; bad lines are
 * counted skips with their file and line; unreadable files and corrupt gzip
 * streams are errors naming the file. When the full corpus is present
 * (../shared/corpus, CI and developers' machines), the sample is checked to
 * be a verbatim prefix-cut of it.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readDocuments, samplePath, type SkipReport } from '../src/data/documents.js';
import { SparselmError } from '../src/index.js';

async function collect(paths: string[]): Promise<{ texts: string[]; skips: SkipReport[] }> {
  const texts: string[] = [];
  const skips: SkipReport[] = [];
  for await (const d of readDocuments(paths, { onSkip: (s) => skips.push(s) })) texts.push(d.text);
  return { texts, skips };
}

describe('documents', () => {
  it('the bundled sample parses, with the sizes its README states', async () => {
    const train = await collect([samplePath('train')]);
    const valid = await collect([samplePath('validation')]);
    assert.equal(train.texts.length, 666);
    assert.equal(train.texts.reduce((n, t) => n + t.length, 0), 2_989_821);
    assert.equal(valid.texts.length, 62);
    assert.equal(train.skips.length + valid.skips.length, 0);
  });

  const corpus = new URL('../../../shared/corpus/linux-docs.validation.json.gz', import.meta.url).pathname;
  it('the sample is cut verbatim from the full corpus', { skip: existsSync(corpus) ? false : 'full corpus not present' }, async () => {
    const full = readDocuments([corpus]);
    const wanted = (await collect([samplePath('validation')])).texts;
    let i = 0;
    for await (const d of full) {
      if (i < wanted.length && d.text === wanted[i]) i++;
    }
    assert.equal(i, wanted.length, 'every sample document appears in the corpus, in order');
  });

  it('skips bad lines with their file and line, reads text files and directories', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sparselm-data-'));
    const lines = ['{"text": "one"}', 'not json', '{"url": "x"}', '{"text": ""}', '', '{"text": "two", "url": "u"}'].join('\n');
    writeFileSync(join(dir, 'a.json.gz'), gzipSync(lines));
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'b.txt'), 'three');
    const { texts, skips } = await collect([dir]);
    assert.deepEqual(texts, ['one', 'two', 'three']);
    assert.deepEqual(skips.map((s) => [s.line, s.reason]), [[2, 'invalid JSON'], [3, 'no string field "text"'], [4, 'empty document']]);
    assert.ok(skips.every((s) => s.file.endsWith('a.json.gz')));
  });

  it('a missing file and corrupt gzip are clear errors', async () => {
    await assert.rejects(collect(['/nonexistent/shard.json.gz']), (e: unknown) =>
      e instanceof SparselmError && /^data: cannot read '\/nonexistent\/shard.json.gz': ENOENT/.test(e.message));
    const dir = mkdtempSync(join(tmpdir(), 'sparselm-data-'));
    const good = gzipSync('{"text": "a"}\n'.repeat(1000));
    const bad = Buffer.concat([good.subarray(0, 40), Buffer.from('garbage-garbage-garbage'), good.subarray(40)]);
    writeFileSync(join(dir, 'bad.json.gz'), bad);
    await assert.rejects(collect([join(dir, 'bad.json.gz')]), (e: unknown) =>
      e instanceof SparselmError && /^data: cannot read '.*bad\.json\.gz' after line \d+: corrupt gzip data/.test(e.message));
  });
});
