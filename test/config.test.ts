/**
 * Model configs: presets load and validate; every bad field is an error that
 * names the field and says what is wrong, before any tensor is made.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeConfig, DEFAULT_CONFIG } from '../src/models/config.js';
import { loadPreset, presetConfig, presetNames } from '../src/models/presets.js';
import { countParameters } from '../src/models/params.js';
import { SparselmError } from '../src/index.js';

describe('model config', () => {
  it('every preset makes a valid config for every layer kind it allows', () => {
    assert.deepEqual(presetNames(), ['17b-block', '800m', 'llama', 'small', 'tiny']);
    for (const name of presetNames()) {
      const preset = loadPreset(name);
      const kinds = preset.config.activation === 'swiglu' ? [{}] : [{}, { ffn: 'topk' }, { ffn: 'sparse' }, { ffn: 'sparse', attn: 'sparse', output: 'sparse' }];
      for (const k of kinds) makeConfig(presetConfig(preset, { vocab_size: 32000, ...k }));
    }
  });

  it("the 800m preset has the paper's decoder shapes, with d_ff raised for Sparse QKV", () => {
    const dense = makeConfig(presetConfig(loadPreset('800m'), {}));
    const sparse = makeConfig(presetConfig(loadPreset('800m'), { ffn: 'sparse', attn: 'sparse' }));
    assert.deepEqual([dense.n_layers, dense.d_model, dense.n_heads, dense.d_ff, dense.vocab_size], [24, 1024, 16, 4096, 32000]);
    assert.deepEqual([sparse.d_ff, sparse.sparse_block, sparse.sparse_lowrank, sparse.qkv_modules], [6144, 64, 96, 16]);
    // Sparse QKV's raised d_ff keeps the parameter count close to the dense model's (within 10%).
    const ratio = countParameters(sparse) / countParameters(dense);
    assert.ok(ratio > 0.9 && ratio < 1.1, `parameter ratio ${ratio}`);
  });

  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ffn: 'sparse', d_ff: 100, sparse_block: 32 }, /^config: d_ff: d_ff 100 is not a multiple of sparse_block 32/],
    [{ attn: 'sparse', d_model: 132, n_heads: 2, n_kv_heads: 2, qkv_modules: 8 }, /^config: qkv_modules: d_model 132 is not a multiple of qkv_modules 8/],
    [{ d_model: 130, n_heads: 4 }, /^config: n_heads: d_model 130 is not a multiple of n_heads 4/],
    [{ n_heads: 4, n_kv_heads: 3 }, /^config: n_kv_heads: n_heads 4 is not a multiple of n_kv_heads 3/],
    [{ output: 'sparse', vocab_size: 257, loss_modules: 4 }, /^config: loss_modules: vocab_size 257 is not a multiple of loss_modules 4/],
    [{ ffn: 'topk', topk_k: 0 }, /^config: topk_k: each k must be an integer in 1..d_ff \(512\), got 0/],
    [{ ffn: 'topk', topk_k: [3, 4] }, /^config: topk_k: has 2 entries for 4 layers/],
    [{ ffn: 'sparse', activation: 'gelu' }, /^config: activation: sparse FF is ReLU by definition/],
    [{ ffn: 'sparse', sparse_quant_prob: 1.5 }, /^config: sparse_quant_prob: must be in \[0, 1\], got 1.5/],
    [{ dropout: 1 }, /^config: dropout: must be in \[0, 1\), got 1/],
    [{ d_model: 0 }, /^config: d_model: must be a positive integer, got 0/],
    [{ d_model: '128' }, /^config: d_model: must be a number, got "128"/],
    [{ norm: 'batchnorm' }, /^config: norm: must be one of layernorm, rmsnorm, got 'batchnorm'/],
    [{ width: 3 }, /^config: width: unknown field/],
    [{ version: 2 }, /^config: version: this sparselm reads config version 1, got 2/],
    [{ n_heads: 3, n_kv_heads: 3, d_model: 129, positions: 'rope' }, /^config: positions: rope needs an even head size, got 43/],
  ];
  for (const [fields, pattern] of bad) {
    it(`rejects ${JSON.stringify(fields)}`, () => {
      assert.throws(() => makeConfig(fields), (e: unknown) => e instanceof SparselmError && pattern.test(e.message));
    });
  }

  it('defaults are valid and complete', () => {
    assert.deepEqual(makeConfig({}), DEFAULT_CONFIG);
  });
});
