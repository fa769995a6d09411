// `npm run bench -- decode [--preset 800m] [--threads 1,2] [--tokens 10] [--prompt 16]`:
// the fast batch-1 decoder (src/decode/engine.ts) on random weights of the paper's
// shapes (spec/results.md), greedy, warm-up first, then the median over the generated
// tokens of the time per token and per block (all layers / n_layers), the weight bytes
// read per token and the achieved GB/s beside the read ceiling measured in the same
// run (kernels.readBandwidth over 512 MiB, same threads, just before each model).
// Speedups are against the dense baseline measured in the same run; the ideal speedup
// of a memory-bound decoder is bytes(dense) / bytes(model).
//
// Random weights: every choice the sparse paths make (controller argmax, ReLU zeros)
// is as random as the weights, so the traffic is what a trained model would read
// except for the dense ReLU row ("zeros skipped"): random pre-activations are ~50%
// negative, a trained model's are ~90-97% (Lazy Neuron), so that row understates it.
//
// Threads: the kernels split each call over threads that wait for each other, so on a
// shared machine (another process holding a core) 2-thread figures can come out slower
// than 1-thread ones; compare rows within one thread count, and rerun when the load
// (uptime) is high.
//
// The "17B" shapes (d 9216, d_ff 40960) do not fit: one dense block alone is ~4.4 GB
// of float32, past the 4 GiB of a wasm32 heap; skipped (needs a wasm64 or a native
// backend, or float16/bfloat16 weights).
import { createKernels, type CpuKernels } from '../src/backends/cpu/kernels.js';
import { DecodeEngine } from '../src/decode/engine.js';
import { makeConfig, type ModelConfig } from '../src/models/config.js';
import { median, randomParams } from './util.js';

export interface DecodeBenchOptions { preset: string; threads: number[]; tokens: number; prompt: number; blas: boolean; only?: string }


interface Variant { name: string; overrides: Record<string, unknown>; skipZeros: boolean; paper?: [number, number] }

// spec/results.md, 800M: decode time per token and per block, seconds and ms.
const PRESETS: Record<string, { base: Record<string, unknown>; variants: Variant[] }> = {
  '800m': {
    base: {
      vocab_size: 32000, context_length: 128, d_model: 1024, n_layers: 24, n_heads: 16, n_kv_heads: 16, d_ff: 4096,
      activation: 'relu', ffn_bias: true, norm: 'layernorm', positions: 'rope',
      sparse_block: 64, sparse_lowrank: 64, qkv_modules: 16, qkv_conv_length: 3, loss_modules: 4,
    },
    variants: [
      { name: 'baseline dense', overrides: {}, skipZeros: false, paper: [160, 5.9] },
      { name: 'dense, ReLU zeros skipped', overrides: {}, skipZeros: true },
      { name: 'Top-k FF (k = 128 of 4096)', overrides: { ffn: 'topk', topk_k: 128 }, skipZeros: false },
      { name: '+ Sparse FF', overrides: { ffn: 'sparse' }, skipZeros: false, paper: [93, 3.1] },
      { name: '+ Sparse QKV', overrides: { attn: 'sparse', d_ff: 6144 }, skipZeros: false, paper: [152, 6.2] },
      { name: '+ Sparse FF + QKV', overrides: { ffn: 'sparse', attn: 'sparse', d_ff: 6144, sparse_lowrank: 96 }, skipZeros: false, paper: [61, 1.9] },
      { name: '+ FF + QKV + sparse loss', overrides: { ffn: 'sparse', attn: 'sparse', d_ff: 6144, sparse_lowrank: 96, output: 'sparse' }, skipZeros: false },
    ],
  },
  // A small shape for a quick look (seconds): same variants, 1/4 the width.
  small: {
    base: {
      vocab_size: 8000, context_length: 128, d_model: 256, n_layers: 6, n_heads: 4, n_kv_heads: 4, d_ff: 1024,
      activation: 'relu', ffn_bias: true, sparse_block: 32, sparse_lowrank: 32, qkv_modules: 4, loss_modules: 4,
    },
    variants: [
      { name: 'baseline dense', overrides: {}, skipZeros: false },
      { name: '+ Sparse FF', overrides: { ffn: 'sparse' }, skipZeros: false },
      { name: '+ Sparse QKV', overrides: { attn: 'sparse', d_ff: 1536 }, skipZeros: false },
      { name: '+ Sparse FF + QKV', overrides: { ffn: 'sparse', attn: 'sparse', d_ff: 1536, sparse_lowrank: 48 }, skipZeros: false },
      { name: '+ FF + QKV + sparse loss', overrides: { ffn: 'sparse', attn: 'sparse', d_ff: 1536, sparse_lowrank: 48, output: 'sparse' }, skipZeros: false },
    ],
  },
};


function argmax(v: Float32Array): number {
  let b = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[b]) b = i;
  return b;
}

interface Row { name: string; threads: number; prefillMs: number; tokenMs: number; blockMs: number; bytes: number; gbs: number; ceil: number; paper?: [number, number] }

function ceiling(k: CpuKernels, buf: number, bytes: number): number {
  const g: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    k.readBandwidth(buf, bytes);
    g.push(bytes / ((performance.now() - t0) * 1e6));
  }
  return median(g);
}

function measure(k: CpuKernels, config: ModelConfig, v: Variant, o: DecodeBenchOptions, buf: number, bufBytes: number): Row {
  const t0 = performance.now();
  const engine = new DecodeEngine(config, randomParams(config, 7), { kernels: k, skipZeros: v.skipZeros, maxContext: o.prompt + o.tokens + 4 });
  const loadMs = performance.now() - t0;
  try {
    const prompt = Array.from({ length: o.prompt }, (_, i) => (i * 7919 + 13) % config.vocab_size);
    // Warm-up: one full pass of the prompt and a few tokens (page faults, tier-up), then reset.
    let next = argmax(engine.prefill(prompt.slice(0, 4)));
    for (let i = 0; i < 2; i++) next = argmax(engine.step(next));
    engine.reset();
    const ceil = ceiling(k, buf, bufBytes);
    const tp = performance.now();
    next = argmax(engine.prefill(prompt));
    const prefillMs = performance.now() - tp;
    const tok: number[] = [], blk: number[] = [], bytes: number[] = [];
    for (let i = 0; i < o.tokens; i++) {
      next = argmax(engine.step(next));
      tok.push(engine.last.totalMs); blk.push(engine.last.blocksMs / config.n_layers); bytes.push(engine.last.weightBytes);
    }
    const tokenMs = median(tok);
    const b = median(bytes);
    process.stderr.write(`  ${v.name} (${o.threads.length > 1 ? `${k.threads} threads, ` : ''}load ${(loadMs / 1000).toFixed(1)} s, ${(engine.weightBytesTotal / 2 ** 30).toFixed(2)} GiB)\n`);
    return { name: v.name, threads: k.threads, prefillMs, tokenMs, blockMs: median(blk), bytes: b, gbs: b / (tokenMs * 1e6), ceil, paper: v.paper };
  } finally {
    engine.dispose();
  }
}

export function runDecode(o: DecodeBenchOptions): void {
  const preset = PRESETS[o.preset];
  if (!preset) throw new Error(`bench decode: unknown preset '${o.preset}' (known: ${Object.keys(PRESETS).join(', ')}; 17b does not fit a 4 GiB wasm32 heap)`);
  console.log(`decode, preset ${o.preset}: batch 1, greedy, ${o.prompt}-token prompt, median over ${o.tokens} tokens after warm-up; random weights, float32`);
  for (const threads of o.threads) {
    const k = createKernels({ threads, blas: o.blas });
    const bufBytes = 512 * 2 ** 20;
    const buf = k.heap.alloc(bufBytes, 64);
    k.heap.f32(buf, bufBytes / 4).fill(1);
    const rows: Row[] = [];
    try {
      for (const v of preset.variants.filter((x, i) => i === 0 || !o.only || x.name.includes(o.only))) rows.push(measure(k, makeConfig({ ...preset.base, ...v.overrides }), v, o, buf, bufBytes));
    } finally {
      k.heap.free(buf);
      k.dispose();
    }
    const base = rows[0];
    console.log(`\n${threads} thread${threads > 1 ? 's' : ''}, gemm: ${k.blas ? 'OpenBLAS' : 'WebAssembly'}`);
    console.log('| model | ms/token | ms/block | speedup token / block | MB read/token | ideal speedup | GB/s | read ceiling GB/s | prefill tok/s | paper ms/token, ms/block |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of rows) {
      const paper = r.paper ? `${r.paper[0]}, ${r.paper[1]}` : '-';
      console.log(`| ${r.name} | ${r.tokenMs.toFixed(1)} | ${r.blockMs.toFixed(2)} | ${(base.tokenMs / r.tokenMs).toFixed(2)}x / ${(base.blockMs / r.blockMs).toFixed(2)}x | ` +
        `${(r.bytes / 1e6).toFixed(0)} | ${(base.bytes / r.bytes).toFixed(2)}x | ${r.gbs.toFixed(1)} | ${r.ceil.toFixed(1)} | ${(o.prompt / (r.prefillMs / 1000)).toFixed(0)} | ${paper} |`);
    }
  }
  console.log('\npaper: Scaling Transformers (CPU, their machine): 800M speedup 2.62x per token, 3.05x per block with Sparse FF + QKV.');
}
