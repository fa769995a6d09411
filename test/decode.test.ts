/**
 * The fast decoder (src/decode/engine.ts) against the training graph: for
 * every layer kind, the engine's logits token by token equal the eval-mode
 * logits of the full causal sequence from `forward` (computed in float64 on
 * the reference backend, so the only error is the engine's float32).
 *
 * Tolerance: the engine stores weights and activations in float32 and sums
 * products of length d..d_ff with float32 accumulators (SIMD lanes, then a
 * horizontal sum). Each rounding is at most 2^-24 ≈ 6e-8 relative; over a
 * chain of ~4·n_layers + 2 dot products of length ≤ 64, through norms and
 * softmaxes that do not amplify much, the observed error is ≤ 5e-6 of the
 * logits' scale (max over these tests). We allow 1e-4 relative plus 1e-4 · max|logit| absolute
 * (logits near zero carry the absolute error of the large ones), a margin of
 * ~100x that still catches any wrong index, sign or missing term (those move
 * logits by O(1) of their scale).
 *
 * Also: Sparse FF edge cases (first and last neuron of every block chosen,
 * all blocks choosing the same index) and the error paths.
 */

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as S from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { createKernels } from '../src/backends/cpu/kernels.js';
import { makeConfig, type ModelConfig } from '../src/models/config.js';
import { initParameters } from '../src/models/params.js';
import { forward } from '../src/models/transformer.js';
import { DecodeEngine, type EngineOptions } from '../src/decode/engine.js';
import { SparselmError } from '../src/tensor/errors.js';
import { ByteTokenizer } from '../src/data/tokenizer.js';
import { saveCheckpoint } from '../src/io/checkpoint.js';
import { generate } from '../src/models/generate.js';
import { Sampler } from '../src/decode/sampler.js';

const BASE = {
  vocab_size: 40, context_length: 32, d_model: 16, n_layers: 2, n_heads: 2, n_kv_heads: 2, d_ff: 48,
  sparse_block: 8, sparse_lowrank: 4, qkv_modules: 4, loss_modules: 4, topk_k: 7,
};

const KINDS: Record<string, Record<string, unknown>> = {
  'dense relu, layernorm, rope, tied': {},
  'dense gelu, learned positions, untied': { activation: 'gelu', positions: 'learned', tied_output: false },
  'llama: swiglu, rmsnorm, grouped-query, untied': { activation: 'swiglu', norm: 'rmsnorm', ffn_bias: false, n_heads: 4, n_kv_heads: 2, tied_output: false },
  'dense relu without biases, GQA 4:1': { ffn_bias: false, n_heads: 4, n_kv_heads: 1 },
  'llama-like, d_model 18, d_ff 27, vocab 43 (panels padded: no dimension a multiple of 8 or 4)': {
    activation: 'swiglu', norm: 'rmsnorm', ffn_bias: false, d_model: 18, d_ff: 27, n_heads: 2, n_kv_heads: 1, positions: 'learned', tied_output: false, vocab_size: 43,
  },
  'top-k': { ffn: 'topk' },
  'top-k, per-layer k, no biases': { ffn: 'topk', topk_k: [3, 20], ffn_bias: false },
  'top-k, k = 1 and k = d_ff (= dense ReLU)': { ffn: 'topk', topk_k: [1, 48] },
  'sparse FF': { ffn: 'sparse' },
  'sparse FF, d_model 18 (C1ᵀ panels with a partial column group)': { ffn: 'sparse', d_model: 18, n_heads: 2, n_kv_heads: 2, positions: 'learned', qkv_modules: 2 },
  'sparse FF, multiply by controller, first bias': { ffn: 'sparse', sparse_multiply_by_controller: true, sparse_first_bias: true },
  'sparse QKV, no output layer': { attn: 'sparse' },
  'sparse QKV, mult output': { attn: 'sparse', qkv_output: 'mult' },
  'sparse QKV, conv output': { attn: 'sparse', qkv_output: 'conv' },
  'sparse QKV, multconv output, F_l 2': { attn: 'sparse', qkv_output: 'multconv', qkv_conv_length: 2 },
  'sparse QKV, F_l 4, learned positions': { attn: 'sparse', qkv_conv_length: 4, positions: 'learned' },
  'sparse loss layer': { output: 'sparse' },
  'terraformer-like: sparse FF + QKV (multconv) + loss, rmsnorm': { ffn: 'sparse', attn: 'sparse', qkv_output: 'multconv', output: 'sparse', norm: 'rmsnorm' },
};

const kernels = createKernels({ threads: 2 });
after(() => kernels.dispose());

/**
 * Random float64 params, scaled up (×2; D kept at N(0,1)) so activations and
 * attention are far from trivial. Not more: Sparse QKV's q·k grows with the
 * cube of the scale (D·E, then the convolution), and at ×4 the attention
 * softmax amplifies float32 rounding to ~2e-4 of the logits' scale (measured;
 * ×2 gives ≤ 5e-6, ×1 ≤ 5e-7): that is conditioning, not a bug.
 */
function model(overrides: Record<string, unknown>, seed = 1): { config: ModelConfig; params: Record<string, Tensor> } {
  const config = makeConfig({ ...BASE, ...overrides });
  const params = initParameters(config, new S.Rng(seed), { device: 'ref', dtype: 'float64' });
  for (const [k, v] of Object.entries(params)) {
    const scale = k.endsWith('.D') ? 1 : k.includes('norm') ? 1 : 2;
    // Norm weights and biases: ones/zeros by init; perturb so they matter.
    const data = Float64Array.from(v.toArray(), (x, i) => (k.includes('norm') ? x + 0.3 * Math.sin(i * 1.3 + k.length) : x * scale));
    params[k] = S.tensor(data, v.shape, { dtype: 'float64', device: 'ref' });
  }
  return { config, params };
}

const PROMPT = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6];

function reference(config: ModelConfig, params: Record<string, Tensor>, ids: number[]): Float64Array {
  const logits = S.noGrad(() => forward(config, params, S.tensor(Int32Array.from(ids), [1, ids.length], { device: 'ref' }), { mode: 'eval' }));
  return Float64Array.from(logits.toArray());
}

function compare(got: Float32Array, want: Float64Array, off: number, V: number, what: string): void {
  let scale = 0;
  for (let i = 0; i < V; i++) scale = Math.max(scale, Math.abs(want[off + i]));
  for (let i = 0; i < V; i++) {
    const e = want[off + i], a = got[i];
    const tol = 1e-4 * Math.abs(e) + 1e-4 * scale;
    if (!(Math.abs(a - e) <= tol)) assert.fail(`${what}: logit ${i}: got ${a}, want ${e} (|diff| ${Math.abs(a - e).toExponential(2)} > ${tol.toExponential(2)})`);
  }
}

function checkEngine(config: ModelConfig, params: Record<string, Tensor>, what: string, ids = PROMPT, k = kernels, opts: EngineOptions = {}): void {
  const want = reference(config, params, ids);
  const V = config.vocab_size;
  const eng = new DecodeEngine(config, params, { ...opts, kernels: k });
  try {
    for (let t = 0; t < ids.length; t++) compare(eng.step(ids[t]), want, t * V, V, `${what}, token ${t}`);
    assert.equal(eng.position, ids.length);
    // reset, batched prefill (two calls) and steps after it give the same rows.
    eng.reset();
    const half = ids.length >> 1;
    compare(eng.prefill(ids.slice(0, half)), want, (half - 1) * V, V, `${what}, prefill of ${half}`);
    compare(eng.prefill(ids.slice(half, half + 7)), want, (half + 6) * V, V, `${what}, prefill of 7 more`);
    for (let t = half + 7; t < ids.length; t++) compare(eng.step(ids[t]), want, t * V, V, `${what}, step ${t} after prefill`);
  } finally {
    eng.dispose();
  }
  // Prefill in chunks of 5 rows (several gemm chunks, the last one partial).
  const chunked = new DecodeEngine(config, params, { ...opts, kernels: k, prefillRows: 5 });
  try {
    compare(chunked.prefill(ids), want, (ids.length - 1) * V, V, `${what}, prefill in chunks of 5`);
  } finally {
    chunked.dispose();
  }
  // Sparse FF with W1ᵀ and W2 as two blocks (what a layer too large to interleave gets).
  if (config.ffn === 'sparse') {
    const apart = new DecodeEngine(config, params, { ...opts, kernels: k, interleaveFF: false, prefillRows: 4 });
    try {
      compare(apart.prefill(ids.slice(0, 9)), want, 8 * V, V, `${what}, W1ᵀ and W2 apart, prefill`);
      for (let t = 9; t < ids.length; t++) compare(apart.step(ids[t]), want, t * V, V, `${what}, W1ᵀ and W2 apart, step ${t}`);
    } finally {
      apart.dispose();
    }
  }
  // The plain dense baseline (all W2 rows, W2ᵀ layout) is the same function.
  if (config.ffn === 'dense') {
    const plain = new DecodeEngine(config, params, { ...opts, kernels: k, skipZeros: false, prefillRows: 4 });
    try {
      compare(plain.prefill(ids.slice(0, 9)), want, 8 * V, V, `${what}, plain dense prefill`);
      for (let t = 9; t < ids.length; t++) compare(plain.step(ids[t]), want, t * V, V, `${what}, plain dense step ${t}`);
    } finally {
      plain.dispose();
    }
  }
}

describe('decode engine: token-by-token logits equal the training graph (eval mode)', () => {
  for (const [name, overrides] of Object.entries(KINDS)) {
    it(name, () => {
      const { config, params } = model(overrides);
      checkEngine(config, params, name);
    });
  }

  it('one thread: dense, llama, top-k, sparse, with the dense products in panels', () => {
    const one = createKernels({ threads: 1 });
    try {
      for (const name of ['dense relu, layernorm, rope, tied', 'llama: swiglu, rmsnorm, grouped-query, untied', 'top-k', 'terraformer-like: sparse FF + QKV (multconv) + loss, rmsnorm']) {
        const { config, params } = model(KINDS[name]);
        checkEngine(config, params, `${name}, 1 thread`, PROMPT, one);
      }
    } finally {
      one.dispose();
    }
  });

  it('densePanels false: the dense products through OpenBLAS on [d_in, d_out] matrices (when present), and as wasm rows without it', (t) => {
    const withBlas = createKernels({ threads: 1 }), wasmOnly = createKernels({ threads: 2, blasGemv: false });
    try {
      if (!withBlas.blasGemv) t.diagnostic('OpenBLAS not available: the wasm path runs twice');
      for (const name of ['dense relu, layernorm, rope, tied', 'dense gelu, learned positions, untied', 'llama: swiglu, rmsnorm, grouped-query, untied',
        'llama-like, d_model 18, d_ff 27, vocab 43 (panels padded: no dimension a multiple of 8 or 4)', 'top-k']) {
        const { config, params } = model(KINDS[name]);
        checkEngine(config, params, `${name}, OpenBLAS layout`, PROMPT, withBlas, { densePanels: false });
        checkEngine(config, params, `${name}, wasm rows`, PROMPT, wasmOnly, { densePanels: false });
      }
    } finally {
      withBlas.dispose();
      wasmOnly.dispose();
    }
  });

  it('Sparse QKV with modules of 1024 (the products go to gemmSmallM even with OpenBLAS), on one and two threads', () => {
    // On two threads those products take B in column panels, so the OpenBLAS batch of
    // the three convolutions (which reads B row-major) must not be used for them.
    const { config, params } = model({ d_model: 1024, n_heads: 8, n_kv_heads: 8, qkv_modules: 1, n_layers: 1, d_ff: 32, attn: 'sparse' }, 11);
    const ids = PROMPT.slice(0, 5), V = config.vocab_size, want = reference(config, params, ids);
    for (const threads of [1, 2]) {
      const k = createKernels({ threads });
      const eng = new DecodeEngine(config, params, { kernels: k });
      try {
        for (let t = 0; t < ids.length; t++) compare(eng.step(ids[t]), want, t * V, V, `M = 1024, ${threads} thread(s), token ${t}`);
        eng.reset();
        compare(eng.prefill(ids), want, (ids.length - 1) * V, V, `M = 1024, ${threads} thread(s), prefill`);
      } finally {
        eng.dispose();
        k.dispose();
      }
    }
  });

  it('accepts raw Float32Array parameters', () => {
    const { config, params } = model({ ffn: 'sparse' });
    const raw: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(params)) raw[k] = Float32Array.from(v.toArray());
    const want = reference(config, params, PROMPT.slice(0, 5));
    const eng = new DecodeEngine(config, raw, { kernels });
    try {
      const got = eng.prefill(PROMPT.slice(0, 5));
      compare(got, want, 4 * config.vocab_size, config.vocab_size, 'raw');
    } finally {
      eng.dispose();
    }
  });
});

describe('decode engine: Sparse FF choice edge cases', () => {
  // With c2 = 0 the controller logits are c_bias: the choice is fixed by it.
  const fixedChoice = (bias: (u: number) => number, what: string) => {
    const { config, params } = model({ ffn: 'sparse', sparse_multiply_by_controller: true });
    for (let l = 0; l < config.n_layers; l++) {
      const c2 = params[`blk.${l}.ffn.c2`];
      params[`blk.${l}.ffn.c2`] = S.tensor(new Float64Array(c2.size), c2.shape, { dtype: 'float64', device: 'ref' });
      params[`blk.${l}.ffn.c_bias`] = S.tensor(Float64Array.from({ length: config.d_ff }, (_, u) => bias(u)), [config.d_ff], { dtype: 'float64', device: 'ref' });
    }
    checkEngine(config, params, what);
  };
  it('all ties: the first neuron of every block (all blocks choose index 0)', () => fixedChoice(() => 0, 'first'));
  it('the last neuron of every block (all blocks choose index N-1)', () => fixedChoice((u) => (u % 8 === 7 ? 1 : 0), 'last'));
  it('ties between two neurons go to the lower one', () => fixedChoice((u) => (u % 8 === 2 || u % 8 === 5 ? 1 : 0), 'tie 2/5'));
});

describe('decode engine: weights spread over several wasm memories', () => {
  // A model larger than one wasm memory (one 17B-class block is 4.4 GB) spreads over
  // several; kernels stage the vectors into the memory of the matrix they stream
  // (src/backends/cpu/kernels.ts). With 12 MiB memories this ~14 MB model needs two or
  // more. On one thread staging must not change one bit of the logits: the same kernels
  // run the same arithmetic on the same numbers, only in another memory. On two threads
  // the split of a gathered sum between threads varies from call to call (dynamic
  // chunks), so there the logits are checked against the training graph instead.
  const WIDE = { vocab_size: 1000, d_model: 128, n_heads: 4, n_kv_heads: 4, d_ff: 6144, sparse_block: 32, sparse_lowrank: 16, qkv_modules: 4 };
  const cases: Record<string, Record<string, unknown>> = {
    'dense relu, untied': { tied_output: false },
    'llama: swiglu, rmsnorm, GQA': { activation: 'swiglu', norm: 'rmsnorm', ffn_bias: false, n_kv_heads: 2, tied_output: false },
    'top-k': { ffn: 'topk', topk_k: 64 },
    'sparse FF + QKV (multconv) + sparse loss': { ffn: 'sparse', attn: 'sparse', qkv_output: 'multconv', output: 'sparse' },
    // On two threads every small product here takes its B in column panels (M 32, the loss layer's 256 columns).
    'sparse FF + QKV + sparse loss, vocabulary 1024': { ffn: 'sparse', attn: 'sparse', output: 'sparse', vocab_size: 1024 },
  };
  for (const threads of [1, 2]) {
    for (const [name, overrides] of Object.entries(cases)) {
      if (threads > 1 && !/llama|sparse/.test(name)) continue; // the 2-thread paths of the other kinds are the same kernels
      it(`${name}, ${threads} thread${threads > 1 ? 's: logits equal the training graph' : ': logits bit-identical to one memory'}`, () => {
        const { config, params } = model({ ...WIDE, ...overrides }, 5);
        const one = createKernels({ threads, blas: false });
        const many = createKernels({ threads, blas: false, memoryBytes: 12 * 2 ** 20 });
        const a = new DecodeEngine(config, params, { kernels: one, prefillRows: 4 });
        const b = new DecodeEngine(config, params, { kernels: many, prefillRows: 4 });
        try {
          assert.ok(many.heap.memories.length >= 2, `weights spread over ${many.heap.memories.length} memories`);
          assert.equal(one.heap.memories.length, 1);
          const V = config.vocab_size;
          const want = threads > 1 ? reference(config, params, PROMPT.slice(0, 14)) : null;
          const same = (x: Float32Array, y: Float32Array, t: number, what: string) => {
            if (want) { compare(y, want, t * V, V, what); return; }
            for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) assert.fail(`${what}: logit ${i}: ${y[i]} != ${x[i]}`);
          };
          same(a.prefill(PROMPT.slice(0, 9)), b.prefill(PROMPT.slice(0, 9)), 8, 'prefill');
          for (let t = 9; t < 14; t++) same(a.step(PROMPT[t]), b.step(PROMPT[t]), t, `step ${t}`);
        } finally {
          a.dispose(); b.dispose(); one.dispose(); many.dispose();
        }
      });
    }
  }
});

describe('decode engine: errors', () => {
  it('rejects parameters that do not match the config', () => {
    const { config, params } = model({});
    const bad = { ...params };
    delete bad['blk.0.ffn.w1'];
    assert.throws(() => new DecodeEngine(config, bad, { kernels }), (e: unknown) => e instanceof SparselmError && /blk\.0\.ffn\.w1/.test(e.message));
    const raw: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(params)) raw[k] = Float32Array.from(v.toArray());
    raw['blk.1.attn.wq'] = new Float32Array(3);
    assert.throws(() => new DecodeEngine(config, raw, { kernels }), (e: unknown) => e instanceof SparselmError && /blk\.1\.attn\.wq/.test(e.message));
  });

  it('rejects running past the context and bad tokens', () => {
    const { config, params } = model({}, 2);
    const eng = new DecodeEngine(config, params, { kernels, maxContext: 4 });
    try {
      eng.prefill([1, 2, 3]);
      assert.throws(() => eng.prefill([1, 2]), SparselmError);
      assert.throws(() => eng.step(config.vocab_size), SparselmError);
      eng.step(1);
      assert.throws(() => eng.step(1), /context/);
      assert.throws(() => eng.prefill([]), SparselmError);
    } finally {
      eng.dispose();
    }
  });
});

describe('sparselm generate (CLI)', () => {
  const MAIN = new URL('../src/cli/main.js', import.meta.url).pathname;
  const cli = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  // A tiny byte-level Sparse FF + QKV model saved as a checkpoint.
  const run = mkdtempSync(join(tmpdir(), 'sparselm-gen-'));
  const tokenizer = new ByteTokenizer();
  const { config, params } = model({ vocab_size: tokenizer.vocabSize, loss_modules: 1, context_length: 24, ffn: 'sparse', attn: 'sparse', qkv_output: 'conv' }, 3);
  saveCheckpoint(run, 1, { params, config, tokenizer: tokenizer.toJSON() });

  it('greedy output equals the training graph\'s incremental generate()', () => {
    const r = cli('generate', '--model', run, '--prompt', 'abc', '--max-tokens', '12', '--temperature', '0', '--threads', '1');
    assert.equal(r.status, 0, r.stderr);
    const ids = generate(config, params, tokenizer, 'abc', { maxTokens: 12, sampler: new Sampler({ temperature: 0 }), device: 'ref' });
    assert.equal(r.stdout, `${tokenizer.decode(ids)}\n`);
    assert.match(r.stderr, /prefill: 3 tokens .* tokens\/s.*decode: \d+ tokens/);
  });

  it('names an unknown model directory', () => {
    const r = cli('generate', '--model', join(run, 'nope'), '--prompt', 'hi');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^sparselm: .*nope.* does not exist/);
  });

  it('rejects an empty prompt and a prompt + max tokens beyond the context', () => {
    let r = cli('generate', '--model', run, '--prompt', '');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^sparselm: generate: the prompt is empty/);
    r = cli('generate', '--model', run, '--prompt', 'hello', '--max-tokens', '20');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^sparselm: generate: prompt \(5 tokens\) \+ --max-tokens \(20\) = 25 exceed the model's context length 24/);
  });

  it('rejects checkpoint tensors that do not match the config', () => {
    const bad = mkdtempSync(join(tmpdir(), 'sparselm-gen-bad-'));
    saveCheckpoint(bad, 1, { params, config: { ...config, d_ff: 32 }, tokenizer: tokenizer.toJSON() });
    const r = cli('generate', '--model', bad, '--prompt', 'hi');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^sparselm: model: parameter 'blk\.0\.ffn\.(c2|c_bias|w1|w2)' has shape/);
  });
});
