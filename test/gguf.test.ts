/**
 * GGUF export (src/io/gguf.ts, docs/gguf-export.md):
 * - the header encoding against bytes assembled by hand from the spec text;
 * - an exported tiny llama model parsed back: key-values, tensor names,
 *   shapes, offsets (the running padded sum), the transposed and permuted
 *   tensor data, the file size;
 * - refusal, naming the field, of every config that is not llama-shaped;
 * - `sparselm export` end to end;
 * - with node-llama-cpp (skipped where it cannot load): llama.cpp's next-token
 *   probabilities at every position of a prompt against sparselm's forward,
 *   and llama.cpp's tokenization of exported BPE vocabularies against
 *   sparselm's.
 */

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, SparselmError, tensor, type Tensor } from '../src/index.js';
import { makeConfig, type ModelConfig } from '../src/models/config.js';
import { initParameters } from '../src/models/params.js';
import { forward } from '../src/models/transformer.js';
import { loadTokenizer, trainBpe, type Tokenizer } from '../src/data/tokenizer.js';
import { saveCheckpoint } from '../src/io/checkpoint.js';
import {
  BYTE_VOCAB_SIZE, byteIdToGguf, encodeGgufHeader, ggufIdToByte, ggufValue, GgufType, readGgufHeader, readGgufTensorF32, writeGguf,
} from '../src/io/gguf.js';

let root: string;
before(() => { root = mkdtempSync(join(tmpdir(), 'sparselm-gguf-')); });
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const file = (label: string): string => join(root, `${label}-${counter++}.gguf`);

const LLAMA = {
  vocab_size: 257, context_length: 64, d_model: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, d_ff: 128,
  norm: 'rmsnorm', norm_eps: 1e-5, positions: 'rope', activation: 'swiglu', ffn_bias: false, tied_output: false,
};

/** Random parameters with enough spread that the next-token distribution is far from uniform. */
function randomParams(config: ModelConfig, seed: number): Record<string, Tensor> {
  const p0 = initParameters(config, new Rng(seed), { device: 'ref' });
  let s = seed * 2654435761 >>> 0;
  const u = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(p0)) {
    const a = Float64Array.from(v.toArray());
    for (let i = 0; i < a.length; i++) a[i] = k.endsWith('norm.weight') ? 0.8 + 0.4 * u() : a[i] * 8;
    out[k] = tensor(a, v.shape, { device: 'ref', dtype: 'float32' });
  }
  return out;
}

const f32 = (t: Tensor): Float32Array => Float32Array.from(t.toArray());

// ---------- an independent encoder: the spec's byte layout written out literally ----------

const u32le = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
const u64le = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; };
const gstr = (s: string) => Buffer.concat([u64le(Buffer.byteLength(s)), Buffer.from(s, 'utf8')]);

describe('gguf header encoding', () => {
  it('matches bytes assembled by hand from the format description', () => {
    const got = Buffer.from(encodeGgufHeader(
      [
        ['general.architecture', { type: GgufType.STRING, value: 'llama' }],
        ['n', { type: GgufType.U32, value: 7 }],
        ['eps', { type: GgufType.F32, value: 0.5 }],
        ['flag', { type: GgufType.BOOL, value: true }],
        ['toks', { type: GgufType.ARRAY, elementType: GgufType.STRING, value: ['x', 'yz'] }],
        ['ids', { type: GgufType.ARRAY, elementType: GgufType.I32, value: [-1, 6] }],
      ],
      [{ name: 'w', dims: [3, 2], type: 0, offset: 0 }, { name: 'b', dims: [5], type: 0, offset: 32 }],
    ));
    const expected = Buffer.concat([
      Buffer.from('GGUF', 'ascii'), u32le(3), u64le(2), u64le(6),
      gstr('general.architecture'), u32le(8), gstr('llama'),
      gstr('n'), u32le(4), u32le(7),
      gstr('eps'), u32le(6), Buffer.from([0, 0, 0, 0x3f]),
      gstr('flag'), u32le(7), Buffer.from([1]),
      gstr('toks'), u32le(9), u32le(8), u64le(2), gstr('x'), gstr('yz'),
      gstr('ids'), u32le(9), u32le(5), u64le(2), Buffer.from([0xff, 0xff, 0xff, 0xff, 6, 0, 0, 0]),
      gstr('w'), u32le(2), u64le(3), u64le(2), u32le(0), u64le(0),
      gstr('b'), u32le(1), u64le(5), u32le(0), u64le(32),
    ]);
    const padded = Buffer.concat([expected, Buffer.alloc((32 - (expected.length % 32)) % 32)]);
    assert.equal(got.length % 32, 0);
    assert.deepEqual(got, padded);
  });
});

describe('gguf export of a llama-shaped model', () => {
  for (const tied of [false, true]) {
    it(`writes the keys, tensor infos and data gguf.md describes (${tied ? 'tied' : 'untied'} output)`, () => {
      const config = makeConfig({ ...LLAMA, tied_output: tied });
      const params = randomParams(config, 3);
      const path = file('layout');
      const s = writeGguf(path, config, params, loadTokenizer({ kind: 'byte' }));
      const h = readGgufHeader(path);
      assert.equal(h.version, 3);
      assert.equal(h.alignment, 32);
      const kv = (k: string) => ggufValue(h, k);
      assert.equal(kv('general.architecture'), 'llama');
      assert.equal(kv('llama.context_length'), 64);
      assert.equal(kv('llama.embedding_length'), 64);
      assert.equal(kv('llama.block_count'), 2);
      assert.equal(kv('llama.feed_forward_length'), 128);
      assert.equal(kv('llama.attention.head_count'), 4);
      assert.equal(kv('llama.attention.head_count_kv'), 2);
      assert.equal(kv('llama.vocab_size'), BYTE_VOCAB_SIZE);
      assert.ok(Math.abs(Number(kv('llama.attention.layer_norm_rms_epsilon')) - 1e-5) < 1e-12);
      assert.equal(kv('llama.rope.freq_base'), 10000);
      assert.equal(kv('tokenizer.ggml.model'), 'llama');
      const tokens = kv('tokenizer.ggml.tokens') as string[];
      assert.equal(tokens.length, 260);
      assert.deepEqual([tokens[0], tokens[1], tokens[2], tokens[3], tokens[3 + 0x41], tokens[258], tokens[259]],
        ['<unk>', '<s>', '</s>', '<0x00>', '<0x41>', '<0xFF>', '\u2581']);
      const types = kv('tokenizer.ggml.token_type') as number[];
      assert.deepEqual([types[0], types[1], types[2], types[3], types[258], types[259]], [2, 3, 3, 6, 6, 1]);
      assert.equal(kv('tokenizer.ggml.eos_token_id'), 2);
      assert.equal(kv('tokenizer.ggml.bos_token_id'), 1);
      assert.equal(kv('tokenizer.ggml.unknown_token_id'), 0);

      const names = h.tensors.map((t) => t.name);
      const perLayer = ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down'];
      assert.deepEqual(names, [
        'token_embd.weight',
        ...[0, 1].flatMap((i) => perLayer.map((n) => `blk.${i}.${n}.weight`)),
        'output_norm.weight',
        ...(tied ? [] : ['output.weight']),
      ]);
      const dims = Object.fromEntries(h.tensors.map((t) => [t.name, t.dims]));
      assert.deepEqual(dims['token_embd.weight'], [64, 260]);
      assert.deepEqual(dims['blk.0.attn_q.weight'], [64, 64]);
      assert.deepEqual(dims['blk.0.attn_k.weight'], [64, 32]);
      assert.deepEqual(dims['blk.0.attn_v.weight'], [64, 32]);
      assert.deepEqual(dims['blk.0.attn_output.weight'], [64, 64]);
      assert.deepEqual(dims['blk.1.ffn_gate.weight'], [64, 128]);
      assert.deepEqual(dims['blk.1.ffn_up.weight'], [64, 128]);
      assert.deepEqual(dims['blk.1.ffn_down.weight'], [128, 64]);
      assert.deepEqual(dims['output_norm.weight'], [64]);
      if (!tied) assert.deepEqual(dims['output.weight'], [64, 260]);
      assert.ok(h.tensors.every((t) => t.type === 0));

      // Offsets: exactly the running sum of padded sizes; the file ends with the last tensor's padded data.
      let off = 0;
      for (const t of h.tensors) {
        assert.equal(t.offset, off, t.name);
        off += Math.ceil((4 * t.dims.reduce((a, b) => a * b, 1)) / 32) * 32;
      }
      assert.equal(h.dataOffset % 32, 0);
      assert.equal(statSync(path).size, h.dataOffset + off);
      assert.equal(s.bytes, h.dataOffset + off);

      // Data: matrices transposed (d_out rows of d_in floats), vocabulary rows permuted.
      const wq = f32(params['blk.1.attn.wq']);
      const q = readGgufTensorF32(path, h, 'blk.1.attn_q.weight');
      for (let i = 0; i < 64; i++) for (let o = 0; o < 64; o++) assert.equal(q[o * 64 + i], wq[i * 64 + o]);
      const wd = f32(params['blk.0.ffn.w_down']);
      const down = readGgufTensorF32(path, h, 'blk.0.ffn_down.weight');
      for (let i = 0; i < 128; i++) for (let o = 0; o < 64; o++) assert.equal(down[o * 128 + i], wd[i * 64 + o]);
      assert.deepEqual(readGgufTensorF32(path, h, 'output_norm.weight'), f32(params['out_norm.weight']));
      const emb = f32(params['tok_emb.weight']);
      const gEmb = readGgufTensorF32(path, h, 'token_embd.weight');
      for (let g = 0; g < 260; g++) {
        const b = ggufIdToByte(g);
        const row = gEmb.subarray(g * 64, (g + 1) * 64);
        assert.deepEqual(row, b < 0 ? new Float32Array(64) : emb.subarray(b * 64, (b + 1) * 64), `row ${g}`);
      }
      if (!tied) {
        const out = f32(params['output.weight']); // [d, V]
        const gOut = readGgufTensorF32(path, h, 'output.weight');
        for (const b of [0, 65, 255, 256]) {
          const g = byteIdToGguf(b);
          for (let i = 0; i < 64; i++) assert.equal(gOut[g * 64 + i], out[i * 257 + b]);
        }
        for (const g of [0, 1, 259]) assert.ok(gOut.subarray(g * 64, (g + 1) * 64).every((x) => x === 0));
      }
    });
  }

  it('maps sparselm byte ids and GGUF ids both ways', () => {
    for (let b = 0; b <= 256; b++) assert.equal(ggufIdToByte(byteIdToGguf(b)), b);
    assert.equal(byteIdToGguf(256), 2);
    assert.equal(byteIdToGguf(0x41), 0x44);
    assert.deepEqual([0, 1, 259].map(ggufIdToByte), [-1, -1, -1]);
  });

  it('exports a trained BPE vocabulary as a gpt2 tokenizer with its merges', async () => {
    const tok = await trainBpe(['the cat sat on the mat', 'the hat is on the cat', 'that is that'].map((text) => ({ text })), 270, { minFrequency: 1 });
    const config = makeConfig({ ...LLAMA, vocab_size: tok.vocabSize });
    const path = file('bpe');
    writeGguf(path, config, randomParams(config, 4), tok);
    const h = readGgufHeader(path);
    assert.equal(ggufValue(h, 'tokenizer.ggml.model'), 'gpt2');
    assert.equal(ggufValue(h, 'tokenizer.ggml.pre'), 'gpt-2');
    const tokens = ggufValue(h, 'tokenizer.ggml.tokens') as string[];
    const merges = ggufValue(h, 'tokenizer.ggml.merges') as string[];
    assert.equal(tokens.length, tok.vocabSize);
    assert.equal(merges.length, tok.vocabSize - 257);
    assert.equal(tokens[tok.eos], '<|endoftext|>');
    assert.equal(tokens[0x61], 'a');
    assert.equal(tokens[0x20], '\u0120'); // GPT-2's printable form of the space byte
    const json = tok.toJSON();
    assert.equal(merges[0], `${tokens[json.merges[0]]} ${tokens[json.merges[1]]}`);
    assert.equal(tokens[256], tokens[json.merges[0]] + tokens[json.merges[1]]);
    assert.equal(ggufValue(h, 'llama.vocab_size'), tok.vocabSize);
  });
});

describe('gguf export refuses what llama.cpp cannot run', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['ffn', { ffn: 'topk', activation: 'relu', topk_k: 8 }],
    ['ffn', { ffn: 'sparse', activation: 'relu', sparse_block: 16 }],
    ['attn', { attn: 'sparse', n_kv_heads: 4, qkv_modules: 4 }],
    ['output', { output: 'sparse', vocab_size: 256, loss_modules: 4 }],
    ['norm', { norm: 'layernorm' }],
    ['activation', { activation: 'gelu' }],
    ['activation', { activation: 'relu', ffn_bias: true }], // biases b1, b2
    ['positions', { positions: 'learned' }],
  ];
  for (const [field, over] of cases) {
    it(`names '${field}' for ${JSON.stringify(over)}`, () => {
      const config = makeConfig({ ...LLAMA, ...over });
      const params = initParameters(config, new Rng(1), { device: 'ref' });
      const path = file('refuse');
      assert.throws(() => writeGguf(path, config, params, loadTokenizer({ kind: 'byte' })),
        (e: unknown) => e instanceof SparselmError && e.message.includes(`'${field}'`));
      assert.throws(() => statSync(path));
    });
  }

  it('refuses a tokenizer that does not match vocab_size, and parameters that do not match the config', () => {
    const config = makeConfig({ ...LLAMA, vocab_size: 300 });
    const params = initParameters(config, new Rng(1), { device: 'ref' });
    assert.throws(() => writeGguf(file('v'), config, params, loadTokenizer({ kind: 'byte' })), /tokenizer has 257 ids.*vocab_size is 300/);
    const c2 = makeConfig(LLAMA);
    const p2 = initParameters(c2, new Rng(1), { device: 'ref' });
    delete p2['blk.1.ffn.w_up'];
    assert.throws(() => writeGguf(file('p'), c2, p2, loadTokenizer({ kind: 'byte' })), /missing parameter 'blk\.1\.ffn\.w_up'/);
  });
});

const MAIN = new URL('../src/cli/main.js', import.meta.url).pathname;

describe('sparselm export', () => {
  it('writes a GGUF file from a run directory, and refuses a sparse model with the field named', () => {
    const config = makeConfig(LLAMA);
    const run = join(root, 'run-llama');
    saveCheckpoint(run, 5, { params: randomParams(config, 5), config, tokenizer: { kind: 'byte' } });
    const out = join(root, 'cli.gguf');
    const r = spawnSync(process.execPath, [MAIN, 'export', '--model', run, '--format', 'gguf', '--out', out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /wrote .*cli\.gguf: 21 tensors, vocabulary 260/);
    assert.equal(readGgufHeader(out).tensors.length, 21);

    const sparse = makeConfig({ ...LLAMA, ffn: 'sparse', activation: 'relu', sparse_block: 16 });
    const run2 = join(root, 'run-sparse');
    saveCheckpoint(run2, 1, { params: initParameters(sparse, new Rng(1), { device: 'ref' }), config: sparse, tokenizer: { kind: 'byte' } });
    const r2 = spawnSync(process.execPath, [MAIN, 'export', '--model', run2, '--out', join(root, 'no.gguf')], { encoding: 'utf8' });
    assert.equal(r2.status, 1);
    assert.match(r2.stderr, /^sparselm: gguf export: config field 'ffn' is 'sparse'/);
  });
});

// ---------- llama.cpp as the oracle ----------

type NodeLlamaCpp = typeof import('node-llama-cpp');
type Token = import('node-llama-cpp').Token;
type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;

let llamaCpp: { llama: Llama } | { reason: string } | null = null;
async function getLlamaCpp(): Promise<{ llama: Llama } | { reason: string }> {
  if (llamaCpp) return llamaCpp;
  try {
    const mod = await import('node-llama-cpp');
    // CPU only, its prebuilt binary, never a build or a download.
    const llama = await mod.getLlama({ gpu: false, build: 'never', logLevel: mod.LlamaLogLevel.error, progressLogs: false });
    llamaCpp = { llama };
  } catch (e) {
    llamaCpp = { reason: `node-llama-cpp cannot load here: ${(e as Error).message.split('\n')[0]}` };
  }
  return llamaCpp;
}
after(async () => { if (llamaCpp && 'llama' in llamaCpp) await llamaCpp.llama.dispose(); });

/** Next-token probabilities from llama.cpp at every position of `ids` (GGUF ids). */
async function llamaProbabilities(llama: Llama, path: string, ids: number[], kvCache: 'F16' | 'F32'): Promise<Map<number, number>[]> {
  const model = await llama.loadModel({ modelPath: path });
  try {
    const ctx = await model.createContext({
      contextSize: 256, threads: 1, batchSize: 64, experimentalKvCacheKeyType: kvCache, experimentalKvCacheValueType: kvCache,
      flashAttention: kvCache === 'F16', // llama.cpp's CPU flash attention rounds to f16 too
    });
    const seq = ctx.getSequence();
    const res = await seq.controlledEvaluate(ids.map((t): [Token, { generateNext: { probabilities: true } }] => [t as Token, { generateNext: { probabilities: true } }]));
    await ctx.dispose();
    return res.map((r, i) => {
      const p = r?.next.probabilities;
      if (!p) throw new Error(`no probabilities at position ${i}`);
      return p;
    });
  } finally {
    await model.dispose();
  }
}

/** softmax over the last axis, row `t` of [T, V] logits. */
function softmaxRow(logits: ArrayLike<number>, t: number, V: number): Float64Array {
  const row = Float64Array.from({ length: V }, (_, v) => logits[t * V + v]);
  const m = Math.max(...row);
  let z = 0;
  for (let v = 0; v < V; v++) { row[v] = Math.exp(row[v] - m); z += row[v]; }
  for (let v = 0; v < V; v++) row[v] /= z;
  return row;
}

describe('llama.cpp runs the exported model as sparselm does', () => {
  // llama.cpp's defaults (f16 KV cache, flash attention, which rounds to f16 on the CPU): gguf.md expects ~2e-4 in
  // probabilities (measured: 3-4e-4). f32 KV cache without flash attention: float32 rounding only (measured: 2e-7).
  for (const [tied, kv, tolP, tolLog] of [[false, 'F16', 1e-3, 3e-2], [true, 'F16', 1e-3, 3e-2], [false, 'F32', 1e-5, 1e-4]] as const) {
    it(`next-token probabilities agree at every position (byte tokenizer, ${tied ? 'tied' : 'untied'} output, ${kv} KV cache)`, async (t) => {
      const lc = await getLlamaCpp();
      if ('reason' in lc) { t.skip(lc.reason); return; }
      const config = makeConfig({ ...LLAMA, tied_output: tied });
      const params = randomParams(config, tied ? 11 : 10);
      const tok = loadTokenizer({ kind: 'byte' });
      const path = file('oracle');
      writeGguf(path, config, params, tok);
      const prompt = [...tok.encode('GGUF: llama.cpp checks sparselm.'), tok.eos, ...tok.encode('ok')];
      const T = prompt.length;
      const V = 257;
      const logits = forward(config, params, tensor(Int32Array.from(prompt), [1, T], { device: 'ref', dtype: 'int32' }), { mode: 'eval' }).toArray();
      const probs = await llamaProbabilities(lc.llama, path, prompt.map(byteIdToGguf), kv);
      let worst = 0;
      let worstLog = 0;
      for (let i = 0; i < T; i++) {
        const ours = softmaxRow(logits, i, V);
        // llama.cpp's distribution also covers <unk>, <s> and ▁ (zero rows: logit 0); over the 257 mapped
        // tokens, renormalised, it is the softmax of the same logits.
        let mass = 0;
        for (let b = 0; b < V; b++) mass += probs[i].get(byteIdToGguf(b)) ?? 0;
        for (let b = 0; b < V; b++) {
          const theirs = (probs[i].get(byteIdToGguf(b)) ?? 0) / mass;
          worst = Math.max(worst, Math.abs(theirs - ours[b]));
          if (ours[b] > 1e-3) worstLog = Math.max(worstLog, Math.abs(Math.log(theirs) - Math.log(ours[b])));
        }
        const top = [...ours.keys()].reduce((a, b) => (ours[b] > ours[a] ? b : a), 0);
        const theirTop = [...probs[i].entries()].filter(([g]) => ggufIdToByte(g) >= 0).reduce((a, b) => (b[1] > a[1] ? b : a))[0];
        assert.equal(ggufIdToByte(theirTop), top, `argmax at position ${i}`);
      }
      t.diagnostic(`max |Δp| ${worst.toExponential(2)}, max |Δ log p| (p > 1e-3) ${worstLog.toExponential(2)} over ${T} positions`);
      assert.ok(worst < tolP, `max |Δp| ${worst}`);
      assert.ok(worstLog < tolLog, `max |Δ log p| (p > 1e-3) ${worstLog}`);
    });
  }

  it('tokenizes text with an exported BPE vocabulary exactly as sparselm does', async (t) => {
    const lc = await getLlamaCpp();
    if ('reason' in lc) { t.skip(lc.reason); return; }
    const docs = ['The cat sat on the mat.', "It's 2024: the hat's on the cat!", 'that is that, and this is this.', '  spaces   and\nnew lines\n\n'];
    const tok: Tokenizer = await trainBpe(docs.map((text) => ({ text })), 300, { minFrequency: 1 });
    const config = makeConfig({ ...LLAMA, vocab_size: tok.vocabSize, n_layers: 1 });
    const path = file('bpe-llama');
    writeGguf(path, config, randomParams(config, 6), tok);
    const model = await lc.llama.loadModel({ modelPath: path });
    try {
      for (const text of [...docs, 'the cat is that hat', 'new cats, 42 mats!']) {
        assert.deepEqual(Array.from(model.tokenize(text), Number), tok.encode(text), JSON.stringify(text));
        assert.equal(model.detokenize(model.tokenize(text)), text);
      }
    } finally {
      await model.dispose();
    }
  });

  it('tokenizes text with the exported GPT-2 vocabulary (merges recovered from the ranks) exactly as sparselm does', async (t) => {
    const lc = await getLlamaCpp();
    const tok = loadTokenizer({ kind: 'gpt2' });
    const config = makeConfig({ ...LLAMA, vocab_size: tok.vocabSize, d_model: 16, n_heads: 2, n_kv_heads: 2, d_ff: 32, n_layers: 1, tied_output: true });
    const path = file('gpt2');
    writeGguf(path, config, initParameters(config, new Rng(1), { device: 'ref' }), tok);
    const h = readGgufHeader(path);
    assert.equal((ggufValue(h, 'tokenizer.ggml.merges') as string[]).length, 50000);
    assert.equal((ggufValue(h, 'tokenizer.ggml.merges') as string[])[0], '\u0120 t'); // GPT-2's first merge
    if ('reason' in lc) { t.skip(lc.reason); return; }
    const model = await lc.llama.loadModel({ modelPath: path });
    try {
      for (const text of ['Hello world! The quick brown fox, 2024.', "It's   spaced\n\nout — ünïcödé 日本語 🎉", 'x'.repeat(50), ' <|endoftext|> stays text']) {
        assert.deepEqual(Array.from(model.tokenize(text), Number), tok.encode(text), JSON.stringify(text));
      }
    } finally {
      await model.dispose();
    }
  });
});
