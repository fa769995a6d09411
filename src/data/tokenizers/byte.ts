/**
 * The byte tokenizer: one id per UTF-8 byte (0..255) and eos = 256, so the
 * vocabulary is 257. Exact for every well-formed string; no training, no
 * state, and the baseline that a trained vocabulary must beat.
 */

import type { Tokenizer } from '../tokenizer.js';
import { checkIds, decodeTokenBytes, EOS_TEXT } from './common.js';

const BYTES: readonly Uint8Array[] = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
const utf8 = new TextEncoder();

export class ByteTokenizer implements Tokenizer {
  readonly kind = 'byte' as const;
  readonly vocabSize = 257;
  readonly eos = 256;
  readonly specialTokens: Readonly<Record<string, number>> = Object.freeze({ [EOS_TEXT]: 256 });

  encode(text: string): number[] {
    return Array.from(utf8.encode(text));
  }

  decode(ids: ArrayLike<number>): string {
    checkIds(this.kind, ids, this.vocabSize);
    return decodeTokenBytes(ids, BYTES, this.eos);
  }

  tokenBytes(id: number): Uint8Array {
    checkIds(this.kind, [id], this.vocabSize);
    return id === this.eos ? new Uint8Array(0) : Uint8Array.of(id);
  }

  toJSON(): { kind: 'byte' } {
    return { kind: 'byte' };
  }
}
