/**
 * Finite-difference gradient checks in float64 for every differentiable
 * primitive and every composite, on both host backends. Inputs are kept away
 * from kinks and ties (ReLU at 0, max and top-k ties); the behaviour exactly
 * at those points is pinned by separate tests below. A final test checks
 * that the checks above reached every primitive in the rule table.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as S from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { gradRules } from '../src/autograd/rules.js';
import type { PrimOp } from '../src/ops/primitives.js';
import { gradCheck, randT } from './helpers.js';

const seen = new Set<PrimOp>();
/** Records which primitives a graph used (walks the nodes). */
function track(t: Tensor): Tensor {
  const stack = [t];
  const visited = new Set<Tensor>();
  while (stack.length) {
    const x = stack.pop() as Tensor;
    if (visited.has(x) || !x.node) continue;
    visited.add(x);
    seen.add(x.node.op);
    stack.push(...x.node.inputs);
  }
  return t;
}

function check(name: string, f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], device: string, h?: number): void {
  gradCheck(name, (...xs) => track(f(...xs)), inputs.map((x) => (x.dtype === 'int32' ? S.tensor(x.toArray(), x.shape, { dtype: 'int32', device }) : S.tensor(x.toArray(), x.shape, { dtype: 'float64', device }))), { h });
}

/** Values well away from 0 (for ReLU) and from each other (for max / top-k). */
function spread(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const perm = Array.from({ length: n }, (_, i) => i);
  let s = seed;
  for (let i = n - 1; i > 0; i--) { s = (s * 1103515245 + 12345) % 2147483648; const j = s % (i + 1); [perm[i], perm[j]] = [perm[j], perm[i]]; }
  return S.tensor(Float64Array.from(perm, (p) => (p - n / 2 + 0.25) * 0.3), shape, { dtype: 'float64', device: 'ref' });
}

for (const device of ['ref', 'cpu']) {
  describe(`gradients by finite differences (float64, ${device})`, () => {
    it('views and data movement', () => {
      const x = randT([3, 4, 5], 1);
      check('reshape', (a) => S.reshape(a, [4, 15]), [x], device);
      check('reshape of a non-contiguous view', (a) => S.reshape(S.transpose(a), [15, 4]), [x], device);
      check('permute', (a) => S.permute(a, [2, 0, 1]), [x], device);
      check('expand', (a) => S.expand(S.slice(a, [0, 0, 0], [3, 1, 5]), [2, 3, 4, 5]), [x], device);
      check('slice', (a) => S.slice(a, [1, 0, 2], [3, 3, 5]), [x], device);
      check('pad', (a) => S.pad(a, [[1, 0], [0, 2], [2, 1]]), [x], device);
      check('copy', (a) => S.contiguous(S.permute(a, [1, 2, 0])), [x], device);
      // Values and step exactly representable in float32, so the round trip is exact and the difference quotient too.
      check('cast float64 -> float32 -> float64', (a) => S.cast(S.cast(a, 'float32'), 'float64'), [S.tensor([0.5, -1.25, 2], [3], { dtype: 'float64' })], device, 2 ** -10);
      check('concat', (a, b) => S.concat([a, b, a], 1), [randT([2, 3], 2), randT([2, 1], 3)], device);
    });

    it('unary and binary elementwise (with broadcasting)', () => {
      const x = randT([4, 5], 4);
      const pos = S.add(S.mul(S.tensor(randT([4, 5], 5).toArray().map(Math.abs), [4, 5], { dtype: 'float64' }), 1), 0.5);
      for (const op of ['neg', 'exp', 'sin', 'cos', 'tanh', 'erf'] as const) check(op, (a) => S[op](a), [x], device);
      check('log', (a) => S.log(a), [pos], device);
      check('sqrt', (a) => S.sqrt(a), [pos], device);
      const y = randT([5], 6);
      for (const op of ['add', 'sub', 'mul'] as const) check(op, (a, b) => S[op](a, b), [x, y], device);
      check('div', (a, b) => S.div(a, b), [x, pos], device);
      check('div broadcast', (a, b) => S.div(b, a), [S.slice(pos, [0, 0], [1, 5]), x], device);
    });

    it('where and compare-made masks', () => {
      const x = spread([4, 6], 7);
      check('where', (a, b) => S.where(S.gt(a, 0), a, S.mul(b, 2)), [x, randT([6], 8)], device);
    });

    it('reductions', () => {
      const x = spread([3, 4, 5], 9);
      for (const axis of [0, 1, 2]) {
        check(`sum axis ${axis}`, (a) => S.sum(a, axis), [x], device);
        check(`max axis ${axis}`, (a) => S.max(a, axis, true), [x], device);
      }
      check('mean of two axes', (a) => S.mean(a, [0, 2]), [x], device);
      check('sum all', (a) => S.sum(a), [x], device);
    });

    it('matmul, batched, broadcast and transposed', () => {
      check('matmul 2-D', (a, b) => S.matmul(a, b), [randT([3, 4], 10), randT([4, 5], 11)], device);
      check('matmul broadcast batch', (a, b) => S.matmul(a, b), [randT([2, 1, 3, 4], 12), randT([3, 4, 2], 13)], device);
      check('matmul transposed views', (a, b) => S.matmul(S.transpose(a), S.transpose(b)), [randT([4, 3], 14), randT([5, 4], 15)], device);
      check('matmul vector', (a, b) => S.matmul(a, b), [randT([4], 16), randT([4, 3], 17)], device);
    });

    it('gather, scatterAdd, indexSelect and topk', () => {
      const idx = S.tensor(Int32Array.from([2, 0, 2, 1, 3, 3]), [3, 2], { dtype: 'int32' });
      check('gather', (a, i) => S.gather(a, 1, i), [randT([3, 4], 18), idx], device);
      check('scatterAdd', (a, i) => S.scatterAdd(a, 1, i, [3, 4]), [randT([3, 2], 19), idx], device);
      check('indexSelect', (a, i) => S.indexSelect(a, 0, i), [randT([4, 3], 20), S.tensor(Int32Array.from([3, 0, 3]), [3], { dtype: 'int32' })], device);
      check('topk', (a) => S.topk(a, 3)[0], [spread([4, 7], 21)], device);
    });

    it('composites: softmax, log-softmax, cross-entropy, norms, activations', () => {
      const x = randT([3, 7], 22);
      check('softmax', (a) => S.nn.softmax(a, -1), [x], device);
      check('softmax axis 0', (a) => S.nn.softmax(a, 0), [x], device);
      check('logSoftmax', (a) => S.nn.logSoftmax(a, -1), [x], device);
      check('crossEntropy', (a, t) => S.nn.crossEntropy(a, t), [x, S.tensor(Int32Array.from([6, 0, 3]), [3], { dtype: 'int32' })], device);
      check('layerNorm', (a, w, b) => S.nn.layerNorm(a, w, b, 1e-5), [x, randT([7], 23), randT([7], 24)], device);
      check('rmsNorm', (a, w) => S.nn.rmsNorm(a, w, 1e-6), [x, randT([7], 25)], device);
      check('relu away from 0', (a) => S.relu(a), [spread([3, 5], 26)], device);
      check('gelu', (a) => S.nn.gelu(a), [x], device);
      check('silu', (a) => S.nn.silu(a), [x], device);
      check('sigmoid', (a) => S.sigmoid(a), [x], device);
    });

    it('composites: causal attention and the Sparse QKV convolution', () => {
      check('causalAttention', (q, k, v) => S.nn.causalAttention(q, k, v), [randT([2, 2, 4, 3], 27), randT([2, 2, 4, 3], 28), randT([2, 2, 4, 3], 29)], device);
      check('causalAttention with cached keys', (q, k, v) => S.nn.causalAttention(q, k, v), [randT([1, 2, 3], 30), randT([1, 5, 3], 31), randT([1, 5, 3], 32)], device);
      check('convLM', (m, w, b) => S.nn.convLM(m, w, b), [randT([2, 4, 3, 2], 33), randT([3, 3, 2, 2], 34), randT([2], 35)], device);
      check('convLM with state', (m, w, b, st) => S.nn.convLM(m, w, b, st), [randT([1, 2, 4, 2], 36), randT([3, 1, 2, 3], 37), randT([3], 38), randT([1, 2, 4, 2], 39)], device);
    });
  });
}

describe('gradients at kinks and ties', () => {
  it('relu passes gradient where x > 0 only (0 at x = 0)', () => {
    const x = S.tensor([-1, 0, 2], [3], { dtype: 'float64', requiresGrad: true });
    S.backward(S.sum(S.relu(x)));
    assert.deepEqual(Array.from((x.grad as Tensor).toArray()), [0, 0, 1]);
  });

  it('topk with ties routes gradient to the kept (lower-index) entries only', () => {
    const x = S.tensor([1, 3, 3, 2, 3], [5], { dtype: 'float64', requiresGrad: true });
    const [values, indices] = S.topk(x, 2);
    assert.deepEqual(Array.from(indices.toArray()), [1, 2]);
    S.backward(S.sum(S.mul(values, S.tensor([10, 1], [2], { dtype: 'float64' }))));
    assert.deepEqual(Array.from((x.grad as Tensor).toArray()), [0, 10, 1, 0, 0]);
  });

  it('max splits the gradient equally among tied maxima', () => {
    const x = S.tensor([[1, 4, 4], [2, 0, 1]], undefined, { dtype: 'float64', requiresGrad: true });
    S.backward(S.sum(S.max(x, 1)));
    assert.deepEqual(Array.from((x.grad as Tensor).toArray()), [0, 0.5, 0.5, 1, 0, 0]);
  });

  it('accumulates into .grad across backward calls and leaves noGrad results untracked', () => {
    const x = S.tensor([1, 2], [2], { dtype: 'float64', requiresGrad: true });
    S.backward(S.sum(S.mul(x, x)));
    S.backward(S.sum(S.mul(x, 3)));
    assert.deepEqual(Array.from((x.grad as Tensor).toArray()), [5, 7]);
    const y = S.noGrad(() => S.mul(x, x));
    assert.equal(y.requiresGrad, false);
    assert.equal(y.node, null);
    assert.throws(() => S.backward(S.sum(y)), /does not require grad/);
  });

  it('non-differentiable inputs get no gradient (indices, masks, random draws)', () => {
    const x = S.tensor([1, 2, 3], [3], { dtype: 'float64', requiresGrad: true });
    const m = S.lt(x, 2);
    assert.equal(m.dtype, 'int32');
    assert.deepEqual(gradRules.compare(x, { op: 'compare', params: { op: 'lt' }, inputs: [x, x], out: m }), [null, null]);
    assert.deepEqual(gradRules.random(x, { op: 'random', params: { dist: 'normal', seed: 1, counter: 0 }, inputs: [], out: x }), []);
  });
});

describe('rule table coverage', () => {
  it('every differentiable primitive was checked by finite differences above', () => {
    const nonDifferentiable: PrimOp[] = ['compare', 'random'];
    const missing = (Object.keys(gradRules) as PrimOp[]).filter((op) => !seen.has(op) && !nonDifferentiable.includes(op));
    assert.deepEqual(missing, []);
  });
});
