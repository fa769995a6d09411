/**
 * Gradient rules: one per primitive, in a table typed `{ [O in PrimOp]: ... }`
 * so that adding a primitive without a rule is a compile error.
 *
 * A rule gets d(loss)/d(out) and the node (inputs, output, params) and returns
 * d(loss)/d(input) for each input, or null where the input is not
 * differentiable (indices, masks) or needs no gradient. Rules run under
 * noGrad; they are written with the public ops so they work on every backend.
 */

import type { NodeFor } from './node.js';
import type { PrimOp } from '../ops/primitives.js';
import * as P from '../ops/primitives.js';
import { add, cos, div, exp, mul, neg, sin, sub, sum, sumTo, transpose, where, eq, unsqueeze } from '../ops/index.js';
import { isFloat } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';

export type GradRule<O extends PrimOp> = (g: Tensor, node: NodeFor<O>) => (Tensor | null)[];

const TWO_OVER_SQRT_PI = 1.1283791670955126;

export const gradRules: { [O in PrimOp]: GradRule<O> } = {
  reshape: (g, { inputs: [x] }) => [P.reshape(g, x.shape)],
  permute: (g, { params }) => {
    const inverse = new Array<number>(params.axes.length);
    params.axes.forEach((a, i) => { inverse[a] = i; });
    return [P.permute(g, inverse)];
  },
  expand: (g, { inputs: [x] }) => [sumTo(g, x.shape)],
  slice: (g, { inputs: [x], params }) => [P.pad(g, x.shape.map((d, i): [number, number] => [params.starts[i], d - params.ends[i]]))],
  pad: (g, { inputs: [x], params }) => [P.slice(g, params.pads.map(([b]) => b), params.pads.map(([b], i) => b + x.shape[i]))],
  copy: (g) => [g],
  cast: (g, { inputs: [x] }) => [isFloat(x.dtype) ? P.cast(g, x.dtype) : null],
  unary: (g, { inputs: [x], out, params }) => {
    switch (params.op) {
      case 'neg': return [neg(g)];
      case 'exp': return [mul(g, out)];
      case 'log': return [div(g, x)];
      case 'sqrt': return [div(g, mul(out, 2))];
      case 'sin': return [mul(g, cos(x))];
      case 'cos': return [neg(mul(g, sin(x)))];
      case 'tanh': return [mul(g, sub(1, mul(out, out)))];
      case 'erf': return [mul(g, mul(exp(neg(mul(x, x))), TWO_OVER_SQRT_PI))];
      default: return params.op satisfies never;
    }
  },
  binary: (g, { inputs: [a, b], params }) => {
    switch (params.op) {
      case 'add': return [g, g];
      case 'sub': return [g, neg(g)];
      case 'mul': return [mul(g, b), mul(g, a)];
      case 'div': return [div(g, b), neg(div(mul(g, a), mul(b, b)))];
      default: return params.op satisfies never;
    }
  },
  compare: () => [null, null],
  where: (g, { inputs: [cond] }) => [null, where(cond, g, 0), where(cond, 0, g)],
  reduce: (g, { inputs: [x], out, params }) => {
    const gk = unsqueeze(g, params.axis);
    if (params.op === 'sum') return [P.expand(gk, x.shape)];
    // max: the gradient is shared equally by all entries equal to the maximum.
    const mask = P.cast(eq(x, unsqueeze(out, params.axis)), x.dtype);
    return [div(mul(mask, gk), sum(mask, params.axis, true))];
  },
  matmul: (g, { inputs: [a, b] }) => [P.matmulStrict(g, transpose(b)), P.matmulStrict(transpose(a), g)],
  gather: (g, { inputs: [x, index], params }) => [P.scatterAdd(g, params.axis, index, x.shape), null],
  scatterAdd: (g, { inputs: [, index], params }) => [P.gather(g, params.axis, index), null],
  topk: (g, { inputs: [x], params }) => [P.scatterAdd(g, x.rank - 1, params.indices, x.shape)],
  random: () => [],
};

/** Adds two gradient contributions. */
export function accumulate(a: Tensor | undefined, b: Tensor): Tensor {
  return a ? add(a, b) : b;
}
