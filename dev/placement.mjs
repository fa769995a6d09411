// Lab: the 800m Sparse FF + QKV block on two threads as the kernels treat them when they
// share a last-level cache ('shared': prefetch on, small jobs split) and when they do not
// ('apart': no prefetch, the small convolution batch on the main thread), beside one
// thread, round after round with the threads' round trip measured before each round
// (kernels.roundTripNs). The placement of this VM's vCPUs changes by itself every few
// seconds to minutes, so run it long enough to see both.
//   node dev/placement.mjs [seconds]
import { DecodeEngine } from '../build/src/decode/engine.js';
import { createKernels } from '../build/src/backends/cpu/kernels.js';
import { makeConfig } from '../build/src/models/config.js';
import { releaseLoadGarbage } from '../build/src/io/memory.js';
import { lazyRandomParams } from '../build/bench/util.js';

const seconds = Number(process.argv[2] ?? 120);
const config = makeConfig({
  context_length: 256, qkv_conv_length: 3, vocab_size: 32000, d_model: 1024, n_layers: 24, n_heads: 16, n_kv_heads: 16, d_ff: 6144,
  sparse_block: 64, sparse_lowrank: 96, qkv_modules: 16, loss_modules: 4, ffn: 'sparse', attn: 'sparse', output: 'sparse',
  activation: 'relu', ffn_bias: true, norm: 'layernorm', positions: 'rope',
});
const engines = {
  shared: new DecodeEngine(config, lazyRandomParams(config, 7), { kernels: createKernels({ threads: 2, placement: 'shared' }), maxContext: 64 }),
  apart: new DecodeEngine(config, lazyRandomParams(config, 7), { kernels: createKernels({ threads: 2, placement: 'apart' }), maxContext: 64 }),
  '1 thread': new DecodeEngine(config, lazyRandomParams(config, 7), { threads: 1, maxContext: 64 }),
};
releaseLoadGarbage();
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const prompt = Array.from({ length: 16 }, (_, i) => (i * 7919 + 13) % config.vocab_size);
const round = (e) => {
  e.reset(); e.prefill(prompt);
  let next = 0;
  const b = [];
  for (let i = 0; i < 8; i++) { e.step(next); next = (next * 31 + 7) % config.vocab_size; b.push(e.last.blocksMs / config.n_layers * 1000); }
  return med(b);
};
for (const e of Object.values(engines)) round(e);
const rows = [];
const t0 = performance.now();
while (performance.now() - t0 < seconds * 1000) {
  const rt = engines.shared.kernels.roundTripNs();
  const r = { rt };
  for (const [name, e] of Object.entries(engines)) r[name] = round(e);
  rows.push(r);
  console.log(`round trip ${rt.toFixed(0)} ns: ` + Object.keys(engines).map((n) => `${n} ${r[n].toFixed(0)}`).join(', ') + ' us/block');
}
for (const [label, keep] of [['round trip < 200 ns', (r) => r.rt < 200], ['round trip >= 200 ns', (r) => r.rt >= 200]]) {
  const sel = rows.filter(keep);
  if (sel.length === 0) { console.log(`${label}: no rounds`); continue; }
  console.log(`${label}, ${sel.length} rounds, medians: ` + Object.keys(engines).map((n) => `${n} ${med(sel.map((r) => r[n])).toFixed(0)}`).join(', ') + ' us/block');
}
for (const e of Object.values(engines)) { const k = e.kernels; e.dispose(); k.dispose(); }
