/**
 * Tokenizers: text to token ids and back, behind one interface, saved inside
 * checkpoints as plain JSON.
 *
 * Kinds:
 * - `byte`: the UTF-8 bytes 0..255, eos 256 (vocabulary 257).
 * - `gpt2`: GPT-2's byte-level BPE (vocabulary 50257, eos 50256), from the
 *   `gpt-tokenizer` package, which ships the ranks; nothing is downloaded.
 * - `bpe`: a byte-level BPE vocabulary trained here on a corpus (`trainBpe`):
 *   ids 0..255 are bytes, 256..V-2 the merges in the order learned, V-1 eos.
 *
 * Special tokens. Every kind has exactly one, the end-of-document token eos,
 * written `<|endoftext|>`, and it is always the last id (vocabSize - 1).
 * Packing puts it between documents; `encode` never produces it, not even for
 * text that contains the characters `<|endoftext|>` (those are encoded as
 * ordinary text, so a document cannot forge a document boundary); `decode`
 * renders it as `<|endoftext|>`.
 *
 * Invariants: `decode(encode(s)) === s` for every well-formed string (a lone
 * UTF-16 surrogate has no UTF-8 form and comes back as U+FFFD); decoding ids
 * that split a multi-byte character gives U+FFFD for the partial bytes, never
 * an error, and carries no state from one call to the next; an id outside
 * [0, vocabSize) is an error naming it; `loadTokenizer(t.toJSON())` behaves
 * exactly as `t`.
 */

import { SparselmError } from '../tensor/errors.js';
import { ByteTokenizer } from './tokenizers/byte.js';
import { Gpt2Tokenizer } from './tokenizers/gpt2.js';
import { BpeTokenizer, type BpeJSON } from './tokenizers/bpe.js';

export { trainBpe, BpeTokenizer, GPT2_PATTERN, type BpeJSON, type TrainBpeOptions, type TrainBpeProgress } from './tokenizers/bpe.js';
export { ByteTokenizer } from './tokenizers/byte.js';
export { Gpt2Tokenizer } from './tokenizers/gpt2.js';

export { EOS_TEXT } from './tokenizers/common.js';
export type TokenizerKind = 'byte' | 'gpt2' | 'bpe';

/** A tokenizer as saved in a checkpoint. */
export type TokenizerJSON = { kind: 'byte' } | { kind: 'gpt2' } | BpeJSON;

export interface Tokenizer {
  readonly kind: TokenizerKind;
  /** Number of ids, special ones included: every id is in [0, vocabSize). */
  readonly vocabSize: number;
  /** The end-of-document id (always vocabSize - 1). */
  readonly eos: number;
  /** Every special token: its text form and id (today only `<|endoftext|>`: eos). */
  readonly specialTokens: Readonly<Record<string, number>>;
  /** Token ids of `text`; never a special id. */
  encode(text: string): number[];
  /** The text of `ids`; special ids render as their text form. */
  decode(ids: ArrayLike<number>): string;
  /** The UTF-8 bytes that `id` stands for (a copy); empty for special ids. For bits-per-byte and for decoding a stream token by token. */
  tokenBytes(id: number): Uint8Array;
  /** A JSON-serialisable object from which `loadTokenizer` restores this tokenizer. */
  toJSON(): TokenizerJSON;
}

/** Restores a tokenizer saved with `toJSON()`; also makes the fixed kinds from `{ kind: 'byte' }` and `{ kind: 'gpt2' }`. */
export function loadTokenizer(json: unknown): Tokenizer {
  const kind = (json as { kind?: unknown } | null)?.kind;
  switch (kind) {
    case 'byte': return new ByteTokenizer();
    case 'gpt2': return new Gpt2Tokenizer();
    case 'bpe': return BpeTokenizer.fromJSON(json as BpeJSON);
    default:
      throw new SparselmError(`tokenizer: unknown kind ${JSON.stringify(kind)} (expected 'byte', 'gpt2' or 'bpe')`);
  }
}
