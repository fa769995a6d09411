/**
 * Packing documents into fixed-length training examples, streamed: never the
 * whole corpus in memory.
 *
 * The token stream of one epoch is every document's tokens followed by eos,
 * in file order (`doc0 eos doc1 eos ...`); epochs follow each other with no
 * gap, so eos also separates the last document of an epoch from the first of
 * the next. The stream is cut into consecutive, non-overlapping sequences of
 * T+1 tokens: inputs are the first T, targets the last T (targets[t] =
 * inputs[t+1]). So every token of the corpus is in exactly one sequence per
 * epoch; a sequence may span documents and epochs.
 *
 * Shuffling is by blocks: S consecutive sequences (the shuffle buffer) are
 * read, permuted by a seeded Fisher-Yates shuffle whose draws are counters
 * S*k .. S*k+S-1 of the counter-based RNG (`uniform01(seed, counter)`), and
 * returned in that order; then the next S. S = 1 means no shuffling.
 *
 * Resumption, and why blocks. A sliding shuffle buffer (replace the drawn
 * slot with the next sequence) mixes across block edges, but its contents at
 * step n depend on the whole history: resuming it means storing S*(T+1) token
 * ids in every checkpoint (megabytes of JSON) or replaying from the start of
 * training. A block's contents depend only on where the block starts in the
 * stream, so the state is a few numbers: the block's start (epoch, file index
 * and path, document index in the file, token offset in the document), the
 * RNG counter of its permutation, and how many of its sequences were already
 * returned. A resumed loader re-reads that one block (at most S sequences of
 * tokenizing, plus skipping earlier documents of that one file) and re-derives
 * the permutation, so it returns exactly the batches the original would have.
 * Each sequence is still drawn uniformly from a window of S sequences.
 *
 * Validation (`validationBatches`): one pass, unshuffled, in file order, the
 * same cutting; the tail shorter than T+1 is dropped and the last batch may
 * have fewer than B rows. Deterministic by construction. Data shorter than
 * one sequence is an error (a loss over no batches would be NaN).
 *
 * A pass over the data that finds no document at all is an error naming the
 * paths.
 */

import { listFiles, readDocuments, type Document, type SkipReport } from './documents.js';
import type { Tokenizer } from './tokenizer.js';
import { tensor, type CreateOptions } from '../tensor/create.js';
import { SparselmError } from '../tensor/errors.js';
import { Rng, uniform01 } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

/** A place in the token stream: the next token to read. */
export interface StreamPosition {
  /** Completed passes over the data before this one. */
  epoch: number;
  /** Index into the sorted list of data files, and that file's path (checked on resume). */
  file: number;
  path: string;
  /** Index of the document within the file (counting only documents the reader yields). */
  doc: number;
  /** Offset into that document's tokens (its trailing eos included). */
  token: number;
}

/** Everything needed to resume a training loader exactly; JSON-serialisable. */
export interface LoaderState {
  version: 1;
  /** The settings the state belongs to; a loader with others refuses it. */
  seed: number;
  seqLen: number;
  shuffleBuffer: number;
  /** `kind:vocabSize:hash of its JSON`. */
  tokenizer: string;
  /** Where the current shuffle block starts. */
  block: StreamPosition;
  /** RNG counter of the block's permutation (`Rng.position` before the block took its draws). */
  rng: number;
  /** Sequences of the block already returned. */
  taken: number;
}

export interface Batch {
  inputs: Tensor;    // [B, T] int32
  targets: Tensor;   // [B, T] int32: inputs shifted left by one
  /** The reader's epoch when the batch was made (the block was read). */
  epoch: number;
}

export interface StreamOptions {
  /** Files and directories, as for `readDocuments`. */
  paths: readonly string[];
  tokenizer: Tokenizer;
  /** B */
  batchSize: number;
  /** T */
  seqLen: number;
  /** Where the batch tensors live (default 'cpu'). */
  device?: CreateOptions['device'];
  /** Bad lines in the data; the default warns on stderr. */
  onSkip?: (skip: SkipReport) => void;
}

export interface LoaderOptions extends StreamOptions {
  /** Default 0. */
  seed?: number;
  /** Shuffle block in sequences (default 2048); 1 disables shuffling. */
  shuffleBuffer?: number;
  /** A `position()` of an earlier loader with the same data and settings. */
  resumeFrom?: LoaderState;
}

function fail(message: string): never {
  throw new SparselmError(`packing: ${message}`);
}

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) fail(`${name} must be an integer >= ${min}, got ${v}`);
}

function namePaths(paths: readonly string[]): string {
  return paths.length === 0 ? '(no paths given)' : paths.map((p) => `'${p}'`).join(', ');
}


/**
 * The token stream, one document at a time. `pos` is always the next token:
 * the current document's index and the offset into its tokens.
 */
class TokenReader {
  private docs: AsyncGenerator<Document> | null = null;
  /** Documents taken from `docs` so far. */
  private inFile = 0;
  /** Tokens of the current document (eos appended); null until one is loaded. */
  private tokens: Int32Array | null = null;
  /** Documents loaded since the current pass began (or since opening). */
  private docsThisPass = 0;
  pos: StreamPosition;

  private constructor(
    private readonly paths: readonly string[],
    private readonly files: readonly string[],
    private readonly tokenizer: Tokenizer,
    private readonly loop: boolean,
    private readonly onSkip: ((s: SkipReport) => void) | undefined,
    at: StreamPosition,
  ) {
    this.pos = { ...at };
  }

  static async open(opts: StreamOptions, loop: boolean, at?: StreamPosition): Promise<TokenReader> {
    const files = (await Promise.all(opts.paths.map(listFiles))).flat();
    const start = at ?? { epoch: 0, file: 0, path: files[0] ?? '', doc: 0, token: 0 };
    if (at !== undefined) {
      for (const k of ['epoch', 'file', 'doc', 'token'] as const) checkInt(`resume: position.${k}`, at[k], 0);
      if (at.file >= files.length || files[at.file] !== at.path) {
        fail(`resume: data file ${at.file} was '${at.path}' but is now ${at.file < files.length ? `'${files[at.file]}'` : 'missing'}; the data under ${namePaths(opts.paths)} changed`);
      }
    }
    return new TokenReader(opts.paths, files, opts.tokenizer, loop, opts.onSkip, start);
  }

  /** Fills dst[off .. off+n) with the next n tokens; false if the data ended first (only without `loop`). */
  async read(dst: Int32Array, off: number, n: number): Promise<boolean> {
    while (n > 0) {
      if (this.tokens === null || this.pos.token >= this.tokens.length) {
        if (!(await this.nextDocument())) return false;
        continue;
      }
      const k = Math.min(n, this.tokens.length - this.pos.token);
      dst.set(this.tokens.subarray(this.pos.token, this.pos.token + k), off);
      this.pos.token += k;
      off += k;
      n -= k;
    }
    return true;
  }

  /**
   * Loads the document after the current one, or the one at `pos` when none
   * is loaded yet (opening, resuming: then `pos.token` is kept).
   */
  private async nextDocument(): Promise<boolean> {
    if (this.tokens !== null) {
      this.pos.doc++;
      this.pos.token = 0;
      this.tokens = null;
    }
    for (;;) {
      if (this.pos.file >= this.files.length) {
        if (this.docsThisPass === 0) fail(`no documents in ${namePaths(this.paths)}`);
        if (!this.loop) return false;
        this.pos = { epoch: this.pos.epoch + 1, file: 0, path: this.files[0], doc: 0, token: 0 };
        this.docsThisPass = 0;
      }
      const path = this.files[this.pos.file];
      this.pos.path = path;
      if (this.docs === null) {
        this.docs = readDocuments([path], this.onSkip ? { onSkip: this.onSkip } : {});
        this.inFile = 0;
      }
      // Skip to pos.doc (only when resuming does the file start before it).
      let r = await this.docs.next();
      while (!r.done && this.inFile < this.pos.doc) {
        this.inFile++;
        r = await this.docs.next();
      }
      if (r.done) {
        if (this.inFile < this.pos.doc) fail(`resume: '${path}' has ${this.inFile} documents, fewer than the ${this.pos.doc + 1} the position needs; the data changed`);
        this.docs = null;
        this.pos = { epoch: this.pos.epoch, file: this.pos.file + 1, path: '', doc: 0, token: 0 };
        continue;
      }
      this.inFile++;
      const ids = this.tokenizer.encode(r.value.text);
      const tokens = new Int32Array(ids.length + 1);
      tokens.set(ids);
      tokens[ids.length] = this.tokenizer.eos;
      if (this.pos.token > tokens.length) fail(`resume: document ${this.pos.doc} of '${path}' has ${tokens.length} tokens, fewer than the position's offset ${this.pos.token}; the data changed`);
      this.tokens = tokens;
      this.docsThisPass++;
      return true;
    }
  }

  async close(): Promise<void> {
    await this.docs?.return(undefined);
    this.docs = null;
  }
}

/**
 * `kind:vocabSize:hash`, the hash (32-bit FNV-1a) over the tokenizer's JSON,
 * so two trained vocabularies of one size are told apart. Cached per
 * tokenizer object (a trained one's JSON is tens of kilobytes).
 */
const tokenizerIds = new WeakMap<Tokenizer, string>();
function tokenizerId(tok: Tokenizer): string {
  let id = tokenizerIds.get(tok);
  if (id === undefined) {
    const json = JSON.stringify(tok.toJSON());
    let h = 0x811c9dc5;
    for (let i = 0; i < json.length; i++) h = Math.imul(h ^ json.charCodeAt(i), 0x01000193);
    id = `${tok.kind}:${tok.vocabSize}:${(h >>> 0).toString(16).padStart(8, '0')}`;
    tokenizerIds.set(tok, id);
  }
  return id;
}

function checkStreamOptions(opts: StreamOptions): void {
  checkInt('batchSize', opts.batchSize, 1);
  checkInt('seqLen', opts.seqLen, 1);
}

function makeBatch(inputs: Int32Array, targets: Int32Array, rows: number, T: number, device: CreateOptions['device'], epoch: number): Batch {
  return {
    inputs: tensor(inputs, [rows, T], { dtype: 'int32', device }),
    targets: tensor(targets, [rows, T], { dtype: 'int32', device }),
    epoch,
  };
}

/**
 * The training stream: endless, shuffled by blocks, resumable. Create with
 * `await BatchLoader.open(opts)`.
 */
export class BatchLoader {
  private readonly S: number;
  private readonly seed: number;
  private readonly rng: Rng;
  /** S sequences of T+1 tokens. */
  private readonly block: Int32Array;
  private readonly perm: Uint32Array;
  private blockStart: StreamPosition;
  private blockRng = 0;
  /** Sequences of the block returned so far; S when a new block must be read. */
  private taken: number;

  private constructor(private readonly opts: LoaderOptions, private readonly reader: TokenReader) {
    this.S = opts.shuffleBuffer ?? 2048;
    this.seed = opts.seed ?? 0;
    this.rng = new Rng(this.seed, opts.resumeFrom?.rng ?? 0);
    this.block = new Int32Array(this.S * (opts.seqLen + 1));
    this.perm = new Uint32Array(this.S);
    this.blockStart = { ...reader.pos };
    this.taken = this.S;
  }

  static async open(opts: LoaderOptions): Promise<BatchLoader> {
    checkStreamOptions(opts);
    checkInt('shuffleBuffer', opts.shuffleBuffer ?? 2048, 1);
    const seed = opts.seed ?? 0;
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) fail(`seed must be an integer in [0, 2^32), got ${seed}`);
    const state = opts.resumeFrom;
    if (state !== undefined) {
      const want = BatchLoader.settings(opts);
      if (state.version !== 1) fail(`resume: unsupported state version ${JSON.stringify(state.version)}`);
      for (const k of ['seed', 'seqLen', 'shuffleBuffer', 'tokenizer'] as const) {
        if (state[k] !== want[k]) fail(`resume: the state was made with ${k} ${JSON.stringify(state[k])}, this loader has ${JSON.stringify(want[k])}`);
      }
      checkInt('resume: rng', state.rng, 0);
      if (!Number.isInteger(state.taken) || state.taken < 0 || state.taken >= want.shuffleBuffer) fail(`resume: taken ${state.taken} outside [0, ${want.shuffleBuffer})`);
    }
    const reader = await TokenReader.open(opts, true, state?.block);
    const loader = new BatchLoader(opts, reader);
    if (state !== undefined && state.taken > 0) {
      await loader.readBlock();
      loader.taken = state.taken;
    }
    return loader;
  }

  private static settings(opts: LoaderOptions): Pick<LoaderState, 'seed' | 'seqLen' | 'shuffleBuffer' | 'tokenizer'> {
    return {
      seed: opts.seed ?? 0,
      seqLen: opts.seqLen,
      shuffleBuffer: opts.shuffleBuffer ?? 2048,
      tokenizer: tokenizerId(opts.tokenizer),
    };
  }

  /** Reads the next S sequences and draws their order. */
  private async readBlock(): Promise<void> {
    const L = this.opts.seqLen + 1;
    this.blockStart = { ...this.reader.pos };
    this.blockRng = this.rng.take(this.S);
    await this.reader.read(this.block, 0, this.S * L);   // endless: always fills
    const p = this.perm;
    for (let i = 0; i < this.S; i++) p[i] = i;
    for (let i = this.S - 1; i > 0; i--) {
      const j = Math.floor(uniform01(this.seed, this.blockRng + i, 0, true) * (i + 1));
      const t = p[i]; p[i] = p[j]; p[j] = t;
    }
    this.taken = 0;
  }

  /** The next batch: inputs and targets [B, T] int32. */
  async next(): Promise<Batch> {
    const { batchSize: B, seqLen: T } = this.opts;
    const L = T + 1;
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      if (this.taken === this.S) await this.readBlock();
      const s = this.perm[this.taken++] * L;
      inputs.set(this.block.subarray(s, s + T), b * T);
      targets.set(this.block.subarray(s + 1, s + L), b * T);
    }
    return makeBatch(inputs, targets, B, T, this.opts.device, this.reader.pos.epoch);
  }

  /** The epoch the reader is in (completed passes over the data). */
  get epoch(): number {
    return this.reader.pos.epoch;
  }

  /** Where the stream stands after the last batch returned: resume with `{ resumeFrom: position() }`. */
  position(): LoaderState {
    const done = this.taken === this.S;
    return {
      version: 1,
      ...BatchLoader.settings(this.opts),
      block: { ...(done ? this.reader.pos : this.blockStart) },
      rng: done ? this.rng.position : this.blockRng,
      taken: done ? 0 : this.taken,
    };
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Batch> {
    for (;;) yield await this.next();
  }

  /** Closes the file being read. */
  async close(): Promise<void> {
    await this.reader.close();
  }
}

/** Opens the training stream (same as `BatchLoader.open`). */
export function createLoader(opts: LoaderOptions): Promise<BatchLoader> {
  return BatchLoader.open(opts);
}

/**
 * The held-out stream: one pass over `paths`, unshuffled, batches of B
 * sequences (the last may have fewer rows; a tail shorter than T+1 tokens is
 * dropped). Fewer than T+1 tokens in all is an error.
 */
export async function* validationBatches(opts: StreamOptions): AsyncGenerator<Batch> {
  checkStreamOptions(opts);
  const { batchSize: B, seqLen: T } = opts;
  const L = T + 1;
  const reader = await TokenReader.open(opts, false);
  const seq = new Int32Array(L);
  let first = true;
  try {
    for (;;) {
      const inputs = new Int32Array(B * T);
      const targets = new Int32Array(B * T);
      let rows = 0;
      while (rows < B && await reader.read(seq, 0, L)) {
        inputs.set(seq.subarray(0, T), rows * T);
        targets.set(seq.subarray(1), rows * T);
        rows++;
      }
      if (rows === 0) {
        if (first) fail(`validation data in ${namePaths(opts.paths)} is shorter than one sequence of ${L} tokens`);
        return;
      }
      first = false;
      yield makeBatch(rows === B ? inputs : inputs.slice(0, rows * T), rows === B ? targets : targets.slice(0, rows * T), rows, T, opts.device, 0);
      if (rows < B) return;
    }
  } finally {
    await reader.close();
  }
}
