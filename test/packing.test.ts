/**
 * Packing: batch shapes and the one-token shift between inputs and targets;
 * the unshuffled stream is exactly `doc eos doc eos ...` epoch after epoch
 * (every token once per epoch); shuffling is a seeded permutation of each
 * block; resuming from `position()` (through JSON) reproduces the exact
 * continuation from every batch of a run that crosses epochs; validation is
 * one deterministic pass; empty data and mismatched resumes are clear errors.
 */

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readDocuments, samplePath } from '../src/data/documents.js';
import { BatchLoader, createLoader, validationBatches, type Batch, type LoaderOptions, type LoaderState } from '../src/data/packing.js';
import { ByteTokenizer, loadTokenizer, trainBpe, type Tokenizer } from '../src/data/tokenizer.js';
import { SparselmError } from '../src/tensor/errors.js';

const byte = new ByteTokenizer();

/** A small corpus over three files (a gzip shard, a plain shard in a subdirectory, a text file); returns the paths and documents in reading order. */
function makeCorpus(): { dir: string; docs: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'sparselm-pack-'));
  const a = ['first document', 'zweites Dokument — ü', 'third 🌍'];
  const b = ['a', 'the fifth one is a little longer than the others, to span sequences'];
  const c = 'plain text file\nwith two lines';
  writeFileSync(join(dir, 'a.json.gz'), gzipSync(a.map((text) => JSON.stringify({ text })).join('\n')));
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'b.jsonl'), b.map((text) => JSON.stringify({ text })).join('\n') + '\n{"text": ""}\n');
  writeFileSync(join(dir, 'sub', 'c.txt'), c);
  return { dir, docs: [...a, ...b, c] };
}

/** The token stream of one epoch: each document's tokens, then eos. */
function epochStream(tok: Tokenizer, docs: string[]): number[] {
  return docs.flatMap((d) => [...tok.encode(d), tok.eos]);
}

/** Each row as its T+1 tokens (inputs and the last target), checking the shift on the way. */
function rows(batch: Batch): number[][] {
  const [B, T] = batch.inputs.shape;
  assert.deepEqual([...batch.targets.shape], [B, T]);
  assert.equal(batch.inputs.dtype, 'int32');
  assert.equal(batch.targets.dtype, 'int32');
  const x = Array.from(batch.inputs.toArray());
  const y = Array.from(batch.targets.toArray());
  const out: number[][] = [];
  for (let b = 0; b < B; b++) {
    const xi = x.slice(b * T, (b + 1) * T);
    const yi = y.slice(b * T, (b + 1) * T);
    assert.deepEqual(yi.slice(0, T - 1), xi.slice(1), 'targets are inputs shifted by one');
    out.push([...xi, yi[T - 1]]);
  }
  return out;
}

async function take(loader: BatchLoader, n: number): Promise<number[][][]> {
  const out: number[][][] = [];
  for (let i = 0; i < n; i++) out.push(rows(await loader.next()));
  return out;
}

const quiet = { onSkip: (): void => {} };

describe('packing', () => {
  let corpus: { dir: string; docs: string[] };
  before(() => { corpus = makeCorpus(); });

  it('batches are int32 [B, T] on the asked device, targets shifted by one', async () => {
    const loader = await createLoader({ paths: [corpus.dir], tokenizer: byte, batchSize: 3, seqLen: 8, device: 'ref', ...quiet });
    const batch = await loader.next();
    assert.deepEqual([...batch.inputs.shape], [3, 8]);
    assert.equal(batch.inputs.device, 'ref');
    assert.equal(batch.targets.device, 'ref');
    rows(batch);
    await loader.close();
  });

  it('unshuffled, the stream is doc eos doc eos ... and every token appears once per epoch', async () => {
    const read: string[] = [];
    for await (const d of readDocuments([corpus.dir], quiet)) read.push(d.text);
    assert.deepEqual(read, corpus.docs, 'the files are read in the order readDocuments reads them');
    const stream = epochStream(byte, corpus.docs);
    const N = stream.length;
    const T = 7;
    const loader = await createLoader({ paths: [corpus.dir], tokenizer: byte, batchSize: 2, seqLen: T, shuffleBuffer: 1, ...quiet });
    const got: number[] = [];
    const epochs: number[] = [];
    while (got.length < 3 * N + 2 * (T + 1)) {
      const batch = await loader.next();
      epochs.push(batch.epoch);
      for (const r of rows(batch)) got.push(...r);
    }
    // Three whole epochs, back to back, each exactly the document stream.
    for (let e = 0; e < 3; e++) assert.deepEqual(got.slice(e * N, (e + 1) * N), stream, `epoch ${e}`);
    assert.equal(stream.filter((t) => t === byte.eos).length, corpus.docs.length, 'one eos after each document');
    assert.equal(epochs[0], 0);
    assert.ok(epochs[epochs.length - 1] >= 3, 'the epoch counter advances');
    assert.deepEqual(epochs, [...epochs].sort((p, q) => p - q));
    await loader.close();
  });

  it('shuffling permutes each block, seeded', async () => {
    const opts: LoaderOptions = { paths: [corpus.dir], tokenizer: byte, batchSize: 4, seqLen: 5, shuffleBuffer: 8, ...quiet };
    const plain = (await take(await createLoader({ ...opts, shuffleBuffer: 1 }), 6)).flat();
    const s1 = (await take(await createLoader({ ...opts, seed: 1 }), 6)).flat();
    const s1again = (await take(await createLoader({ ...opts, seed: 1 }), 6)).flat();
    const s2 = (await take(await createLoader({ ...opts, seed: 2 }), 6)).flat();
    assert.deepEqual(s1again, s1, 'same seed, same order');
    assert.notDeepEqual(s2, s1, 'another seed, another order');
    assert.notDeepEqual(s1, plain, 'shuffled');
    const key = (r: number[]): string => r.join(',');
    for (const [lo, hi] of [[0, 8], [8, 16], [16, 24]]) {
      assert.deepEqual(s1.slice(lo, hi).map(key).sort(), plain.slice(lo, hi).map(key).sort(), `block ${lo / 8} is a permutation of the stream's sequences`);
    }
  });

  it('resuming from position() gives the exact continuation, across blocks, files and epochs', async () => {
    const opts: LoaderOptions = { paths: [corpus.dir], tokenizer: byte, batchSize: 3, seqLen: 6, shuffleBuffer: 5, seed: 7, ...quiet };
    const steps = 40;
    const ahead = 6;
    const original = await createLoader(opts);
    const states: LoaderState[] = [original.position()];
    const batches: number[][][] = [];
    for (let i = 0; i < steps + ahead; i++) {
      batches.push(rows(await original.next()));
      states.push(original.position());
    }
    assert.ok(states[steps].block.epoch >= 2, `the run crosses epochs (reached ${states[steps].block.epoch})`);
    assert.ok(new Set(states.map((s) => s.taken)).size > 1, 'states fall inside blocks too');
    for (let k = 0; k <= steps; k++) {
      const state = JSON.parse(JSON.stringify(states[k])) as LoaderState;
      const resumed = await createLoader({ ...opts, resumeFrom: state });
      assert.deepEqual(resumed.position(), states[k], `position() right after resuming at ${k}`);
      assert.deepEqual(await take(resumed, ahead), batches.slice(k, k + ahead), `continuation after batch ${k}`);
      await resumed.close();
    }
    await original.close();
  });

  it('a resume with other settings or changed data is refused', async () => {
    const opts: LoaderOptions = { paths: [corpus.dir], tokenizer: byte, batchSize: 2, seqLen: 4, shuffleBuffer: 3, ...quiet };
    const loader = await createLoader(opts);
    await take(loader, 5);
    const state = loader.position();
    await assert.rejects(createLoader({ ...opts, seqLen: 5, resumeFrom: state }), /resume: the state was made with seqLen 4, this loader has 5/);
    await assert.rejects(createLoader({ ...opts, seed: 3, resumeFrom: state }), /seed/);
    await assert.rejects(createLoader({ ...opts, tokenizer: loadTokenizer({ kind: 'gpt2' }), resumeFrom: state }), /tokenizer "byte:257:[0-9a-f]{8}", this loader has "gpt2:50257:/);
    const bpeA = await trainBpe([{ text: 'aaaa bbbb' }], 259);
    const bpeB = await trainBpe([{ text: 'bbbb aaaa' }, { text: 'bbbb' }], 259);
    assert.equal(bpeA.vocabSize, bpeB.vocabSize);
    const bpeState = (await createLoader({ ...opts, tokenizer: bpeA })).position();
    await assert.rejects(createLoader({ ...opts, tokenizer: bpeB, resumeFrom: bpeState }), /tokenizer "bpe:259:/);
    await assert.rejects(createLoader({ ...opts, resumeFrom: { ...state, taken: 0, block: { ...state.block, token: 10_000 } } }).then((l) => l.next()),
      /has \d+ tokens, fewer than the position's offset 10000/);
    await assert.rejects(createLoader({ ...opts, resumeFrom: { ...state, block: { ...state.block, path: '/elsewhere/x.txt' } } }), (e: unknown) =>
      e instanceof SparselmError && /resume: data file \d+ was '\/elsewhere\/x.txt'/.test(e.message));
    await assert.rejects(createLoader({ ...opts, resumeFrom: { ...state, block: { ...state.block, file: 0, path: join(corpus.dir, 'a.json.gz'), doc: 99 } } })
      .then((l) => l.next()), /has 3 documents, fewer than the 100/);
    await loader.close();
  });

  it('validation: one deterministic, unshuffled pass; the last batch may be short', async () => {
    const T = 9;
    const B = 4;
    const stream = epochStream(byte, corpus.docs);
    const collect = async (): Promise<{ shapes: number[][]; seqs: number[][] }> => {
      const shapes: number[][] = [];
      const seqs: number[][] = [];
      for await (const batch of validationBatches({ paths: [corpus.dir], tokenizer: byte, batchSize: B, seqLen: T, ...quiet })) {
        shapes.push([...batch.inputs.shape]);
        seqs.push(...rows(batch));
      }
      return { shapes, seqs };
    };
    const first = await collect();
    const second = await collect();
    assert.deepEqual(second, first);
    const nseq = Math.floor(stream.length / (T + 1));
    assert.equal(first.seqs.length, nseq);
    assert.deepEqual(first.seqs.flat(), stream.slice(0, nseq * (T + 1)));
    assert.deepEqual(first.shapes[first.shapes.length - 1], [nseq % B === 0 ? B : nseq % B, T]);
    await assert.rejects(async () => {
      for await (const _ of validationBatches({ paths: [corpus.dir], tokenizer: byte, batchSize: 1, seqLen: stream.length, ...quiet })) { /* none */ }
    }, /shorter than one sequence/);
  });

  it('no documents at all is an error naming the paths', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sparselm-empty-'));
    writeFileSync(join(dir, 'bad.jsonl'), 'not json\n{"text": ""}\n');
    const empty = join(dir, 'nothing');
    mkdirSync(empty);
    const noDocs = (e: unknown): boolean => e instanceof SparselmError && e.message.startsWith(`packing: no documents in '${dir}', '${empty}'`);
    await assert.rejects(async () => {
      const loader = await createLoader({ paths: [dir, empty], tokenizer: byte, batchSize: 1, seqLen: 4, ...quiet });
      await loader.next();
    }, noDocs);
    await assert.rejects(async () => {
      for await (const _ of validationBatches({ paths: [dir, empty], tokenizer: byte, batchSize: 1, seqLen: 4, ...quiet })) { /* none */ }
    }, noDocs);
    await assert.rejects(createLoader({ paths: [join(dir, 'missing.json.gz')], tokenizer: byte, batchSize: 1, seqLen: 4 }), /data: cannot read '.*missing.json.gz': ENOENT/);
    await assert.rejects(createLoader({ paths: [dir], tokenizer: byte, batchSize: 0, seqLen: 4 }), /batchSize must be an integer >= 1/);
  });

  it('packs the bundled sample with GPT-2 tokens: one validation pass holds every token', async () => {
    const tok = loadTokenizer({ kind: 'gpt2' });
    let total = 0;
    for await (const d of readDocuments([samplePath('validation')])) total += tok.encode(d.text).length + 1;
    const T = 64;
    let seqs = 0;
    for await (const batch of validationBatches({ paths: [samplePath('validation')], tokenizer: tok, batchSize: 16, seqLen: T })) {
      const x = batch.inputs.toArray();
      assert.ok(x.every((id) => id >= 0 && id < tok.vocabSize));
      seqs += batch.inputs.shape[0];
    }
    assert.equal(seqs, Math.floor(total / (T + 1)));
    const loader = await createLoader({ paths: [samplePath('train')], tokenizer: tok, batchSize: 8, seqLen: T, shuffleBuffer: 256, seed: 3 });
    const b = await loader.next();
    assert.deepEqual([...b.inputs.shape], [8, T]);
    const state = loader.position();
    assert.ok(JSON.stringify(state).length < 300, 'the state is small');
    const next = rows(await loader.next());
    const resumed = await createLoader({ paths: [samplePath('train')], tokenizer: tok, batchSize: 8, seqLen: T, shuffleBuffer: 256, seed: 3, resumeFrom: state });
    assert.deepEqual(rows(await resumed.next()), next);
    await loader.close();
    await resumed.close();
  });
});
