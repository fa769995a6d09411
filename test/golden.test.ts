/**
 * The composites and one pre-norm transformer block against golden outputs
 * and gradients computed by PyTorch (test/fixtures/make_golden.py, an
 * independent implementation; its JSON output is committed beside it).
 *
 * Each case runs in float64 on ref and on cpu (agreement to ~1e-12: only
 * summation order and libm differ) and in float32 on cpu, where inputs are
 * rounded to float32 first, so the error is float32 rounding (u ≈ 6e-8)
 * amplified by the op's conditioning: tolerances there are 1e-4 relative
 * plus 1e-5 of the largest magnitude in the expected tensor.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as S from '../src/index.js';
import type { Tensor, DType } from '../src/index.js';
import { assertClose } from './helpers.js';

interface FixtureTensor { shape: number[]; dtype: 'float64' | 'int32'; data: number[] }
interface Case {
  name: string; op: string; params: Record<string, number>;
  inputs: Record<string, FixtureTensor>; outputs: { out: FixtureTensor }; grads: Record<string, FixtureTensor>;
}

const fixtures = JSON.parse(readFileSync(new URL('../../test/fixtures/golden.json', import.meta.url), 'utf8')) as { cases: Case[] };

/** One pre-norm block: h = x + Attn(LN1(x)); y = h + relu(LN2(h)·w1 + b1)·w2 + b2 (fixture conventions). */
function transformerBlock(p: Record<string, Tensor>, heads: number, eps: number): Tensor {
  const x = p.x;
  const [B, T, d] = x.shape;
  const hd = d / heads;
  const split = (t: Tensor) => S.permute(S.reshape(t, [B, T, heads, hd]), [0, 2, 1, 3]); // [B, H, T, hd]
  const xn = S.nn.layerNorm(x, p.ln1_w, p.ln1_b, eps);
  const att = S.nn.causalAttention(split(S.matmul(xn, p.wq)), split(S.matmul(xn, p.wk)), split(S.matmul(xn, p.wv)));
  const merged = S.reshape(S.permute(att, [0, 2, 1, 3]), [B, T, d]);
  const h = S.add(x, S.matmul(merged, p.wo));
  const hn = S.nn.layerNorm(h, p.ln2_w, p.ln2_b, eps);
  return S.add(h, S.add(S.matmul(S.relu(S.add(S.matmul(hn, p.w1), p.b1)), p.w2), p.b2));
}

function run(c: Case, p: Record<string, Tensor>): Tensor {
  const prm = c.params;
  switch (c.op) {
    case 'softmax': return S.nn.softmax(p.x, prm.axis);
    case 'log_softmax': return S.nn.logSoftmax(p.x, prm.axis);
    case 'cross_entropy': return S.nn.crossEntropy(p.logits, p.targets);
    case 'layer_norm': return S.nn.layerNorm(p.x, p.weight, p.bias, prm.eps);
    case 'rms_norm': return S.nn.rmsNorm(p.x, p.weight, prm.eps);
    case 'relu': return S.relu(p.x);
    case 'gelu': return S.nn.gelu(p.x);
    case 'silu': return S.nn.silu(p.x);
    case 'sigmoid': return S.sigmoid(p.x);
    case 'tanh': return S.tanh(p.x);
    case 'causal_attention': return S.nn.causalAttention(p.q, p.k, p.v);
    case 'conv_lm': return S.nn.convLM(p.m, p.kernel, p.bias);
    case 'matmul': return S.matmul(p.a, p.b);
    case 'transformer_block': return transformerBlock(p, prm.heads, prm.eps);
    default: throw new Error(`golden: no runner for op '${c.op}' (case ${c.name})`);
  }
}

const maxAbs = (t: FixtureTensor) => t.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

const configs: { device: string; dtype: DType; rtol: number; atol: number }[] = [
  { device: 'ref', dtype: 'float64', rtol: 1e-10, atol: 1e-12 },
  { device: 'cpu', dtype: 'float64', rtol: 1e-10, atol: 1e-12 },
  { device: 'cpu', dtype: 'float32', rtol: 1e-4, atol: 1e-5 },
];

for (const cfg of configs) {
  describe(`golden fixtures from PyTorch (${cfg.device}, ${cfg.dtype})`, () => {
    for (const c of fixtures.cases) {
      it(c.name, () => {
        const p: Record<string, Tensor> = {};
        for (const [k, v] of Object.entries(c.inputs)) {
          p[k] = S.tensor(Float64Array.from(v.data), v.shape, {
            dtype: v.dtype === 'int32' ? 'int32' : cfg.dtype, device: cfg.device, requiresGrad: v.dtype !== 'int32' && k !== 'R',
          });
        }
        const out = run(c, p);
        const expected = c.outputs.out;
        assert.deepEqual([...out.shape], expected.shape, `${c.name}: output shape`);
        assertClose(out, expected.data, cfg.rtol, cfg.atol * Math.max(1, maxAbs(expected)), `${c.name} out`);
        S.backward(S.sum(S.mul(out, p.R)));
        for (const [k, g] of Object.entries(c.grads)) {
          assertClose(p[k].grad as Tensor, g.data, cfg.rtol, cfg.atol * Math.max(1, maxAbs(g)), `${c.name} d/d${k}`);
        }
      });
    }
  });
}
