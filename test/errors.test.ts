/**
 * Bad input gets an error that names the op, the argument and the shapes,
 * thrown before any kernel runs.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as S from '../src/index.js';

const f32 = (shape: number[]) => S.zeros(shape);
const idx = (values: number[], shape: number[]) => S.tensor(Int32Array.from(values), shape);

describe('errors name the op, the argument and the shapes', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['matmul inner dims', () => S.matmul(f32([2, 3]), f32([4, 5])), /^matmul: a \[2,3\] and b \[4,5\]: inner dimensions differ \(3 vs 4\)/],
    ['matmul batch broadcast', () => S.matmul(f32([2, 2, 3]), f32([3, 3, 1])), /^matmul: shapes \[2\] and \[3\] do not broadcast/],
    ['matmul int32', () => S.matmul(S.zeros([2, 2], { dtype: 'int32' }), S.zeros([2, 2], { dtype: 'int32' })), /^matmul: a must be float32 or float64, got int32/],
    ['add broadcast', () => S.add(f32([2, 3]), f32([4, 3])), /^add: shapes \[2,3\] and \[4,3\] do not broadcast \(axis -2: 2 vs 4\)/],
    ['add dtype', () => S.add(f32([2]), S.zeros([2], { dtype: 'float64' })), /^add: a is float32 but b is float64/],
    ['devices differ', () => S.add(S.zeros([2], { device: 'ref' }), S.zeros([2], { device: 'cpu' })), /^add: tensors on different devices \(ref, cpu\)/],
    ['exp of int32', () => S.exp(S.zeros([2], { dtype: 'int32' })), /^exp: x must be float32 or float64, got int32/],
    ['reshape size', () => S.reshape(f32([2, 3]), [4, 2]), /^reshape: cannot reshape \[2,3\] \(6 elements\) to \[4,2\]/],
    ['reshape negative', () => S.reshape(f32([2, 3]), [-1, 6]), /^reshape: shape: shape \[-1,6\] must hold non-negative integers/],
    ['permute', () => S.permute(f32([2, 3]), [0, 0]), /^permute: axes \[0,0\] are not a permutation of 0..1/],
    ['expand', () => S.expand(f32([2, 3]), [3, 3]), /^expand: cannot broadcast \[2,3\] to \[3,3\]/],
    ['slice range', () => S.slice(f32([2, 3]), [0, 1], [2, 4]), /^slice: range 1:4 on axis 1 is outside 0..3 of \[2,3\]/],
    ['sum axis', () => S.sum(f32([2, 3]), 2), /^sum: axis 2 is out of range for a tensor of rank 2/],
    ['gather index out of range', () => S.gather(f32([2, 3]), 1, idx([0, 3], [2, 1])), /^gather: index value 3 at flat position 1 of index \[2,1\] is out of range 0..2 for axis 1 of \[2,3\]/],
    ['gather negative index', () => S.gather(f32([2, 3]), 1, idx([-1, 0], [2, 1])), /^gather: index value -1 at flat position 0/],
    ['gather index dtype', () => S.gather(f32([2, 3]), 1, S.zeros([2, 1])), /^gather: index must be int32, got float32/],
    ['indexSelect range', () => S.indexSelect(f32([4, 2]), 0, idx([1, 4], [2])), /^gather: index value 4 .* out of range 0..3 for axis 0 of \[4,2\]/],
    ['scatterAdd shape', () => S.scatterAdd(f32([2, 2]), 1, idx([0, 1, 0], [3, 1]), [2, 3]), /^scatterAdd: src \[2,2\] and index \[3,1\] differ in shape/],
    ['topk k too large', () => S.topk(f32([2, 3]), 4), /^topk: k = 4 must be an integer in 0..3 \(last axis of \[2,3\]\)/],
    ['where cond dtype', () => S.where(f32([2]), f32([2]), f32([2])), /^where: cond must be int32, got float32/],
    ['crossEntropy targets', () => S.nn.crossEntropy(f32([2, 5]), idx([0, 1, 2], [3])), /^crossEntropy: logits \[2,5\] need shape \[...targets, V\] for targets \[3\]/],
    ['attention shapes', () => S.nn.causalAttention(f32([4, 3]), f32([2, 3]), f32([2, 3])), /^causalAttention: q \[4,3\], k \[2,3\], v \[2,3\]: need Tk >= Tq/],
    ['convLM kernel', () => S.nn.convLM(f32([1, 4, 2, 3]), f32([3, 2, 3, 3]), null), /^convLM: kernel \[3,2,3,3\] must be \[F_l, F_w \(odd\), 3, M'\]/],
    ['tensor data size', () => S.tensor([1, 2, 3], [2, 2]), /^tensor: 3 values do not fill shape \[2,2\]/],
    ['ragged data', () => S.tensor([[1, 2], [3]]), /^tensor: ragged nested array/],
    ['unknown device', () => S.zeros([2], { device: 'tpu' }), /^device: unknown device 'tpu' \(known: ref, cpu\)/],
    ['item of many', () => S.zeros([2]).item(), /^item: tensor of shape \[2\] has 2 elements, not 1/],
    ['backward of non-scalar', () => S.backward(S.mul(S.zeros([2], { requiresGrad: true }), 2)), /^backward: implicit gradient needs a single-element tensor, got \[2\]; pass grad/],
  ];
  for (const [name, f, pattern] of cases) {
    it(name, () => {
      assert.throws(f, (e: unknown) => {
        assert.ok(e instanceof S.SparselmError, `expected a SparselmError, got ${String(e)}`);
        assert.match(e.message, pattern);
        return true;
      });
    });
  }

  it('a disposed tensor refuses use', () => {
    const t = S.zeros([2]);
    t.dispose();
    assert.throws(() => S.add(t, 1), /add: tensor of shape \[2\] was disposed/);
    assert.throws(() => t.toArray(), /toArray: tensor of shape \[2\] was disposed/);
  });
});
