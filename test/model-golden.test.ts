/**
 * Whole models against golden outputs of an independent PyTorch
 * implementation (test/fixtures/make_model_golden.py, written from
 * docs/model.md): logits, loss and the gradient of every parameter, for every
 * layer kind, in training mode (Sparse FF with the fixture's Gumbel draw and
 * uniform) and evaluation mode. float64 on ref and cpu (the fixture stores 12
 * significant digits, hence 1e-9); float32 on cpu, with the inputs rounded to
 * float32 first (1e-4 relative plus 1e-5 of the largest magnitude: float32
 * roundoff, u ≈ 6e-8, amplified by the model's conditioning).
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as S from '../src/index.js';
import type { Tensor, DType } from '../src/index.js';
import { makeConfig } from '../src/models/config.js';
import { lossOf, forward, checkParameters } from '../src/models/transformer.js';
import type { SparseNoise } from '../src/nn/layers.js';
import { assertClose } from './helpers.js';

interface FT { shape: number[]; dtype: string; data: number[] }
interface Case {
  name: string; config: Record<string, unknown>; mode: 'train' | 'eval';
  params: Record<string, FT>; tokens: FT; targets: FT;
  noise?: Record<string, { gumbel: FT; u: number }>;
  outputs: { logits: FT; loss: FT }; grads: Record<string, FT>;
}

const fixtures = JSON.parse(readFileSync(new URL('../../test/fixtures/model_golden.json', import.meta.url), 'utf8')) as { cases: Case[] };
const maxAbs = (t: FT) => t.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

const configs: { device: string; dtype: DType; rtol: number; atol: number }[] = [
  { device: 'ref', dtype: 'float64', rtol: 1e-9, atol: 1e-10 },
  { device: 'cpu', dtype: 'float64', rtol: 1e-9, atol: 1e-10 },
  { device: 'cpu', dtype: 'float32', rtol: 1e-4, atol: 1e-5 },
];

for (const cfg of configs) {
  describe(`models against PyTorch golden outputs (${cfg.device}, ${cfg.dtype})`, () => {
    for (const c of fixtures.cases) {
      it(c.name, () => {
        const config = makeConfig(c.config);
        const params: Record<string, Tensor> = {};
        for (const [k, v] of Object.entries(c.params)) params[k] = S.tensor(Float64Array.from(v.data), v.shape, { dtype: cfg.dtype, device: cfg.device, requiresGrad: true });
        checkParameters(config, params);
        const ints = (t: FT) => S.tensor(Int32Array.from(t.data), t.shape, { device: cfg.device });
        const noise: SparseNoise | undefined = c.noise ? {
          gumbel: (layer) => { const g = (c.noise as Record<string, { gumbel: FT }>)[`blk.${layer}`].gumbel; return S.tensor(Float64Array.from(g.data), g.shape, { dtype: cfg.dtype, device: cfg.device }); },
          uniform: (layer) => (c.noise as Record<string, { u: number }>)[`blk.${layer}`].u,
        } : undefined;
        const opts = { mode: c.mode, noise };
        const logits = S.noGrad(() => forward(config, params, ints(c.tokens), opts));
        assertClose(logits, c.outputs.logits.data, cfg.rtol, cfg.atol * Math.max(1, maxAbs(c.outputs.logits)), `${c.name} logits`);
        const loss = lossOf(config, params, ints(c.tokens), ints(c.targets), opts);
        assertClose([loss.item()], c.outputs.loss.data, cfg.rtol, cfg.atol, `${c.name} loss`);
        S.backward(loss);
        assert.deepEqual(Object.keys(c.grads).sort(), Object.keys(params).sort());
        for (const [k, g] of Object.entries(c.grads)) {
          const got = params[k].grad ?? S.zeros(params[k].shape, { dtype: cfg.dtype, device: cfg.device });
          assertClose(got, g.data, cfg.rtol, cfg.atol * Math.max(1, maxAbs(g)), `${c.name} d/d ${k}`);
        }
      });
    }
  });
}
