/**
 * Errors that name what was wrong and where. Every check in the tensor core
 * throws a SparselmError whose message starts with the op's name, so a shape
 * mismatch deep in a model reads "matmul: a [2,3] and b [4,5]: inner
 * dimensions differ (3 vs 4)" rather than a stack trace from a kernel.
 */

export class SparselmError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SparselmError';
  }
}

/** Formats a shape as `[2,3,4]` for messages. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** Throws `op: message` unless `cond` holds. */
export function check(cond: boolean, op: string, message: () => string): asserts cond {
  if (!cond) throw new SparselmError(`${op}: ${message()}`);
}
