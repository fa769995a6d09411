// `npm run bench -- decode [--preset 800m|17b|small] [--threads 1,2] [--tokens 10] [--prompt 16]
//     [--rounds 5] [--contexts 16,512,2048]`:
// the fast batch-1 decoder (src/decode/engine.ts) on random weights of the paper's
// shapes (spec/results.md), greedy, warm-up first; the time per token and per block
// (all layers / n_layers), the weight bytes read per token and the achieved GB/s beside
// the read ceiling measured in the same run (kernels.readBandwidth over 512 MiB, same
// threads, just before each model's rounds). The ideal speedup of a memory-bound
// decoder is bytes(dense) / bytes(model).
//
// Paired rounds: the dense baseline stays loaded while each other model is loaded in
// turn. A round decodes `tokens` tokens with the baseline, then `tokens` with the model
// (each after a reset and the prompt); a round's time is the median over its tokens.
// A model's speedup is the median over rounds of baseline time / model time, so both
// sides of every ratio ran within seconds of each other (this machine is shared, and
// its read bandwidth moves by 2x within minutes); the lowest and highest round's ratio
// are printed beside it. The times printed are medians over rounds; the baseline's pool
// the rounds of all pairs.
//
// Random weights: every choice the sparse paths make (controller argmax, ReLU zeros)
// is as random as the weights, so the traffic is what a trained model would read
// except for the dense ReLU row ("zeros skipped"): random pre-activations are ~50%
// negative, a trained model's are ~90-97% (Lazy Neuron), so that row understates it.
//
// Threads: the kernels split each call over threads that wait for each other, so on a
// shared machine (another process holding a core) 2-thread figures can come out slower
// than 1-thread ones; compare rows within one thread count, and rerun when the load
// (uptime) is high. Before each round, kernels.roundTripNs times a cache line passed
// between the main thread and the worker; the column gives its median and range. About
// 100 ns: the two threads share a last-level cache. Several hundred: they do not (this
// VM's two vCPUs sometimes run on different dies of the host), the worker's prefetches
// land in a cache the main thread does not read, and the sparse models lose their
// second thread while the dense baseline streams faster (docs/decode.md).
//
// `17b`: one block of the paper's 17B-class model (d 9216, 96 heads, d_ff 40960 / 65536;
// 4.4-4.8 GB of float32 per block, spread over two wasm memories by the heap), per-block
// time only, as the paper reports it. The embedding and output layer are not part of a
// block, so this preset cuts the vocabulary to 1000 (saves 2.4 GB and minutes of setup).
//
// --contexts 16,512,2048: also, for the dense baseline and the sparse models, the time
// per token after a prompt of each length (the KV cache's share grows with it: the
// KV bytes read per token are printed beside the weight bytes), and the prefill rate
// of that prompt.
import { APART_NS, createKernels, type CpuKernels } from '../src/backends/cpu/kernels.js';
import { DecodeEngine } from '../src/decode/engine.js';
import { releaseLoadGarbage } from '../src/io/memory.js';
import { makeConfig, type ModelConfig } from '../src/models/config.js';
import { loadPreset, presetConfig } from '../src/models/presets.js';
import { lazyRandomParams, median } from './util.js';

export interface DecodeBenchOptions {
  preset: string; threads: number[]; tokens: number; prompt: number; blas: boolean; only?: string;
  /** Paired rounds per model (see the header). */
  rounds: number;
  /** Prompt lengths for the context-length table (empty: none). */
  contexts: number[];
}

/** paper: [ms/token or null, ms/block] on their machine (spec/results.md). */
interface Variant { name: string; overrides: Record<string, unknown>; skipZeros: boolean; paper?: [number | null, number]; contexts?: boolean }

// The shapes come from presets/*.json (presetConfig adds a preset's with_sparse_qkv
// fields, the larger d_ff and d_lowrank of the Sparse QKV rows, when attn is sparse);
// `bench` holds what the benchmark fixes on top: the reference models' ReLU FF with
// biases, LayerNorm and RoPE, and for the 17B block a cut vocabulary (see above).
// paper: spec/results.md, decode time per token (ms, 800M) and per block (ms).
const REFERENCE_FF = { activation: 'relu', ffn_bias: true, norm: 'layernorm', positions: 'rope' };
const PRESETS: Record<string, { preset: string; bench: Record<string, unknown>; variants: Variant[] }> = {
  '800m': {
    preset: '800m',
    bench: REFERENCE_FF,
    variants: [
      { name: 'baseline dense', overrides: {}, skipZeros: false, paper: [160, 5.9], contexts: true },
      { name: 'dense, ReLU zeros skipped', overrides: {}, skipZeros: true },
      { name: 'Top-k FF (k = 128 of 4096)', overrides: { ffn: 'topk', topk_k: 128 }, skipZeros: false },
      { name: '+ Sparse FF', overrides: { ffn: 'sparse' }, skipZeros: false, paper: [93, 3.1] },
      { name: '+ Sparse QKV', overrides: { attn: 'sparse' }, skipZeros: false, paper: [152, 6.2] },
      { name: '+ Sparse FF + QKV', overrides: { ffn: 'sparse', attn: 'sparse' }, skipZeros: false, paper: [61, 1.9], contexts: true },
      { name: '+ FF + QKV + sparse loss', overrides: { ffn: 'sparse', attn: 'sparse', output: 'sparse' }, skipZeros: false, contexts: true },
    ],
  },
  // One block of the 17B-class model.
  '17b': {
    preset: '17b-block',
    bench: { ...REFERENCE_FF, vocab_size: 1000 },
    variants: [
      { name: 'baseline dense', overrides: {}, skipZeros: false, paper: [null, 581] },
      { name: '+ Sparse FF', overrides: { ffn: 'sparse' }, skipZeros: false, paper: [null, 259] },
      { name: '+ Sparse QKV', overrides: { attn: 'sparse' }, skipZeros: false, paper: [null, 554] },
      { name: '+ Sparse FF + QKV', overrides: { ffn: 'sparse', attn: 'sparse' }, skipZeros: false, paper: [null, 14] },
    ],
  },
  // The small preset, for a quick look (seconds).
  small: {
    preset: 'small',
    bench: { ...REFERENCE_FF, vocab_size: 8000 },
    variants: [
      { name: 'baseline dense', overrides: {}, skipZeros: false, contexts: true },
      { name: '+ Sparse FF', overrides: { ffn: 'sparse' }, skipZeros: false },
      { name: '+ Sparse QKV', overrides: { attn: 'sparse' }, skipZeros: false },
      { name: '+ Sparse FF + QKV', overrides: { ffn: 'sparse', attn: 'sparse' }, skipZeros: false },
      { name: '+ FF + QKV + sparse loss', overrides: { ffn: 'sparse', attn: 'sparse', output: 'sparse' }, skipZeros: false, contexts: true },
    ],
  },
};
PRESETS['17b-block'] = PRESETS['17b'];


function argmax(v: Float32Array): number {
  let b = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[b]) b = i;
  return b;
}

interface Row {
  name: string; threads: number; prefillMs: number; tokenMs: number; blockMs: number; bytes: number; blockBytes: number;
  gbs: number; blockGbs: number; ceil: number; paper?: [number | null, number];
  /** kernels.roundTripNs before each of its rounds (two or more threads): median, lowest, highest. */
  roundTrip: [number, number, number] | null;
  /** The block speedups of the rounds whose round trip was under APART_NS (kernels.ts), and of the others. */
  blockByPlacement: { shared: number[]; apart: number[] } | null;
  /** Median over paired rounds of baseline time / this model's time (1 for the baseline). */
  tokenSpeedup: number; blockSpeedup: number;
  /** The lowest and highest of those rounds' ratios (null for the baseline): how much the machine moved. */
  tokenRange: [number, number] | null; blockRange: [number, number] | null;
}
/** One model at one prompt length: ms/token after it, KV bytes read per token, prefill tokens/s. */
interface ContextRow { name: string; context: number; tokenMs: number; weightBytes: number; kvBytes: number; prefillTokS: number }

function ceiling(k: CpuKernels, buf: number, bytes: number): number {
  const g: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    k.readBandwidth(buf, bytes);
    g.push(bytes / ((performance.now() - t0) * 1e6));
  }
  return median(g);
}

const promptOf = (n: number, V: number): number[] => Array.from({ length: n }, (_, i) => (i * 7919 + 13) % V);

/** A loaded model and what its rounds measured. */
interface Loaded {
  v: Variant; config: ModelConfig; engine: DecodeEngine;
  tok: number[]; blk: number[]; prefillMs: number[]; bytes: number; blockBytes: number;
}

function load(k: CpuKernels, config: ModelConfig, v: Variant, o: DecodeBenchOptions): Loaded {
  const t0 = performance.now();
  const maxContext = Math.max(o.prompt, ...(v.contexts ? o.contexts : [])) + o.tokens + 4;
  const engine = new DecodeEngine(config, lazyRandomParams(config, 7), { kernels: k, skipZeros: v.skipZeros, maxContext });
  const loadMs = performance.now() - t0;
  // The parameter arrays the engine copied are garbage now: unmapped here, not during a timed token (src/io/memory.ts).
  releaseLoadGarbage();
  // Warm-up: part of the prompt and a few tokens (page faults, tier-up).
  let next = argmax(engine.prefill(promptOf(4, config.vocab_size)));
  for (let i = 0; i < 2; i++) next = argmax(engine.step(next));
  process.stderr.write(`  ${v.name} (${o.threads.length > 1 ? `${k.threads} threads, ` : ''}load ${(loadMs / 1000).toFixed(1)} s, ` +
    `${(engine.weightBytesTotal / 2 ** 30).toFixed(2)} GiB in ${k.heap.memories.length} wasm memor${k.heap.memories.length > 1 ? 'ies' : 'y'})\n`);
  return { v, config, engine, tok: [], blk: [], prefillMs: [], bytes: 0, blockBytes: 0 };
}

/** One round of a model: reset, prefill the prompt (timed), decode `tokens` greedily; returns the round's median ms/token and ms/block. */
function round(m: Loaded, o: DecodeBenchOptions): [number, number] {
  const { engine, config } = m;
  engine.reset();
  const tp = performance.now();
  let next = argmax(engine.prefill(promptOf(o.prompt, config.vocab_size)));
  m.prefillMs.push(performance.now() - tp);
  const tok: number[] = [], blk: number[] = [], bytes: number[] = [], blockBytes: number[] = [];
  for (let i = 0; i < o.tokens; i++) {
    next = argmax(engine.step(next));
    tok.push(engine.last.totalMs); blk.push(engine.last.blocksMs / config.n_layers);
    bytes.push(engine.last.weightBytes); blockBytes.push(engine.last.blockWeightBytes / config.n_layers);
  }
  m.bytes = median(bytes); m.blockBytes = median(blockBytes);
  const t = median(tok), b = median(blk);
  m.tok.push(t); m.blk.push(b);
  return [t, b];
}

/**
 * A row of the table; `ratios` are the paired rounds' baseline/model time ratios (null for
 * the baseline itself), `trips` the threads' round trip before each round.
 */
function rowOf(m: Loaded, k: CpuKernels, ceil: number, ratios: { token: number[]; block: number[] } | null, trips: number[]): Row {
  const tokenMs = median(m.tok), blockMs = median(m.blk);
  const range = (r: number[]): [number, number] => [Math.min(...r), Math.max(...r)];
  // The kernels' own line between sharing a cache and not (checkPlacement).
  const split = ratios && k.threads > 1
    ? { shared: ratios.block.filter((_, r) => trips[r] < APART_NS), apart: ratios.block.filter((_, r) => trips[r] >= APART_NS) }
    : null;
  return {
    roundTrip: trips.length > 0 && k.threads > 1 ? [median(trips), ...range(trips)] : null,
    blockByPlacement: split,
    name: m.v.name, threads: k.threads, prefillMs: median(m.prefillMs), tokenMs, blockMs, bytes: m.bytes, blockBytes: m.blockBytes,
    gbs: m.bytes / (tokenMs * 1e6), blockGbs: m.blockBytes / (blockMs * 1e6), ceil, paper: m.v.paper,
    tokenSpeedup: ratios ? median(ratios.token) : 1, blockSpeedup: ratios ? median(ratios.block) : 1,
    tokenRange: ratios ? range(ratios.token) : null, blockRange: ratios ? range(ratios.block) : null,
  };
}

/** "104 (96-471)": the threads' round trip in ns, median and range over the rounds; '-' on one thread. */
function roundTrip(r: Row): string {
  return r.roundTrip ? `${r.roundTrip[0].toFixed(0)} (${r.roundTrip[1].toFixed(0)}-${r.roundTrip[2].toFixed(0)})` : '-';
}

/** "7.04x (6.1-7.9)": the median ratio and the range over rounds. */
function speedup(mid: number, range: [number, number] | null): string {
  return range ? `${mid.toFixed(2)}x (${range[0].toFixed(1)}-${range[1].toFixed(1)})` : `${mid.toFixed(2)}x`;
}

/** Reset, prefill a prompt of L tokens (timed), then decode `tokens` greedily: the median ms/token at that context. */
function atContext(engine: DecodeEngine, config: ModelConfig, name: string, L: number, tokens: number): ContextRow {
  engine.reset();
  const t0 = performance.now();
  let next = argmax(engine.prefill(promptOf(L, config.vocab_size)));
  const prefillTokS = L / ((performance.now() - t0) / 1000);
  const tok: number[] = [], wb: number[] = [];
  for (let i = 0; i < tokens; i++) {
    next = argmax(engine.step(next));
    tok.push(engine.last.totalMs); wb.push(engine.last.weightBytes);
  }
  // Keys and values of every cached position, every layer (float32), at the middle token.
  const hkv = config.attn === 'dense' ? config.n_kv_heads : config.n_heads;
  const kvBytes = 2 * config.n_layers * hkv * (config.d_model / config.n_heads) * (L + tokens / 2) * 4;
  return { name, context: L, tokenMs: median(tok), weightBytes: median(wb), kvBytes, prefillTokS };
}

export function runDecode(o: DecodeBenchOptions): void {
  const preset = PRESETS[o.preset];
  if (!preset) throw new Error(`bench decode: unknown preset '${o.preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  const shape = loadPreset(preset.preset);
  const perBlockOnly = shape.config.n_layers === 1;
  console.log(`decode, preset ${o.preset}: batch 1, greedy, ${o.prompt}-token prompt, ${o.tokens} tokens per round after warm-up, ${o.rounds} paired rounds ` +
    'per model against the dense baseline (speedup: median over rounds of the two times\' ratio; times: medians over rounds); random weights, float32');
  for (const threads of o.threads) {
    const k = createKernels({ threads, blas: o.blas });
    const bufBytes = 512 * 2 ** 20;
    const buf = k.heap.alloc(bufBytes, 64);
    k.heap.f32(buf, bufBytes / 4).fill(1);
    const rows: Row[] = [];
    const contextRows: ContextRow[] = [];
    const configOf = (v: Variant): ModelConfig => {
      const context_length = Math.max(128, ...o.contexts.map((c) => c + o.tokens + 8));
      return makeConfig(presetConfig(shape, { ...preset.bench, context_length, ...v.overrides }));
    };
    const [baseVariant, ...others] = preset.variants.filter((x, i) => i === 0 || !o.only || x.name.includes(o.only));
    let base: Loaded | null = null;
    const baseCeil: number[] = [], baseTrips: number[] = [];
    try {
      base = load(k, configOf(baseVariant), baseVariant, o);
      if (others.length === 0) {
        baseCeil.push(ceiling(k, buf, bufBytes));
        for (let r = 0; r < o.rounds; r++) { baseTrips.push(k.roundTripNs()); round(base, o); }
      }
      for (const v of others) {
        const m = load(k, configOf(v), v, o);
        try {
          const ceil = ceiling(k, buf, bufBytes);
          baseCeil.push(ceil);
          const tokenRatio: number[] = [], blockRatio: number[] = [], trips: number[] = [];
          for (let r = 0; r < o.rounds; r++) {
            // Where the two threads ran this round (see roundTripNs): the same for both models.
            trips.push(k.roundTripNs());
            const [bt, bb] = round(base, o);
            const [mt, mb] = round(m, o);
            tokenRatio.push(bt / mt); blockRatio.push(bb / mb);
          }
          baseTrips.push(...trips);
          rows.push(rowOf(m, k, ceil, { token: tokenRatio, block: blockRatio }, trips));
          if (v.contexts) for (const L of o.contexts) contextRows.push(atContext(m.engine, m.config, v.name, L, o.tokens));
        } finally {
          m.engine.dispose();
        }
      }
      const b = base;
      if (baseVariant.contexts) contextRows.unshift(...o.contexts.map((L) => atContext(b.engine, b.config, baseVariant.name, L, o.tokens)));
      rows.unshift(rowOf(b, k, median(baseCeil), null, baseTrips));
    } finally {
      base?.engine.dispose();
      k.heap.free(buf);
      k.dispose();
    }
    const baseRow = rows[0];
    console.log(`\n${threads} thread${threads > 1 ? 's' : ''}; dense products: WebAssembly on 8-row panels (gemvPanels)` +
      `${k.blas ? ', Sparse QKV\'s small products and prefill through OpenBLAS' : ''}; ` +
      `wasm kernels: ${k.fma ? 'relaxed SIMD (fused multiply-add)' : 'SIMD (multiply, add)'}`);
    if (perBlockOnly) {
      console.log('| model (one block) | ms/block | speedup (range over rounds) | MB read/block | ideal speedup | GB/s | read ceiling GB/s | thread round trip ns | paper ms/block | paper speedup |');
      console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
      for (const r of rows) {
        const paper = r.paper ? `${r.paper[1]}` : '-';
        const paperSpeed = r.paper && baseRow.paper ? `${(baseRow.paper[1] / r.paper[1]).toFixed(2)}x` : '-';
        console.log(`| ${r.name} | ${r.blockMs.toFixed(2)} | ${speedup(r.blockSpeedup, r.blockRange)} | ${(r.blockBytes / 1e6).toFixed(1)} | ` +
          `${(baseRow.blockBytes / r.blockBytes).toFixed(2)}x | ${r.blockGbs.toFixed(1)} | ${r.ceil.toFixed(1)} | ${roundTrip(r)} | ${paper} | ${paperSpeed} |`);
      }
    } else {
      console.log('| model | ms/token | ms/block | speedup token / block (range over rounds) | MB read/token | ideal speedup | GB/s | read ceiling GB/s | thread round trip ns | prefill tok/s | paper ms/token, ms/block |');
      console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
      for (const r of rows) {
        const paper = r.paper ? `${r.paper[0] ?? '-'}, ${r.paper[1]}` : '-';
        console.log(`| ${r.name} | ${r.tokenMs.toFixed(1)} | ${r.blockMs.toFixed(2)} | ${speedup(r.tokenSpeedup, r.tokenRange)} / ${speedup(r.blockSpeedup, r.blockRange)} | ` +
          `${(r.bytes / 1e6).toFixed(0)} | ${(baseRow.bytes / r.bytes).toFixed(2)}x | ${r.gbs.toFixed(1)} | ${r.ceil.toFixed(1)} | ${roundTrip(r)} | ${(o.prompt / (r.prefillMs / 1000)).toFixed(0)} | ${paper} |`);
      }
    }
    if (threads > 1) {
      console.log(`\nblock speedup by where the threads ran (round trip under ${APART_NS} ns: a shared last-level cache), ${threads} threads:`);
      const part = (v: number[]): string => v.length === 0 ? 'no rounds' : `${median(v).toFixed(2)}x over ${v.length} round${v.length > 1 ? 's' : ''}`;
      for (const r of rows) if (r.blockByPlacement) console.log(`  ${r.name}: shared ${part(r.blockByPlacement.shared)}; apart ${part(r.blockByPlacement.apart)}`);
    }
    if (contextRows.length > 0) {
      const dense = new Map(contextRows.filter((r) => r.name === baseRow.name).map((r) => [r.context, r.tokenMs]));
      console.log(`\ncontext length, ${threads} thread${threads > 1 ? 's' : ''}: ms/token after a prompt of L tokens (median over ${o.tokens}), weight and KV-cache bytes read per token, prefill of the L-token prompt`);
      console.log('| model | L | ms/token | speedup vs dense at L | weight MB/token | KV MB/token | KV share of bytes | prefill tok/s |');
      console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
      for (const r of contextRows) {
        const d = dense.get(r.context);
        console.log(`| ${r.name} | ${r.context} | ${r.tokenMs.toFixed(1)} | ${d ? (d / r.tokenMs).toFixed(2) + 'x' : '-'} | ${(r.weightBytes / 1e6).toFixed(0)} | ` +
          `${(r.kvBytes / 1e6).toFixed(1)} | ${((100 * r.kvBytes) / (r.kvBytes + r.weightBytes)).toFixed(0)}% | ${r.prefillTokS.toFixed(0)} |`);
      }
    }
  }
  console.log(perBlockOnly
    ? '\npaper: Scaling Transformers (CPU, their machine): 17B-class block 581 ms dense, 14 ms with Sparse FF + QKV (42.5x).'
    : '\npaper: Scaling Transformers (CPU, their machine): 800M speedup 2.62x per token, 3.05x per block with Sparse FF + QKV.');
}
