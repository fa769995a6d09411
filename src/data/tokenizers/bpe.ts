/**
 * Byte-level BPE trained here: `trainBpe` learns merges from a document
 * stream, `BpeTokenizer` applies them. Written for this project because no
 * maintained npm package trains BPE from JavaScript with a chosen vocabulary
 * size (checked: `tokenizers` 0.23.2, Hugging Face's native bindings, only
 * exposes `train(files)` with the default trainer: no vocabulary size, no
 * streams, and its encode is async; `@huggingface/tokenizers` 0.2.0, pure JS,
 * only loads trained tokenizers; nothing else on npm trains BPE).
 *
 * Vocabulary: ids 0..255 are the bytes; merge i makes id 256 + i from two
 * earlier ids; the last id (256 + merges) is eos `<|endoftext|>`.
 *
 * Pre-tokenization: text is first cut into pieces by GPT-2's regular
 * expression (contractions, optional space + letters, optional space +
 * digits, optional space + other symbols, whitespace); merges never cross a
 * piece boundary. The pattern is saved in the JSON, so a saved tokenizer
 * keeps cutting the way it was trained even if the default changes.
 *
 * Training (the classic algorithm, made incremental): count each distinct
 * piece once with its frequency; count adjacent id pairs weighted by
 * frequency; repeatedly merge the most frequent pair. Ties go to the smaller
 * (left id, right id), so training is a pure function of the document stream.
 * Each merge touches only the pieces that contain the pair (an index from
 * pair to pieces) and updates pair counts by the difference; a max-heap with
 * lazy invalidation finds the next pair. Cost per merge ~ total length of the
 * affected pieces, not of the corpus: the 3 MB sample trains 4k merges in
 * seconds.
 *
 * Encoding a piece: repeatedly merge the adjacent pair with the lowest merge
 * index, leftmost first (the same result as replaying the merges in order,
 * since a merge's output only takes part in later merges). A linked list and
 * a min-heap keep this O(n log n) in the piece length, so a megabyte-long run
 * of punctuation is no quadratic trap. Pieces are cached.
 */

import { SparselmError } from '../../tensor/errors.js';
import type { Tokenizer } from '../tokenizer.js';
import { checkIds, decodeTokenBytes, EOS_TEXT } from './common.js';

/** GPT-2's pre-tokenizer (used with flags 'gu'). */
export const GPT2_PATTERN = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;

/** Saved form. Merge i joins ids merges[2i] and merges[2i+1] into id 256 + i. */
export interface BpeJSON {
  kind: 'bpe';
  version: 1;
  /** The pre-tokenizer, a regular expression used with flags 'gu'. */
  pattern: string;
  merges: number[];
}

// Pair key: left * KEY + right, exact in a double for ids below 2^20.
const KEY = 1 << 20;
const MAX_VOCAB = KEY;
const CACHE_LIMIT = 1 << 16;
const utf8 = new TextEncoder();

/** Calls `piece` for each piece of `text`; text between matches (a pattern that does not cover everything) is a piece too, so nothing is lost. */
function forEachPiece(text: string, re: RegExp, piece: (p: string) => void): void {
  let end = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > end) piece(text.slice(end, m.index));
    if (m[0].length > 0) piece(m[0]);
    end = m.index + m[0].length;
  }
  if (end < text.length) piece(text.slice(end));
}

function compilePattern(pattern: string): RegExp {
  try {
    return new RegExp(pattern, 'gu');
  } catch (e) {
    throw new SparselmError(`tokenizer bpe: invalid pattern ${JSON.stringify(pattern)}: ${(e as Error).message}`);
  }
}

/** A binary min-heap of numbers. */
class MinHeap {
  private readonly a: number[] = [];
  get size(): number { return this.a.length; }
  push(v: number): void {
    const a = this.a;
    let i = a.length;
    a.push(v);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= v) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = v;
  }
  pop(): number {
    const a = this.a;
    const top = a[0];
    const last = a.pop() as number;
    const n = a.length;
    if (n > 0) {
      let i = 0;
      while (true) {
        let c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && a[c + 1] < a[c]) c++;
        if (a[c] >= last) break;
        a[i] = a[c];
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

export class BpeTokenizer implements Tokenizer {
  readonly kind = 'bpe' as const;
  readonly vocabSize: number;
  readonly eos: number;
  readonly specialTokens: Readonly<Record<string, number>>;
  readonly pattern: string;
  /** Merge i joins merges[2i] and merges[2i+1] into 256 + i. */
  private readonly merges: Int32Array;
  /** Bytes of each ordinary id. */
  private readonly bytesOf: Uint8Array[];
  /** Pair key -> merge index. */
  private readonly rank = new Map<number, number>();
  private readonly re: RegExp;
  private readonly cache = new Map<string, readonly number[]>();

  constructor(merges: ArrayLike<number>, pattern: string = GPT2_PATTERN) {
    if (merges.length % 2 !== 0) throw new SparselmError(`tokenizer bpe: merges has odd length ${merges.length}`);
    const n = merges.length / 2;
    if (256 + n + 1 > MAX_VOCAB) throw new SparselmError(`tokenizer bpe: ${n} merges exceed the vocabulary limit ${MAX_VOCAB}`);
    this.merges = Int32Array.from(merges);
    this.pattern = pattern;
    this.re = compilePattern(pattern);
    this.vocabSize = 256 + n + 1;
    this.eos = 256 + n;
    this.specialTokens = Object.freeze({ [EOS_TEXT]: this.eos });
    this.bytesOf = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
    for (let i = 0; i < n; i++) {
      const a = merges[2 * i];
      const b = merges[2 * i + 1];
      const id = 256 + i;
      for (const x of [a, b]) {
        if (!Number.isInteger(x) || x < 0 || x >= id) {
          throw new SparselmError(`tokenizer bpe: merge ${i} uses id ${x}, which is not an earlier id (0..${id - 1})`);
        }
      }
      const key = a * KEY + b;
      if (this.rank.has(key)) throw new SparselmError(`tokenizer bpe: merge ${i} repeats the pair (${a}, ${b}) of merge ${this.rank.get(key)}`);
      this.rank.set(key, i);
      const bytes = new Uint8Array(this.bytesOf[a].length + this.bytesOf[b].length);
      bytes.set(this.bytesOf[a]);
      bytes.set(this.bytesOf[b], this.bytesOf[a].length);
      this.bytesOf.push(bytes);
    }
  }

  static fromJSON(json: BpeJSON): BpeTokenizer {
    if (json.version !== 1) throw new SparselmError(`tokenizer bpe: unsupported version ${JSON.stringify(json.version)} (expected 1)`);
    if (typeof json.pattern !== 'string') throw new SparselmError('tokenizer bpe: missing string field "pattern"');
    if (!Array.isArray(json.merges)) throw new SparselmError('tokenizer bpe: missing array field "merges"');
    return new BpeTokenizer(json.merges, json.pattern);
  }

  /** Number of merges (vocabSize - 257). */
  get mergeCount(): number {
    return this.merges.length / 2;
  }

  /** The bytes that id stands for (empty for eos). */
  tokenBytes(id: number): Uint8Array {
    checkIds(this.kind, [id], this.vocabSize);
    return id === this.eos ? new Uint8Array(0) : this.bytesOf[id].slice();
  }

  encode(text: string): number[] {
    const out: number[] = [];
    forEachPiece(text, this.re, (piece) => {
      let ids = this.cache.get(piece);
      if (ids === undefined) {
        ids = this.encodePiece(utf8.encode(piece));
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    });
    return out;
  }

  /** Lowest merge index first, leftmost among equals; heap entries are rank * n + position, checked when popped. */
  private encodePiece(bytes: Uint8Array): number[] {
    const n = bytes.length;
    if (n < 2) return Array.from(bytes);
    const tok = Int32Array.from(bytes);   // id at each node; -1 once merged into its left neighbour
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
    const heap = new MinHeap();
    const consider = (i: number): void => {
      const j = next[i];
      if (j < 0) return;
      const r = this.rank.get(tok[i] * KEY + tok[j]);
      if (r !== undefined) heap.push(r * n + i);
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    while (heap.size > 0) {
      const e = heap.pop();
      const i = e % n;
      const r = (e - i) / n;
      const j = next[i];
      if (tok[i] < 0 || j < 0 || this.rank.get(tok[i] * KEY + tok[j]) !== r) continue;   // stale
      tok[i] = 256 + r;
      tok[j] = -1;
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      if (prev[i] >= 0) consider(prev[i]);
      consider(i);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(tok[i]);
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    checkIds(this.kind, ids, this.vocabSize);
    return decodeTokenBytes(ids, this.bytesOf, this.eos);
  }

  toJSON(): BpeJSON {
    return { kind: 'bpe', version: 1, pattern: this.pattern, merges: Array.from(this.merges) };
  }
}

export interface TrainBpeProgress {
  phase: 'count' | 'merge';
  /** Documents and characters read so far. */
  documents: number;
  chars: number;
  /** Distinct pieces counted. */
  pieces: number;
  /** Merges learned so far, of `targetMerges` (vocabSize - 257). */
  merges: number;
  targetMerges: number;
}

export interface TrainBpeOptions {
  /** Called every 100 documents while counting, every 100 merges while merging, and once at the end of each phase. */
  onProgress?: (p: TrainBpeProgress) => void;
  /** Stop reading documents once this many characters have been read (default: all). */
  maxChars?: number;
  /**
   * Stop merging when the most frequent pair occurs fewer times than this
   * (default 2). On a small corpus the vocabulary then comes out smaller than
   * asked; `vocabSize` of the result says what it is.
   */
  minFrequency?: number;
  /** Pre-tokenizer regular expression (flags 'gu'); default GPT-2's. */
  pattern?: string;
}

/**
 * A max-heap of (count, pair key): larger count first, then smaller key.
 * Entries are not updated in place; a popped entry is checked against the
 * current count (lazy invalidation).
 */
class PairHeap {
  private readonly count: number[] = [];
  private readonly key: number[] = [];
  get size(): number { return this.count.length; }
  private above(c1: number, k1: number, c2: number, k2: number): boolean {
    return c1 > c2 || (c1 === c2 && k1 < k2);
  }
  push(c: number, k: number): void {
    const { count, key } = this;
    let i = count.length;
    count.push(c);
    key.push(k);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(c, k, count[p], key[p])) break;
      count[i] = count[p];
      key[i] = key[p];
      i = p;
    }
    count[i] = c;
    key[i] = k;
  }
  /** Removes the top; returns its count and key through `out`. */
  pop(out: { count: number; key: number }): void {
    const { count, key } = this;
    out.count = count[0];
    out.key = key[0];
    const c = count.pop() as number;
    const k = key.pop() as number;
    const n = count.length;
    if (n === 0) return;
    let i = 0;
    while (true) {
      let ch = 2 * i + 1;
      if (ch >= n) break;
      if (ch + 1 < n && this.above(count[ch + 1], key[ch + 1], count[ch], key[ch])) ch++;
      if (!this.above(count[ch], key[ch], c, k)) break;
      count[i] = count[ch];
      key[i] = key[ch];
      i = ch;
    }
    count[i] = c;
    key[i] = k;
  }
}

/**
 * Trains a byte-level BPE tokenizer of (at most) `vocabSize` ids, eos
 * included, on the documents' text. Memory: the distinct pieces and their
 * counts, never the corpus.
 */
export async function trainBpe(
  docs: AsyncIterable<{ text: string }> | Iterable<{ text: string }>,
  vocabSize: number,
  opts: TrainBpeOptions = {},
): Promise<BpeTokenizer> {
  if (!Number.isInteger(vocabSize) || vocabSize < 257 || vocabSize > MAX_VOCAB) {
    throw new SparselmError(`trainBpe: vocabSize ${vocabSize} must be an integer in [257, ${MAX_VOCAB}] (256 bytes + merges + eos)`);
  }
  const pattern = opts.pattern ?? GPT2_PATTERN;
  const re = compilePattern(pattern);
  const maxChars = opts.maxChars ?? Infinity;
  const minFrequency = Math.max(1, opts.minFrequency ?? 2);
  const targetMerges = vocabSize - 257;
  const report = opts.onProgress ?? ((): void => {});

  // 1. Distinct pieces with their frequencies.
  const pieceCount = new Map<string, number>();
  const addPiece = (p: string): void => { pieceCount.set(p, (pieceCount.get(p) ?? 0) + 1); };
  let documents = 0;
  let chars = 0;
  let pieces = 0;
  const progress = (phase: 'count' | 'merge', merges: number): void =>
    report({ phase, documents, chars, pieces: phase === 'count' ? pieceCount.size : pieces, merges, targetMerges });
  for await (const doc of docs) {
    if (chars >= maxChars) break;
    forEachPiece(doc.text, re, addPiece);
    documents++;
    chars += doc.text.length;
    if (documents % 100 === 0) progress('count', 0);
  }
  progress('count', 0);

  // 2. Each piece as bytes; pair counts weighted by piece frequency; pair -> pieces holding it.
  pieces = pieceCount.size;
  const nw = pieces;
  const words: Int32Array[] = new Array<Int32Array>(nw);
  const lens = new Int32Array(nw);
  const freq = new Float64Array(nw);
  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>();
  const addWhere = (k: number, w: number): void => {
    const list = where.get(k);
    if (list === undefined) where.set(k, [w]);
    else if (list[list.length - 1] !== w) list.push(w);
  };
  let w = 0;
  for (const [piece, f] of pieceCount) {
    const sym = Int32Array.from(utf8.encode(piece));
    words[w] = sym;
    lens[w] = sym.length;
    freq[w] = f;
    for (let i = 0; i + 1 < sym.length; i++) {
      const k = sym[i] * KEY + sym[i + 1];
      pairCount.set(k, (pairCount.get(k) ?? 0) + f);
      addWhere(k, w);
    }
    w++;
  }
  pieceCount.clear();
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  // 3. Merge the most frequent pair until the vocabulary is full or pairs run out.
  const merges: number[] = [];
  const seen = new Int32Array(nw).fill(-1);   // the merge that last visited each piece
  const top = { count: 0, key: 0 };
  for (let m = 0; m < targetMerges; m++) {
    let best = -1;
    while (heap.size > 0) {
      heap.pop(top);
      const current = pairCount.get(top.key) ?? 0;
      if (current === top.count) { best = top.key; break; }
      // Stale: the count fell since this entry was pushed (a rise pushes a fresh entry).
      if (current > 0 && current < top.count) heap.push(current, top.key);
    }
    if (best < 0 || top.count < minFrequency) break;
    const a = Math.floor(best / KEY);
    const b = best - a * KEY;
    const c = 256 + m;
    merges.push(a, b);
    const holders = where.get(best) ?? [];
    where.delete(best);
    pairCount.delete(best);
    const delta = new Map<number, number>();
    const bump = (k: number, d: number): void => { delta.set(k, (delta.get(k) ?? 0) + d); };
    for (const wi of holders) {
      if (seen[wi] === m) continue;
      seen[wi] = m;
      const sym = words[wi];
      const n = lens[wi];
      let found = false;
      for (let i = 0; i + 1 < n; i++) if (sym[i] === a && sym[i + 1] === b) { found = true; break; }
      if (!found) continue;   // an index entry left from before an earlier merge
      const f = freq[wi];
      for (let i = 0; i + 1 < n; i++) bump(sym[i] * KEY + sym[i + 1], -f);
      let o = 0;
      for (let i = 0; i < n;) {
        if (i + 1 < n && sym[i] === a && sym[i + 1] === b) { sym[o++] = c; i += 2; } else sym[o++] = sym[i++];
      }
      lens[wi] = o;
      for (let i = 0; i + 1 < o; i++) {
        const k = sym[i] * KEY + sym[i + 1];
        bump(k, f);
        if (sym[i] === c || sym[i + 1] === c) addWhere(k, wi);
      }
    }
    for (const [k, d] of delta) {
      if (d === 0 || k === best) continue;
      const now = (pairCount.get(k) ?? 0) + d;
      if (now <= 0) {
        // Gone for good: only pairs that contain a new id can appear later.
        pairCount.delete(k);
        where.delete(k);
      } else {
        pairCount.set(k, now);
        if (d > 0) heap.push(now, k);
      }
    }
    if ((m + 1) % 100 === 0) progress('merge', m + 1);
  }
  progress('merge', merges.length / 2);
  return new BpeTokenizer(merges, pattern);
}
