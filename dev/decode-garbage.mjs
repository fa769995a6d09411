// Lab: bytes of JS garbage the decoder makes per token (V8 sampling heap profiler,
// objects collected by GC included), and where. node dev/decode-garbage.mjs <threads> <sparse|llama>
import { Session } from 'node:inspector/promises';
import { DecodeEngine } from '../build/src/decode/engine.js';
import { createKernels } from '../build/src/backends/cpu/kernels.js';
import { makeConfig } from '../build/src/models/config.js';
import { lazyRandomParams } from '../build/bench/util.js';
const threads = Number(process.argv[2]);
const over = process.argv[3] === 'sparse' ? { ffn: 'sparse', attn: 'sparse', d_ff: 1536, output: 'sparse' } : { activation: 'swiglu', norm: 'rmsnorm', ffn_bias: false };
const config = makeConfig({ vocab_size: 8000, context_length: 4096, d_model: 256, n_layers: 6, n_heads: 4, n_kv_heads: 4, d_ff: 1024, sparse_block: 32, sparse_lowrank: 32, qkv_modules: 4, loss_modules: 4, ...over });
const k = createKernels({ threads });
const e = new DecodeEngine(config, lazyRandomParams(config, 1), { kernels: k });
let t = 1;
for (let i = 0; i < 200; i++) { e.step(t); t = (t * 31 + 7) % 8000; }
const s = new Session(); s.connect();
await s.post('HeapProfiler.startSampling', { samplingInterval: 64, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
const N = 1000;
for (let i = 0; i < N; i++) { e.step(t); t = (t * 31 + 7) % 8000; }
const { profile } = await s.post('HeapProfiler.stopSampling');
const agg = new Map();
const walk = (n, st) => {
  const cf = n.callFrame; const name = `${cf.functionName}@${cf.url.split('/').pop()}:${cf.lineNumber + 1}`;
  const s2 = [...st, name];
  if (n.selfSize) { const key = s2.slice(-3).reverse().join(' < '); agg.set(key, (agg.get(key) ?? 0) + n.selfSize); }
  for (const c of n.children) walk(c, s2);
};
walk(profile.head, []);
let total = 0; for (const v of agg.values()) total += v;
console.log(`total ~${(total / N).toFixed(0)} bytes/step`);
for (const [kk, v] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log((v / N).toFixed(0), kk);
e.dispose(); k.dispose();
