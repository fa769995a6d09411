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
 *
 * Corruption of the training stream (`corrupt`: the Lazy Neuron paper's
 * noisy-label, random-label and random-input experiments, adapted to language
 * models). Every token of the corpus is an input of one position and the
 * target of the position before it; it gets a replacement for each role that
 * is a pure function of (seed, file index, document index, offset in the
 * document), never of the batch, the shuffle or the epoch:
 *   key   = randomBits(seed, doc, CORRUPT_STREAM + file)
 *   as target: replaced when randomLabels or uniform01(key, offset, 0) < labelNoise,
 *              by floor(uniform01(key, offset, 1) · V);
 *   as input:  replaced when randomInputs, by floor(uniform01(key, offset, 2) · V);
 * V = the tokenizer's vocabSize (every real id, eos included; never the
 * padding ids of a rounded-up vocab_size). So the corruption is a property of
 * the data set, like the paper's fixed noisy labels: a token gets the same
 * noisy label in every epoch (a model could memorise it), and a resumed loader
 * recomputes exactly the same corrupted block with no extra state. A
 * replacement may draw the original id (probability 1/V). randomLabels is
 * labelNoise 1 (the same draws), so the two are not combined. Inputs and
 * targets are corrupted independently: randomInputs alone leaves the real
 * next tokens as targets; with randomLabels too the stream is pure noise.
 * Without corruption (the default, or labelNoise 0 and both flags off) the
 * batches and `position()` are exactly those of a loader without the option.
 * Validation batches are never corrupted.
 */

import { listFiles, readDocuments, type Document, type SkipReport } from './documents.js';
import type { Tokenizer } from './tokenizer.js';
import { tensor, type CreateOptions } from '../tensor/create.js';
import { SparselmError } from '../tensor/errors.js';
import { randomBits, Rng, uniform01 } from '../tensor/random.js';
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

/** Corruption of the training targets and inputs (see the file comment). */
export interface Corruption {
  /** Probability in [0, 1] that a target token is replaced by a uniformly random id. */
  labelNoise: number;
  /** Every target replaced (the same draws as labelNoise 1; not combined with labelNoise > 0). */
  randomLabels: boolean;
  /** Every input token replaced. */
  randomInputs: boolean;
}

export const NO_CORRUPTION: Corruption = { labelNoise: 0, randomLabels: false, randomInputs: false };

/** Stream offset of the per-document corruption keys, away from the small streams other draws use. */
const CORRUPT_STREAM = 0x6e6f6973;

/** What is wrong with a corruption setting, in words naming the field; null when it is valid. */
export function corruptionProblem(c: Corruption): string | null {
  if (typeof c.labelNoise !== 'number' || !(c.labelNoise >= 0 && c.labelNoise <= 1)) return `label noise must be a probability in [0, 1], got ${String(c.labelNoise)}`;
  if (typeof c.randomLabels !== 'boolean') return `randomLabels must be true or false, got ${JSON.stringify(c.randomLabels)}`;
  if (typeof c.randomInputs !== 'boolean') return `randomInputs must be true or false, got ${JSON.stringify(c.randomInputs)}`;
  if (c.randomLabels && c.labelNoise > 0) return `label noise ${c.labelNoise} and random labels cannot be combined: random labels already replace every target (they are label noise 1)`;
  return null;
}

/** True when the setting changes any token. */
export function isCorrupting(c: Corruption): boolean {
  return c.labelNoise > 0 || c.randomLabels || c.randomInputs;
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
  /** The corruption in force; absent when none (states written before corruption existed have none). */
  corrupt?: Corruption;
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
  /** Corrupt the training stream (default: none). */
  corrupt?: Corruption;
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

  /**
   * Fills dst[off .. off+n) with the next n tokens; false if the data ended
   * first (only without `loop`). `onChunk` hears where each run of copied
   * tokens came from: dst[at .. at+k) are tokens token .. token+k of document
   * `doc` of file `file`.
   */
  async read(dst: Int32Array, off: number, n: number, onChunk?: (at: number, file: number, doc: number, token: number, k: number) => void): Promise<boolean> {
    while (n > 0) {
      if (this.tokens === null || this.pos.token >= this.tokens.length) {
        if (!(await this.nextDocument())) return false;
        continue;
      }
      const k = Math.min(n, this.tokens.length - this.pos.token);
      dst.set(this.tokens.subarray(this.pos.token, this.pos.token + k), off);
      onChunk?.(off, this.pos.file, this.pos.doc, this.pos.token, k);
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
  /** The corruption, or null for none; then `inputsOf`/`targetsOf` are `block` itself. */
  private readonly corrupt: Corruption | null;
  /** The block's tokens as inputs and as targets: corrupted copies, or `block`. */
  private readonly inputsOf: Int32Array;
  private readonly targetsOf: Int32Array;

  private constructor(private readonly opts: LoaderOptions, private readonly reader: TokenReader) {
    this.S = opts.shuffleBuffer ?? 2048;
    this.seed = opts.seed ?? 0;
    this.rng = new Rng(this.seed, opts.resumeFrom?.rng ?? 0);
    this.block = new Int32Array(this.S * (opts.seqLen + 1));
    this.perm = new Uint32Array(this.S);
    this.blockStart = { ...reader.pos };
    this.taken = this.S;
    this.corrupt = opts.corrupt !== undefined && isCorrupting(opts.corrupt) ? { ...opts.corrupt } : null;
    this.inputsOf = this.corrupt?.randomInputs ? new Int32Array(this.block.length) : this.block;
    this.targetsOf = this.corrupt && (this.corrupt.randomLabels || this.corrupt.labelNoise > 0) ? new Int32Array(this.block.length) : this.block;
  }

  static async open(opts: LoaderOptions): Promise<BatchLoader> {
    checkStreamOptions(opts);
    checkInt('shuffleBuffer', opts.shuffleBuffer ?? 2048, 1);
    const seed = opts.seed ?? 0;
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) fail(`seed must be an integer in [0, 2^32), got ${seed}`);
    const problem = opts.corrupt === undefined ? null : corruptionProblem(opts.corrupt);
    if (problem !== null) fail(`corrupt: ${problem}`);
    const state = opts.resumeFrom;
    if (state !== undefined) {
      const want = BatchLoader.settings(opts);
      if (state.version !== 1) fail(`resume: unsupported state version ${JSON.stringify(state.version)}`);
      for (const k of ['seed', 'seqLen', 'shuffleBuffer', 'tokenizer'] as const) {
        if (state[k] !== want[k]) fail(`resume: the state was made with ${k} ${JSON.stringify(state[k])}, this loader has ${JSON.stringify(want[k])}`);
      }
      const had = JSON.stringify(corruptionOf(state.corrupt));
      const has = JSON.stringify(corruptionOf(opts.corrupt));
      if (had !== has) fail(`resume: the state was made with corruption ${had}, this loader has ${has}`);
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
    await this.reader.read(this.block, 0, this.S * L, this.corrupt ? this.corruptChunk : undefined);   // endless: always fills
    const p = this.perm;
    for (let i = 0; i < this.S; i++) p[i] = i;
    for (let i = this.S - 1; i > 0; i--) {
      const j = Math.floor(uniform01(this.seed, this.blockRng + i, 0, true) * (i + 1));
      const t = p[i]; p[i] = p[j]; p[j] = t;
    }
    this.taken = 0;
  }

  /** Fills inputsOf/targetsOf for block[at .. at+k): tokens token .. token+k of document `doc` of file `file` (file comment). */
  private readonly corruptChunk = (at: number, file: number, doc: number, token: number, k: number): void => {
    const c = this.corrupt as Corruption;
    const V = this.opts.tokenizer.vocabSize;
    const key = randomBits(this.seed, doc, CORRUPT_STREAM + file);
    const labels = c.randomLabels || c.labelNoise > 0;
    const p = c.randomLabels ? 1 : c.labelNoise;
    for (let i = 0; i < k; i++) {
      const j = at + i;
      const clean = this.block[j];
      if (labels) {
        // u < 1 always, so randomLabels is labelNoise 1 with the same ids.
        this.targetsOf[j] = uniform01(key, token + i, 0, true) < p ? Math.min(V - 1, Math.floor(uniform01(key, token + i, 1, true) * V)) : clean;
      }
      if (c.randomInputs) this.inputsOf[j] = Math.min(V - 1, Math.floor(uniform01(key, token + i, 2, true) * V));
    }
  };

  /** The next batch: inputs and targets [B, T] int32. */
  async next(): Promise<Batch> {
    const { batchSize: B, seqLen: T } = this.opts;
    const L = T + 1;
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      if (this.taken === this.S) await this.readBlock();
      const s = this.perm[this.taken++] * L;
      inputs.set(this.inputsOf.subarray(s, s + T), b * T);
      targets.set(this.targetsOf.subarray(s + 1, s + L), b * T);
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
      ...(this.corrupt ? { corrupt: { ...this.corrupt } } : {}),
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

/** The corruption a setting amounts to: NO_CORRUPTION for none, absent or all-off. */
function corruptionOf(c: Corruption | undefined): Corruption {
  return c !== undefined && isCorrupting(c) ? { labelNoise: c.labelNoise, randomLabels: c.randomLabels, randomInputs: c.randomInputs } : NO_CORRUPTION;
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
