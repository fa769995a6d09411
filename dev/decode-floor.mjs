// Lab: how close is the 800m Sparse FF + QKV block to what one core can do, measured in
// one run? Per round (1 thread, paired):
//   dense   the dense block's time (the 10x target's budget is a tenth of it)
//   sparse  the Sparse FF + QKV block's time (with the sparse loss layer, as in the bench)
//   stream  reading, cold and contiguous, the bytes of a block that no computation hides
//           (C1, C2's int16 screen and column scales, the controller bias, 96 chosen W1
//           rows, ~48 W2 rows, biases, norms)
//   qkv     Sparse QKV's four products (OpenBLAS, small-matrix parts) on hot weights
// floor = stream + qkv: a block must read the one and do the other, and WebAssembly has
// no prefetch instruction to overlap them on one core.
//   node dev/decode-floor.mjs [rounds]
import { createKernels } from '../build/src/backends/cpu/kernels.js';
import { DecodeEngine } from '../build/src/decode/engine.js';
import { makeConfig } from '../build/src/models/config.js';
import { loadPreset, presetConfig } from '../build/src/models/presets.js';
import { releaseLoadGarbage } from '../build/src/io/memory.js';
import { lazyRandomParams } from '../build/bench/util.js';

const rounds = Number(process.argv[2] ?? 9);
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const k = createKernels({ threads: 1 });
const base = { activation: 'relu', ffn_bias: true, norm: 'layernorm', positions: 'rope' };
const shape = loadPreset('800m');
const mk = (o) => makeConfig(presetConfig(shape, { ...base, context_length: 64, ...o }));
const dense = mk({}), sparse = mk({ ffn: 'sparse', attn: 'sparse', output: 'sparse' });
const engines = [dense, sparse].map((c) => new DecodeEngine(c, lazyRandomParams(c, 7), { kernels: k, maxContext: 64 }));
releaseLoadGarbage(); // the copied parameter arrays, unmapped before timing (src/io/memory.ts)
const c = sparse, d = c.d_model, dff = c.d_ff, r = c.sparse_lowrank, N = c.sparse_block, nb = dff / N, S = c.qkv_modules, M = d / S;
// C1, C2's int16 screen (r·d_ff·2 bytes) with its column scales and the bias, the
// chosen W1 rows, ~half as many W2 rows, biases and norms.
const streamBytes = 4 * (r * d + (r * dff) / 2 + 2 * dff + nb * d + (nb / 2) * d + nb + d + 4 * d);
// Cold, contiguous: a fresh region of a 768 MiB buffer for each of the 24 layers' worth.
const big = 768 << 20, pBig = k.heap.alloc(big, 1 << 21);
k.heap.f32(pBig, big / 4).fill(1);
k.readBandwidth(pBig, big); // each page read once first (docs/decode.md: this VM's first read of a page is slow)
let at = 0;
const stream = () => {
  const n = c.n_layers * streamBytes;
  if (at + n > big) at = 0;
  const t0 = performance.now();
  k.readBandwidth(pBig + at, n);
  at += n;
  return ((performance.now() - t0) * 1000) / c.n_layers;
};
// Sparse QKV's products at their shapes: [S, d]·[d, M], two [S, 9M]·[9M, M], [S, 3M]·[3M, M].
const shapes = [[S, M, d], [S, M, 9 * M], [S, M, 9 * M], [S, M, 3 * M]];
const bufs = shapes.map(([m, n, kk]) => {
  const a = k.heap.alloc(m * kk * 4), b = k.heap.alloc(kk * n * 4), o = k.heap.alloc(m * n * 4);
  k.heap.f32(a, m * kk).fill(0.5); k.heap.f32(b, kk * n).fill(0.25);
  return { m, n, kk, a, b, o };
});
const qkv = () => {
  const t0 = performance.now();
  for (let rep = 0; rep < 20; rep++) for (const { m, n, kk, a, b, o } of bufs) k.gemm(false, false, m, n, kk, a, kk, b, n, o, n, false);
  return ((performance.now() - t0) * 1000) / 20;
};
const block = (e) => {
  e.reset();
  e.prefill(Array.from({ length: 16 }, (_, i) => (i * 7919 + 13) % c.vocab_size));
  const t = [];
  for (let i = 0; i < 8; i++) { e.step((i * 31 + 5) % c.vocab_size); t.push((e.last.blocksMs * 1000) / c.n_layers); }
  return med(t);
};
for (const e of engines) block(e); // warm-up
const res = { dense: [], sparse: [], stream: [], qkv: [] };
for (let i = 0; i < rounds; i++) {
  res.dense.push(block(engines[0])); res.sparse.push(block(engines[1]));
  res.stream.push(stream()); qkv(); res.qkv.push(qkv());
}
const m = Object.fromEntries(Object.entries(res).map(([key, v]) => [key, med(v)]));
const floor = m.stream + m.qkv;
console.log(`800m, 1 thread, medians of ${rounds} rounds (µs per block):`);
console.log(`  dense block ${m.dense.toFixed(0)}; the 10x budget ${(m.dense / 10).toFixed(0)}`);
console.log(`  sparse block ${m.sparse.toFixed(0)} (${(m.dense / m.sparse).toFixed(2)}x)`);
console.log(`  floor ${floor.toFixed(0)} = stream ${m.stream.toFixed(0)} (${(streamBytes / 1e6).toFixed(2)} MB at ${(streamBytes / m.stream / 1e3).toFixed(1)} GB/s) + Sparse QKV products ${m.qkv.toFixed(0)} (${(2 * shapes.reduce((s, [a, b, q]) => s + a * b * q, 0) / m.qkv / 1e3).toFixed(0)} GFLOP/s)`);
console.log(`  floor / budget ${(floor / (m.dense / 10)).toFixed(2)}; sparse / floor ${(m.sparse / floor).toFixed(2)}; best speedup at the floor ${(m.dense / floor).toFixed(2)}x`);
for (const e of engines) e.dispose();
k.dispose();
