/**
 * Tokenizers: exact round trips for byte and trained BPE (unicode, emoji,
 * empty string), GPT-2 ids for known strings, BPE training checked against a
 * naive re-count-everything trainer written here (same tie rule, so the same
 * merges), training determinism, compression of the bundled sample better
 * than bytes, and JSON round trips.
 */

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readDocuments, samplePath } from '../src/data/documents.js';
import {
  BpeTokenizer, ByteTokenizer, EOS_TEXT, GPT2_PATTERN, loadTokenizer, trainBpe, type Tokenizer, type TrainBpeProgress,
} from '../src/data/tokenizer.js';
import { SparselmError } from '../src/index.js';

const SAMPLES = [
  '',
  'a',
  'Hello world',
  'héllo wörld — naïve café',
  '日本語のテキスト, 中文, 한국어, Ελληνικά, русский',
  'emoji: 🌍🚀👩‍👩‍👧‍👦 🇫🇷 and skin tones 👍🏽',
  'tabs\tand\r\nnewlines\n\n\n   spaces   ',
  'literal <|endoftext|> in text',
  "it's we're they'll I'd 12345 3.14159 x=y+z;",
  '\u0000\u0001 control \u007f',
  '='.repeat(5000),
];

async function texts(split: 'train' | 'validation'): Promise<string[]> {
  const out: string[] = [];
  for await (const d of readDocuments([samplePath(split)])) out.push(d.text);
  return out;
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}

function checkRoundTrips(tok: Tokenizer): void {
  for (const s of SAMPLES) {
    const ids = tok.encode(s);
    assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize && id !== tok.eos), `${tok.kind}: ids in range, no eos: ${JSON.stringify(s)}`);
    assert.equal(tok.decode(ids), s, `${tok.kind}: round trip of ${JSON.stringify(s)}`);
  }
  assert.deepEqual(tok.encode(''), []);
  assert.equal(tok.decode([]), '');
}

function checkCommon(tok: Tokenizer): void {
  assert.equal(tok.eos, tok.vocabSize - 1);
  assert.deepEqual({ ...tok.specialTokens }, { [EOS_TEXT]: tok.eos });
  assert.equal(tok.decode([...tok.encode('a'), tok.eos, ...tok.encode('b')]), `a${EOS_TEXT}b`);
  assert.throws(() => tok.decode([tok.vocabSize]), (e: unknown) => e instanceof SparselmError && e.message.includes(`id ${tok.vocabSize} at index 0`));
  assert.throws(() => tok.decode([-1]), SparselmError);
  assert.throws(() => tok.decode([1.5]), SparselmError);
  // Decoding is stateless: a split character gives U+FFFD and does not leak into the next call.
  const globe = tok.encode('🌍');
  assert.ok(globe.length > 1, `${tok.kind}: '🌍' is more than one token`);
  assert.match(tok.decode(globe.slice(0, 1)), /\uFFFD/);
  assert.equal(tok.decode(tok.encode('🌍🌍')), '🌍🌍');
  for (const s of SAMPLES) {
    const bytes = tok.encode(s).flatMap((id) => Array.from(tok.tokenBytes(id)));
    assert.deepEqual(bytes, Array.from(new TextEncoder().encode(s)), `${tok.kind}: tokenBytes of ${JSON.stringify(s)}`);
  }
  assert.equal(tok.tokenBytes(tok.eos).length, 0);
  assert.throws(() => tok.tokenBytes(tok.vocabSize), SparselmError);
  const json: unknown = JSON.parse(JSON.stringify(tok.toJSON()));
  const back = loadTokenizer(json);
  assert.equal(back.kind, tok.kind);
  assert.equal(back.vocabSize, tok.vocabSize);
  assert.equal(back.eos, tok.eos);
  for (const s of SAMPLES) assert.deepEqual(back.encode(s), tok.encode(s));
}

describe('byte tokenizer', () => {
  const tok = new ByteTokenizer();
  it('is UTF-8 bytes plus eos 256', () => {
    assert.equal(loadTokenizer({ kind: 'byte' }).kind, 'byte');
    assert.equal(tok.vocabSize, 257);
    assert.equal(tok.eos, 256);
    assert.deepEqual(tok.encode('A€'), [65, 0xe2, 0x82, 0xac]);
    assert.deepEqual(tok.toJSON(), { kind: 'byte' });
  });
  it('round-trips exactly', () => checkRoundTrips(tok));
  it('eos, id checks, stateless decode, JSON', () => checkCommon(tok));
  it('a lone surrogate has no UTF-8 form and comes back as U+FFFD', () => {
    assert.equal(tok.decode(tok.encode('a\ud800b')), 'a\ufffdb');
  });
});

describe('gpt2 tokenizer', () => {
  const tok = loadTokenizer({ kind: 'gpt2' });
  it('matches GPT-2 ids on known strings', () => {
    assert.equal(tok.vocabSize, 50257);
    assert.equal(tok.eos, 50256);
    assert.deepEqual(tok.encode('Hello world'), [15496, 995]);
    assert.deepEqual(tok.encode(' the'), [262]);
    assert.deepEqual(tok.encode('hello'), [31373]);
    // The literal text of the special token is ordinary text, never 50256.
    assert.deepEqual(tok.encode('<|endoftext|>'), [27, 91, 437, 1659, 5239, 91, 29]);
    assert.equal(tok.decode([50256]), EOS_TEXT);
    assert.deepEqual(tok.toJSON(), { kind: 'gpt2' });
  });
  it('round-trips exactly', () => checkRoundTrips(tok));
  it('eos, id checks, stateless decode, JSON', () => checkCommon(tok));
});

/** The textbook trainer: re-count every pair of every piece before each merge. Slow, obviously correct. */
function naiveTrain(docs: string[], vocabSize: number): number[] {
  const counts = new Map<string, number>();
  const re = new RegExp(GPT2_PATTERN, 'gu');
  for (const d of docs) for (const m of d.matchAll(re)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  const words = [...counts].map(([w, f]) => ({ sym: Array.from(new TextEncoder().encode(w)), f }));
  const merges: number[] = [];
  for (let id = 256; id < vocabSize - 1; id++) {
    const pairs = new Map<string, number>();
    for (const { sym, f } of words) for (let i = 0; i + 1 < sym.length; i++) pairs.set(`${sym[i]},${sym[i + 1]}`, (pairs.get(`${sym[i]},${sym[i + 1]}`) ?? 0) + f);
    let best: [number, number] | null = null;
    let bestCount = 0;
    for (const [k, c] of pairs) {
      const [a, b] = k.split(',').map(Number);
      if (c > bestCount || (c === bestCount && best !== null && (a < best[0] || (a === best[0] && b < best[1])))) { best = [a, b]; bestCount = c; }
    }
    if (best === null || bestCount < 2) break;
    merges.push(best[0], best[1]);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.sym.length;) {
        if (i + 1 < w.sym.length && w.sym[i] === best[0] && w.sym[i + 1] === best[1]) { out.push(id); i += 2; } else out.push(w.sym[i++]);
      }
      w.sym = out;
    }
  }
  return merges;
}

/** Encoding by replaying the merges in order over each piece. */
function naiveEncode(merges: number[], text: string): number[] {
  const out: number[] = [];
  for (const m of text.matchAll(new RegExp(GPT2_PATTERN, 'gu'))) {
    let sym = Array.from(new TextEncoder().encode(m[0]));
    for (let r = 0; r < merges.length / 2; r++) {
      const next: number[] = [];
      for (let i = 0; i < sym.length;) {
        if (i + 1 < sym.length && sym[i] === merges[2 * r] && sym[i + 1] === merges[2 * r + 1]) { next.push(256 + r); i += 2; } else next.push(sym[i++]);
      }
      sym = next;
    }
    out.push(...sym);
  }
  return out;
}

describe('bpe tokenizer', () => {
  let train: string[];
  let valid: string[];
  let tok: BpeTokenizer;
  let progress: TrainBpeProgress[];
  before(async () => {
    train = await texts('train');
    valid = await texts('validation');
    progress = [];
    tok = await trainBpe(readDocuments([samplePath('train')]), 2048, { onProgress: (p) => progress.push(p) });
  });

  it('trains to the asked size on the sample and reports progress', () => {
    assert.equal(tok.vocabSize, 2048);
    assert.equal(tok.mergeCount, 2048 - 257);
    assert.equal(tok.eos, 2047);
    const last = progress[progress.length - 1];
    assert.deepEqual([last.phase, last.documents, last.chars, last.merges, last.targetMerges], ['merge', 666, 2_989_821, 1791, 1791]);
    assert.ok(progress.some((p) => p.phase === 'count' && p.documents === 100));
    assert.ok(progress.some((p) => p.phase === 'merge' && p.merges === 100));
  });

  it('compresses the validation sample better than bytes (> 2.5 bytes a token)', () => {
    let bytes = 0;
    let tokens = 0;
    for (const d of valid) {
      bytes += utf8Length(d);
      tokens += tok.encode(d).length;
    }
    assert.ok(bytes / tokens > 2.5, `bytes per token ${(bytes / tokens).toFixed(3)}`);
  });

  it('round-trips exactly, sample documents too', () => {
    checkRoundTrips(tok);
    for (const d of valid) assert.equal(tok.decode(tok.encode(d)), d);
  });

  it('eos, id checks, stateless decode, JSON', () => checkCommon(tok));

  it('is deterministic: the same stream gives the same merges', async () => {
    const again = await trainBpe(train.map((text) => ({ text })), 2048);
    assert.deepEqual(again.toJSON(), tok.toJSON());
  });

  it('learns the same merges and encodings as the naive trainer', async () => {
    const small = train.slice(0, 12);
    const fast = await trainBpe(small.map((text) => ({ text })), 600);
    const naive = naiveTrain(small, 600);
    assert.deepEqual(fast.toJSON().merges, naive);
    for (const d of [...valid.slice(0, 3), ...SAMPLES]) assert.deepEqual(fast.encode(d), naiveEncode(naive, d));
  });

  it('stops early on a tiny corpus, honours maxChars', async () => {
    const tiny = await trainBpe([{ text: 'abab abab' }], 1000);
    assert.ok(tiny.vocabSize < 1000);
    assert.equal(tiny.decode(tiny.encode('abab abab ba')), 'abab abab ba');
    assert.ok(tiny.encode('abab').length < 4);
    let seen = 0;
    await trainBpe([{ text: 'a' }, { text: 'b' }, { text: 'c' }], 300, { maxChars: 2, onProgress: (p) => { seen = p.documents; } });
    assert.equal(seen, 2);
  });

  it('restores from JSON and rejects bad JSON', () => {
    const json = tok.toJSON();
    assert.deepEqual(Object.keys(json).sort(), ['kind', 'merges', 'pattern', 'version']);
    assert.equal(json.pattern, GPT2_PATTERN);
    assert.throws(() => loadTokenizer({ kind: 'bpe', version: 2, pattern: GPT2_PATTERN, merges: [] }), /unsupported version/);
    assert.throws(() => loadTokenizer({ kind: 'bpe', version: 1, pattern: GPT2_PATTERN, merges: [1] }), /odd length/);
    assert.throws(() => loadTokenizer({ kind: 'bpe', version: 1, pattern: GPT2_PATTERN, merges: [1, 256] }), /not an earlier id/);
    assert.throws(() => loadTokenizer({ kind: 'bpe', version: 1, pattern: GPT2_PATTERN, merges: [97, 98, 97, 98] }), /repeats the pair/);
    assert.throws(() => loadTokenizer({ kind: 'wordpiece' }), (e: unknown) => e instanceof SparselmError && /unknown kind "wordpiece"/.test(e.message));
    assert.throws(() => loadTokenizer(null), SparselmError);
  });

  it('rejects a bad vocabulary size', async () => {
    await assert.rejects(trainBpe([{ text: 'x' }], 256), /vocabSize 256/);
    await assert.rejects(trainBpe([{ text: 'x' }], 300.5), SparselmError);
  });
});
