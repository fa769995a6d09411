/**
 * GPT-2's tokenizer (the r50k_base ranks: 256 byte tokens and 50,000 merges,
 * eos `<|endoftext|>` = 50256, vocabulary 50257) through `gpt-tokenizer`, a
 * pure-JS implementation that ships the ranks inside the package (nothing is
 * downloaded; works in browsers too).
 *
 * Encoding is the package's. Decoding is done here, from the package's own
 * rank table turned into bytes per id: its `decode` keeps one streaming
 * TextDecoder for all calls, so ids that end inside a multi-byte character
 * leave bytes behind that surface in the next, unrelated decode (4.0.0:
 * decode([127]) gives '' and the next decode starts with U+FFFD), and the
 * decoder of a model decodes partial id lists all the time.
 *
 * Why not `js-tiktoken` (1.0.21, whose decode is fine): its merge loop is
 * far worse than quadratic in the length of a pre-token piece; one run of
 * 5,000 '=' took 3.8 s (gpt-tokenizer: 22 ms) and 5,000 emoji 24 s
 * (gpt-tokenizer: 0.19 s), so one odd document could stall training. It is
 * also about 4x slower on ordinary text (the 3 MB sample: 2.6 s vs 0.6 s).
 *
 * Cost of importing this module: the package's ranks, about 1 MB of
 * JavaScript, 70-160 ms and 6 MB of heap; the byte table for decoding is
 * built on first decode (about 70 ms). Importing lazily would make
 * `loadTokenizer` async for every kind; not worth it.
 */

import { encode as gpt2Encode } from 'gpt-tokenizer/encoding/gpt2';
import gpt2Ranks from 'gpt-tokenizer/bpeRanks/r50k_base';
import { SparselmError } from '../../tensor/errors.js';
import type { Tokenizer } from '../tokenizer.js';
import { checkIds, decodeTokenBytes, EOS_TEXT } from './common.js';

// No special token is allowed and none is disallowed: `<|endoftext|>` in the
// text is encoded as the ordinary characters it is made of.
const NONE = new Set<string>();
const EMPTY = new Uint8Array(0);

let table: Uint8Array[] | null = null;

/** Bytes of each id 0..50255, from the package's ranks (the token's text, or its bytes where they are not valid UTF-8 alone). */
function bytesTable(): Uint8Array[] {
  if (table !== null) return table;
  const utf8 = new TextEncoder();
  const bytes = Array.from(gpt2Ranks, (r) => (typeof r === 'string' ? utf8.encode(r) : Array.isArray(r) ? Uint8Array.from(r) : null));
  const hole = bytes.findIndex((b) => b === null);
  if (bytes.length !== 50256 || hole >= 0) {
    throw new SparselmError(`tokenizer gpt2: the gpt-tokenizer package's r50k_base ranks are not the 50,256 GPT-2 tokens (length ${bytes.length}, first hole ${hole})`);
  }
  table = bytes as Uint8Array[];
  return table;
}

export class Gpt2Tokenizer implements Tokenizer {
  readonly kind = 'gpt2' as const;
  readonly vocabSize = 50257;
  readonly eos = 50256;
  readonly specialTokens: Readonly<Record<string, number>> = Object.freeze({ [EOS_TEXT]: 50256 });

  encode(text: string): number[] {
    return gpt2Encode(text, { allowedSpecial: NONE, disallowedSpecial: NONE });
  }

  decode(ids: ArrayLike<number>): string {
    checkIds(this.kind, ids, this.vocabSize);
    return decodeTokenBytes(ids, bytesTable(), this.eos);
  }

  tokenBytes(id: number): Uint8Array {
    checkIds(this.kind, [id], this.vocabSize);
    return id === this.eos ? EMPTY.slice() : bytesTable()[id].slice();
  }

  toJSON(): { kind: 'gpt2' } {
    return { kind: 'gpt2' };
  }
}
