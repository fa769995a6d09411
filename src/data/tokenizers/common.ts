/**
 * What the tokenizer kinds share: the eos text, id checks, and turning
 * per-token byte strings back into text. Kept apart from `../tokenizer.ts`
 * so the kinds do not import the module that imports them.
 */

import { SparselmError } from '../../tensor/errors.js';

/** The text form of the end-of-document token, the same for every kind. */
export const EOS_TEXT = '<|endoftext|>';

/** Throws unless every id is an integer in [0, vocabSize). */
export function checkIds(kind: string, ids: ArrayLike<number>, vocabSize: number): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new SparselmError(`tokenizer ${kind}: decode: id ${id} at index ${i} is outside [0, ${vocabSize})`);
    }
  }
}

// Non-fatal (invalid bytes become U+FFFD) and used without `stream`, so no
// partial character is carried from one call into the next.
const utf8 = new TextDecoder('utf-8');

/**
 * Text of a byte-level token sequence: the bytes of consecutive ordinary
 * tokens are joined before UTF-8 decoding (a character may span tokens);
 * `eos` renders as EOS_TEXT.
 */
export function decodeTokenBytes(ids: ArrayLike<number>, bytesOf: readonly Uint8Array[], eos: number): string {
  let total = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] !== eos) total += bytesOf[ids[i]].length;
  const buf = new Uint8Array(total);
  let out = '';
  let start = 0;
  let at = 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id === eos) {
      out += utf8.decode(buf.subarray(start, at)) + EOS_TEXT;
      start = at;
    } else {
      buf.set(bytesOf[id], at);
      at += bytesOf[id].length;
    }
  }
  return out + utf8.decode(buf.subarray(start, at));
}
