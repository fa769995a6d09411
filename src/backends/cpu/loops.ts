/**
 * The cpu backend's elementwise loops, specialised per op.
 *
 * Why so many near-identical loops: a loop that calls an op passed in as a
 * function is megamorphic in V8 (one call site, many targets) and runs an
 * order of magnitude slower than a loop with the arithmetic inline. So each
 * op gets its own inner loop, chosen once per line (a "line" is the innermost
 * axis of the output; the caller walks the outer axes). Every loop takes
 * (out, o, a, ai, as, b, bi, bs, n): n elements, out contiguous from o, the
 * inputs from ai and bi with steps as and bs (0 for a broadcast input).
 */

import type { BinaryOp, CompareOp, UnaryOp } from '../backend.js';
import type { DataArray } from '../../tensor/dtype.js';
import { erf } from '../ref/index.js';

export type BinaryLine = (out: DataArray, o: number, a: DataArray, ai: number, as: number, b: DataArray, bi: number, bs: number, n: number) => void;
export type UnaryLine = (out: DataArray, o: number, a: DataArray, ai: number, as: number, n: number) => void;

const add: BinaryLine = (out, o, a, ai, as, b, bi, bs, n) => {
  if (as === 1 && bs === 1) for (let i = 0; i < n; i++) out[o + i] = a[ai + i] + b[bi + i];
  else if (as === 1 && bs === 0) { const v = b[bi]; for (let i = 0; i < n; i++) out[o + i] = a[ai + i] + v; }
  else for (let i = 0; i < n; i++) out[o + i] = a[ai + i * as] + b[bi + i * bs];
};
const sub: BinaryLine = (out, o, a, ai, as, b, bi, bs, n) => {
  if (as === 1 && bs === 1) for (let i = 0; i < n; i++) out[o + i] = a[ai + i] - b[bi + i];
  else if (as === 1 && bs === 0) { const v = b[bi]; for (let i = 0; i < n; i++) out[o + i] = a[ai + i] - v; }
  else for (let i = 0; i < n; i++) out[o + i] = a[ai + i * as] - b[bi + i * bs];
};
const mul: BinaryLine = (out, o, a, ai, as, b, bi, bs, n) => {
  if (as === 1 && bs === 1) for (let i = 0; i < n; i++) out[o + i] = a[ai + i] * b[bi + i];
  else if (as === 1 && bs === 0) { const v = b[bi]; for (let i = 0; i < n; i++) out[o + i] = a[ai + i] * v; }
  else for (let i = 0; i < n; i++) out[o + i] = a[ai + i * as] * b[bi + i * bs];
};
const div: BinaryLine = (out, o, a, ai, as, b, bi, bs, n) => {
  if (as === 1 && bs === 1) for (let i = 0; i < n; i++) out[o + i] = a[ai + i] / b[bi + i];
  else if (as === 1 && bs === 0) { const v = b[bi]; for (let i = 0; i < n; i++) out[o + i] = a[ai + i] / v; }
  else for (let i = 0; i < n; i++) out[o + i] = a[ai + i * as] / b[bi + i * bs];
};
const imul: BinaryLine = (out, o, a, ai, as, b, bi, bs, n) => {
  for (let i = 0; i < n; i++) out[o + i] = Math.imul(a[ai + i * as], b[bi + i * bs]);
};
const idiv: BinaryLine = (out, o, a, ai, as, b, bi, bs, n) => {
  for (let i = 0; i < n; i++) out[o + i] = Math.trunc(a[ai + i * as] / b[bi + i * bs]);
};

export function binaryLine(op: BinaryOp, int: boolean): BinaryLine {
  switch (op) {
    case 'add': return add;
    case 'sub': return sub;
    case 'mul': return int ? imul : mul;
    case 'div': return int ? idiv : div;
    default: return op satisfies never;
  }
}

const lt: BinaryLine = (out, o, a, ai, as, b, bi, bs, n) => { for (let i = 0; i < n; i++) out[o + i] = a[ai + i * as] < b[bi + i * bs] ? 1 : 0; };
const le: BinaryLine = (out, o, a, ai, as, b, bi, bs, n) => { for (let i = 0; i < n; i++) out[o + i] = a[ai + i * as] <= b[bi + i * bs] ? 1 : 0; };
const eq: BinaryLine = (out, o, a, ai, as, b, bi, bs, n) => { for (let i = 0; i < n; i++) out[o + i] = a[ai + i * as] === b[bi + i * bs] ? 1 : 0; };

export function compareLine(op: CompareOp): BinaryLine {
  switch (op) {
    case 'lt': return lt;
    case 'le': return le;
    case 'eq': return eq;
    default: return op satisfies never;
  }
}

const unaryLines: Record<UnaryOp, UnaryLine> = {
  neg: (out, o, a, ai, as, n) => { for (let i = 0; i < n; i++) out[o + i] = -a[ai + i * as]; },
  exp: (out, o, a, ai, as, n) => { for (let i = 0; i < n; i++) out[o + i] = Math.exp(a[ai + i * as]); },
  log: (out, o, a, ai, as, n) => { for (let i = 0; i < n; i++) out[o + i] = Math.log(a[ai + i * as]); },
  sqrt: (out, o, a, ai, as, n) => { for (let i = 0; i < n; i++) out[o + i] = Math.sqrt(a[ai + i * as]); },
  sin: (out, o, a, ai, as, n) => { for (let i = 0; i < n; i++) out[o + i] = Math.sin(a[ai + i * as]); },
  cos: (out, o, a, ai, as, n) => { for (let i = 0; i < n; i++) out[o + i] = Math.cos(a[ai + i * as]); },
  tanh: (out, o, a, ai, as, n) => { for (let i = 0; i < n; i++) out[o + i] = Math.tanh(a[ai + i * as]); },
  erf: (out, o, a, ai, as, n) => { for (let i = 0; i < n; i++) out[o + i] = erf(a[ai + i * as]); },
};

export function unaryLine(op: UnaryOp): UnaryLine {
  return unaryLines[op];
}
