/**
 * Every op on the cpu backend against the reference backend, on awkward
 * shapes (odd sizes, size-1 and empty axes), broadcasting and non-contiguous
 * views (permuted, sliced, expanded), in float32 and float64 (and int32 where
 * the op takes it).
 *
 * Elementwise ops, compare, where, copy, reductions and top-k must agree
 * exactly: both backends evaluate the same float64 expression per element and
 * round once on store, and sum in the same order. Matmul may differ by
 * float32 rounding in a different summation order; its bound is the standard
 * one, |Δc_ij| <= 2·K·u·(|A|·|B|)_ij with u the unit roundoff.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as S from '../src/index.js';
import type { Tensor, DType } from '../src/index.js';
import { assertClose, normalData } from './helpers.js';
import { KERNEL_NAMES } from '../src/backends/backend.js';

const DEVICES = ['ref', 'cpu'] as const;

/** The same data on both devices. */
function pair(shape: number[], seed: number, dtype: DType = 'float32', map: (v: number) => number = (v) => v): [Tensor, Tensor] {
  const data = normalData(shape, seed).map(map);
  return [S.tensor(data, shape, { dtype, device: 'ref' }), S.tensor(data, shape, { dtype, device: 'cpu' })];
}

/** Runs f on ref and cpu inputs and checks the outputs agree exactly. */
function same(what: string, f: (...xs: Tensor[]) => Tensor | Tensor[], inputs: [Tensor, Tensor][]): void {
  const r = f(...inputs.map((p) => p[0]));
  const c = f(...inputs.map((p) => p[1]));
  const rs = Array.isArray(r) ? r : [r];
  const cs = Array.isArray(c) ? c : [c];
  rs.forEach((t, i) => {
    assert.equal(cs[i].device, 'cpu');
    assert.equal(cs[i].dtype, t.dtype, `${what}: dtype`);
    assertClose(cs[i], t, 0, 0, what);
  });
}

/** Views that make a [3,5,7] input non-contiguous in different ways. */
const VIEWS: Record<string, (x: Tensor) => Tensor> = {
  contiguous: (x) => x,
  permuted: (x) => S.permute(x, [2, 0, 1]),
  sliced: (x) => S.slice(x, [1, 1, 2], [3, 4, 7]),
  transposedSlice: (x) => S.transpose(S.slice(x, [0, 1, 0], [3, 5, 6]), 0, 2),
};

describe('cpu backend against ref', () => {
  it('claims its own kernels honestly', () => {
    const cpu = S.getBackend('cpu');
    for (const k of KERNEL_NAMES) {
      assert.equal(cpu.supports(k, 'float32'), cpu.kernels[k] !== undefined, `supports(${k}) must match having a kernel`);
    }
  });

  for (const dtype of ['float32', 'float64'] as const) {
    for (const [vname, v] of Object.entries(VIEWS)) {
      it(`unary ops, ${dtype}, ${vname}`, () => {
        for (const op of ['neg', 'exp', 'log', 'sqrt', 'sin', 'cos', 'tanh', 'erf'] as const) {
          const positive = op === 'log' || op === 'sqrt';
          const x = pair([3, 5, 7], 1, dtype, positive ? Math.abs : (a) => a);
          same(`${op} ${vname}`, (t) => S[op](v(t)), [x]);
        }
      });
    }

    it(`binary ops with broadcasting, ${dtype}`, () => {
      const shapes: [number[], number[]][] = [[[4, 1, 5], [3, 1]], [[1], [2, 3]], [[6, 7], [6, 7]], [[], [3]], [[2, 0, 3], [3]]];
      for (const op of ['add', 'sub', 'mul', 'div'] as const) {
        for (const [sa, sb] of shapes) {
          same(`${op} ${sa} ${sb}`, (a, b) => S[op](a, b), [pair(sa, 2, dtype), pair(sb, 3, dtype)]);
        }
        // Broadcast on a non-contiguous operand and a scalar operand.
        same(`${op} permuted`, (a, b) => S[op](S.permute(a, [1, 0]), b), [pair([5, 4], 4, dtype), pair([4, 1], 5, dtype)]);
        same(`${op} scalar`, (a) => S[op](a, 0.75), [pair([3, 3], 6, dtype)]);
      }
    });

    it(`compare and where, ${dtype}`, () => {
      const special = (v: number, i: number) => (i % 7 === 0 ? NaN : i % 5 === 0 ? Math.round(v) : v);
      const a = pair([4, 6], 7, dtype, special as (v: number) => number);
      const b = pair([6], 8, dtype, (v) => Math.round(v));
      for (const op of ['lt', 'le', 'gt', 'ge', 'eq'] as const) same(op, (x, y) => S[op](x, y), [a, b]);
      same('where', (x, y) => S.where(S.gt(x, 0), x, S.expand(y, [4, 6])), [a, b]);
      same('where, transposed operands', (x, y) => S.where(S.transpose(S.gt(x, 0)), S.transpose(x), S.transpose(S.expand(y, [4, 6]))), [a, b]);
    });

    it(`reductions over every axis, ${dtype}`, () => {
      for (const [vname, v] of Object.entries(VIEWS)) {
        for (const axis of [0, 1, 2]) {
          const x = pair([3, 5, 7], 9 + axis, dtype);
          same(`sum ${vname} axis ${axis}`, (t) => S.sum(v(t), axis), [x]);
          same(`max ${vname} axis ${axis}`, (t) => S.max(v(t), axis), [x]);
        }
      }
      const withNaN = pair([4, 5], 11, dtype, (x) => (x > 1 ? NaN : x));
      same('max with NaN', (t) => S.max(t, 1), [withNaN]);
      same('sum of empty axis', (t) => S.sum(t, 1), [pair([3, 0], 12, dtype)]);
      same('max of empty axis', (t) => S.max(t, 1), [pair([3, 0], 12, dtype)]);
      same('sum all', (t) => S.sum(t), [pair([2, 3, 4], 13, dtype)]);
    });

    it(`top-k with ties and NaN, ${dtype}`, () => {
      const rounded = pair([5, 17], 14, dtype, (x) => Math.round(x * 2) / 2); // many ties
      for (const k of [0, 1, 3, 17]) same(`topk k=${k}`, (t) => S.topk(t, k), [rounded]);
      same('topk of a permuted view', (t) => S.topk(S.transpose(t), 2), [rounded]);
      const nan = pair([3, 9], 15, dtype, (x) => (x > 0.8 ? NaN : x));
      same('topk with NaN', (t) => S.topk(t, 4), [nan]);
    });

    it(`copy, pad, cast, gather, scatterAdd, ${dtype}`, () => {
      const x = pair([3, 5, 7], 16, dtype);
      for (const [vname, v] of Object.entries(VIEWS)) same(`copy ${vname}`, (t) => S.contiguous(v(t)), [x]);
      same('pad', (t) => S.pad(S.permute(t, [1, 0, 2]), [[1, 0], [0, 2], [3, 1]]), [x]);
      same('cast to int32', (t) => S.cast(S.mul(t, 3), 'int32'), [x]);
      const idx = S.tensor(Int32Array.from([0, 4, 2, 2, 1, 3]), [2, 3, 1], { device: 'ref' });
      const idxCpu = S.tensor(Int32Array.from([0, 4, 2, 2, 1, 3]), [2, 3, 1], { device: 'cpu' });
      same('gather', (t, i) => S.gather(t, 1, i), [x, [idx, idxCpu]]);
      same('scatterAdd', (t, i) => S.scatterAdd(S.slice(t, [0, 0, 0], [2, 3, 1]), 1, i, [2, 5, 1]), [x, [idx, idxCpu]]);
    });

    it(`random draws, ${dtype}`, () => {
      for (const dist of ['uniform', 'normal', 'gumbel'] as const) {
        const [r, c] = DEVICES.map((device) => S.randomTensor(dist, [4, 33], new S.Rng(5, 7), { dtype, device }));
        assertClose(c, r, 0, 0, dist);
      }
    });

    it(`matmul, all shapes and layouts, ${dtype}`, () => {
      const u = dtype === 'float32' ? 2 ** -24 : 2 ** -53;
      const cases: { a: number[]; b: number[]; ta?: boolean; tb?: boolean }[] = [
        { a: [1, 1], b: [1, 1] }, { a: [7, 13], b: [13, 5] }, { a: [33, 65], b: [65, 17] }, { a: [129, 31], b: [31, 70] },
        { a: [5, 9], b: [5, 11], ta: true }, { a: [6, 9], b: [12, 9], tb: true }, { a: [19, 8], b: [21, 19], ta: true, tb: true },
        { a: [2, 1, 3, 4], b: [3, 4, 5] }, { a: [4], b: [4, 3] }, { a: [3, 4], b: [4] }, { a: [2, 3, 0], b: [0, 4] },
      ];
      for (const c of cases) {
        const [ar, ac] = pair(c.a, 20, dtype);
        const [br, bc] = pair(c.b, 21, dtype);
        const f = (a: Tensor, b: Tensor) => S.matmul(c.ta ? S.transpose(a) : a, c.tb ? S.transpose(b) : b);
        const r = f(ar, br);
        const got = f(ac, bc);
        const K = c.ta ? c.a[c.a.length - 2] : c.a[c.a.length - 1];
        const bound = f(S.tensor(ar.toArray().map(Math.abs), ar.shape, { dtype: 'float64', device: 'ref' }),
          S.tensor(br.toArray().map(Math.abs), br.shape, { dtype: 'float64', device: 'ref' })).toArray();
        const diff = got.toArray();
        const ref = r.toArray();
        assert.deepEqual([...got.shape], [...r.shape]);
        for (let i = 0; i < ref.length; i++) {
          const tol = 2 * Math.max(K, 1) * u * bound[i];
          assert.ok(Math.abs(diff[i] - ref[i]) <= tol, `matmul ${JSON.stringify(c)}: element ${i}: ${diff[i]} vs ${ref[i]} (bound ${tol})`);
        }
      }
      // A sliced operand (row stride larger than its width) and a permuted batch.
      const [xr, xc] = pair([6, 10], 22, dtype);
      const [yr, yc] = pair([3, 4, 5], 23, dtype);
      const g = (x: Tensor, y: Tensor) => S.matmul(S.slice(x, [1, 2], [5, 7]), S.permute(y, [1, 2, 0]));
      assertClose(g(xc, yc), g(xr, yr), 8 * 5 * u, 8 * 5 * u, 'matmul of views');
    });
  }

  it('int32 arithmetic', () => {
    const a = [S.tensor([7, -7, 9, 0], [4], { dtype: 'int32', device: 'ref' }), S.tensor([7, -7, 9, 0], [4], { dtype: 'int32', device: 'cpu' })] as [Tensor, Tensor];
    const b = [S.tensor([2, 2, -4, 3], [4], { dtype: 'int32', device: 'ref' }), S.tensor([2, 2, -4, 3], [4], { dtype: 'int32', device: 'cpu' })] as [Tensor, Tensor];
    for (const op of ['add', 'sub', 'mul', 'div'] as const) same(`int32 ${op}`, (x, y) => S[op](x, y), [a, b]);
    assert.deepEqual(Array.from(S.div(a[1], b[1]).toArray()), [3, -3, -2, 0], 'int32 division truncates toward zero');
  });
});
