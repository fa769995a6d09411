// Lab: where a model's decode step spends its time, by kernel (wall time of each
// CpuKernels call kind, summed per token; the timers themselves add a little).
//   node dev/decode-kernel-times.mjs <17b|800m|llama> [threads]
// 17b: one 17B-class Sparse FF + QKV block (4.8 GB; its tied output gemv is in 'gemv');
// 800m: the 800m Sparse FF + QKV model with the sparse loss layer (24 blocks + output);
// llama: the dense llama-style model of `npm run bench -- llamacpp` (SwiGLU, RMSNorm).
import { DecodeEngine } from '../build/src/decode/engine.js';
import { makeConfig } from '../build/src/models/config.js';
import { releaseLoadGarbage } from '../build/src/io/memory.js';
import { lazyRandomParams } from '../build/bench/util.js';

const which = process.argv[2] ?? '800m';
const threads = Number(process.argv[3] ?? 1);
const SHAPES = {
  '17b': { vocab_size: 1000, d_model: 9216, n_layers: 1, n_heads: 96, n_kv_heads: 96, d_ff: 65536, sparse_block: 256, sparse_lowrank: 32, qkv_modules: 64, loss_modules: 8 },
  '800m': { vocab_size: 32000, d_model: 1024, n_layers: 24, n_heads: 16, n_kv_heads: 16, d_ff: 6144, sparse_block: 64, sparse_lowrank: 96, qkv_modules: 16, loss_modules: 4, output: 'sparse' },
  llama: { vocab_size: 32000, d_model: 1024, n_layers: 24, n_heads: 16, n_kv_heads: 16, d_ff: 2730, activation: 'swiglu', norm: 'rmsnorm', ffn_bias: false, tied_output: false, ffn: 'dense', attn: 'dense' },
};
if (!(which in SHAPES)) { console.error('usage: node dev/decode-kernel-times.mjs <17b|800m|llama> [threads]'); process.exit(2); }
const config = makeConfig({
  context_length: 128, activation: 'relu', ffn_bias: true, norm: 'layernorm', positions: 'rope', qkv_conv_length: 3,
  ffn: 'sparse', attn: 'sparse', ...SHAPES[which],
});
const e = new DecodeEngine(config, lazyRandomParams(config, 7), { threads, maxContext: 100 });
releaseLoadGarbage(); // the copied parameter arrays, unmapped before timing (src/io/memory.ts)
const k = e.kernels;
const acc = {};
for (const name of ['gemm', 'gemmBatch', 'gemv', 'gemvT', 'gemvRows', 'axpyRows', 'gemmSmallM', 'attention', 'mulRows', 'addRows', 'im2col', 'blockArgmax', 'gemvPanels', 'screenQuantize', 'pairDotI16', 'screenArgmax', 'norm', 'rope', 'copyRows', 'swiglu', 'prefetch']) {
  const f = k[name].bind(k);
  k[name] = (...a) => { const t0 = performance.now(); const r = f(...a); acc[name] = (acc[name] ?? 0) + performance.now() - t0; return r; };
}
for (let i = 0; i < 5; i++) e.step(i);
for (const key in acc) acc[key] = 0;
let blocks = 0, total = 0;
const N = 30;
for (let i = 0; i < N; i++) { e.step((i * 7) % config.vocab_size); blocks += e.last.blocksMs; total += e.last.totalMs; }
console.log(`${which}, ${threads} thread(s): ${(total / N).toFixed(2)} ms/token, blocks ${(blocks / N).toFixed(2)} ms (${(blocks / N / config.n_layers).toFixed(3)} ms/block)`);
console.log('ms per token by kernel: ' + Object.entries(acc).sort((a, b) => b[1] - a[1]).map(([n, v]) => `${n} ${(v / N).toFixed(2)}`).join(', '));
e.dispose();
