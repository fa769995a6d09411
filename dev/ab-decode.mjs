// Lab: two builds of the decoder side by side in one process, token for token, so a code
// change is measured against the same minute of this shared machine (its bandwidth and
// load move by 2x within minutes; separate runs cannot resolve a 5% change).
//   git worktree add /tmp/old <commit> && (cd /tmp/old && ln -s "$PWD/node_modules" . && npm run build)
//   node dev/ab-decode.mjs /tmp/old/build . [800m|17b|llama] [threads] [rounds] [blas: true|false]
// Each round decodes 8 tokens with A, then 8 with B (each after a reset and a 16-token
// prompt); prints the medians of A's and B's ms per block and of the rounds' B/A ratios.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dirA, dirB, which = '800m', threadsArg = '1', roundsArg = '15', blasArg = 'true'] = process.argv.slice(2);
if (!dirA || !dirB) { console.error('usage: node dev/ab-decode.mjs <build dir A> <build dir B> [800m|17b|llama] [threads] [rounds]'); process.exit(2); }
const threads = Number(threadsArg), rounds = Number(roundsArg);
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const { releaseLoadGarbage } = await import(new URL('../build/src/io/memory.js', import.meta.url).href);
const SHAPES = {
  '800m': { vocab_size: 32000, d_model: 1024, n_layers: 24, n_heads: 16, n_kv_heads: 16, d_ff: 6144, sparse_block: 64, sparse_lowrank: 96, qkv_modules: 16, loss_modules: 4,
    ffn: 'sparse', attn: 'sparse', output: 'sparse', activation: 'relu', ffn_bias: true, norm: 'layernorm', positions: 'rope' },
  '17b': { vocab_size: 1000, d_model: 9216, n_layers: 1, n_heads: 96, n_kv_heads: 96, d_ff: 65536, sparse_block: 256, sparse_lowrank: 32, qkv_modules: 64, loss_modules: 8,
    ffn: 'sparse', attn: 'sparse', activation: 'relu', ffn_bias: true, norm: 'layernorm', positions: 'rope' },
  llama: { vocab_size: 32000, d_model: 1024, n_layers: 24, n_heads: 16, n_kv_heads: 16, d_ff: 2730, activation: 'swiglu', norm: 'rmsnorm', positions: 'rope', tied_output: false },
};
const load = async (dir) => {
  const url = (p) => pathToFileURL(resolve(dir, p)).href;
  const { DecodeEngine } = await import(url('src/decode/engine.js'));
  const { createKernels } = await import(url('src/backends/cpu/kernels.js'));
  const { makeConfig } = await import(url('src/models/config.js'));
  const { lazyRandomParams } = await import(url('bench/util.js'));
  const config = makeConfig({ context_length: 256, qkv_conv_length: 3, ...SHAPES[which] });
  // blas false: the WebAssembly kernels alone (what browsers, and machines without OpenBLAS, run).
  const opts = blasArg === 'false' ? { kernels: createKernels({ threads, blas: false }) } : { threads };
  return { config, engine: new DecodeEngine(config, lazyRandomParams(config, 7), { ...opts, maxContext: 64, skipZeros: false }) };
};
const A = await load(dirA), B = await load(dirB);
releaseLoadGarbage(); // the copied parameter arrays, unmapped before timing (src/io/memory.ts)
const prompt = Array.from({ length: 16 }, (_, i) => (i * 7919 + 13) % A.config.vocab_size);
const roundOf = ({ engine, config }) => {
  engine.reset();
  let next = 0;
  engine.prefill(prompt);
  const blk = [], tok = [];
  for (let i = 0; i < 8; i++) {
    engine.step(next); next = (next * 31 + 7) % config.vocab_size;
    blk.push(engine.last.blocksMs / config.n_layers); tok.push(engine.last.totalMs);
  }
  tokens.set(engine, (tokens.get(engine) ?? []).concat(med(tok)));
  return med(blk);
};
const tokens = new Map(); // engine -> its rounds' median ms per token
roundOf(A); roundOf(B);
const a = [], b = [], ratio = [], trips = [];
// Where the threads ran each round (kernels.roundTripNs, in builds that have it; B's threads).
const probe = typeof B.engine.kernels.roundTripNs === 'function' && threads > 1 ? () => B.engine.kernels.roundTripNs() : () => 0;
for (let r = 0; r < rounds; r++) { trips.push(probe()); const ta = roundOf(A), tb = roundOf(B); a.push(ta); b.push(tb); ratio.push(tb / ta); }
console.log(`${which}, ${threads} thread(s), ${rounds} rounds: A ${(med(a) * 1000).toFixed(0)} us/block, B ${(med(b) * 1000).toFixed(0)} us/block, B/A ${med(ratio).toFixed(3)} (rounds ${Math.min(...ratio).toFixed(3)}-${Math.max(...ratio).toFixed(3)})`);
const ta = tokens.get(A.engine).slice(1), tb = tokens.get(B.engine).slice(1); // without the warm-up round
console.log(`  per token: A ${med(ta).toFixed(2)} ms, B ${med(tb).toFixed(2)} ms, B/A ${med(ta.map((x, r) => tb[r] / x)).toFixed(3)}`);
if (threads > 1 && trips.some((t) => t > 0)) {
  const { APART_NS } = await import(pathToFileURL(resolve(dirB, 'src/backends/cpu/kernels.js')).href);
  const part = (keep) => {
    const rs = ratio.filter((_, r) => keep(trips[r]));
    const as = a.filter((_, r) => keep(trips[r])), bs = b.filter((_, r) => keep(trips[r]));
    return rs.length === 0 ? 'no rounds' : `${rs.length} rounds, A ${(med(as) * 1000).toFixed(0)} us, B ${(med(bs) * 1000).toFixed(0)} us, B/A ${med(rs).toFixed(3)}`;
  };
  console.log(`  threads sharing a cache (round trip < ${APART_NS} ns): ${part((t) => t < APART_NS)}; apart: ${part((t) => t >= APART_NS)}`);
}
for (const { engine } of [A, B]) { const k = engine.kernels; engine.dispose(); if (blasArg === 'false') k.dispose(); }
