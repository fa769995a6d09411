// sparselm against llama.cpp (node-llama-cpp 3.21.1, its prebuilt CPU binary) on the
// same dense llama-architecture weights, exported with `writeGguf` (src/io/gguf.ts):
//
//   npm run build && npm run bench -- llamacpp [--vocab 32000] [--d 1024] [--layers 24]
//       [--heads 16] [--kv-heads 16] [--d-ff 2730] [--threads 1,2] [--prompt 16] [--tokens 16]
//       [--sparse true] [--out file.gguf]
//
// Default shape: the decoder of the paper's 800M timing model (presets/800m.json: 24
// layers, d 1024, 16 heads, vocabulary 32000) made llama-style: RMSNorm, RoPE, SwiGLU,
// untied output, no biases, with d_ff = 2730 ≈ 2/3·4096 so the three SwiGLU matrices
// hold what the paper's two ReLU matrices do (1.47 GB of float32 weights).
//
// What it does: random weights (fixed seed, each parameter uniform with its init std);
// export to GGUF (vocabulary 257: the byte tokenizer; otherwise a synthetic BPE
// vocabulary of that size, since the ids are fed directly and only the count matters);
// then, for each thread count, llama.cpp (gpu: false, that many threads; its defaults:
// f16 KV cache, flash attention) and sparselm's batch-1 decoder (src/decode/engine.ts,
// DecodeEngine) each process the same prompt and decode greedily, and we report the
// median ms/token and tokens/s over the generated tokens (after a warm-up), plus
// prompt tokens/s. Agreement: llama.cpp's next-token distribution at every prompt
// position against sparselm's training-graph forward (mode 'eval', the oracle), as
// max |Δ log p| over tokens with p > 1e-4 and the argmax, and how many greedy tokens
// llama.cpp and DecodeEngine produce identically.
// Sparse against dense (--sparse, default true): DecodeEngine also decodes the sparse
// models of the same shape (d, layers, heads, vocabulary; Sparse FF + Sparse QKV with
// the paper's d_ff 6144, N 64, d_lowrank 96, S 16, and with the sparse loss layer too)
// on the same prompt and threads, and we state their ms/token against llama.cpp's
// dense ms/token: the speedup a user of sparselm gets over the best dense engine.
//
// The machine is shared: figures move 10-25% between runs (../shared/spec/cpu-ceilings.md).
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';
import { writeGguf } from '../src/io/gguf.js';
import { makeConfig, type ModelConfig } from '../src/models/config.js';
import { parameterSpecs } from '../src/models/params.js';
import { lazyRandomParams, median, parseFlags, randomParams } from './util.js';
import { forward } from '../src/models/transformer.js';
import { DecodeEngine } from '../src/decode/engine.js';
import { releaseLoadGarbage } from '../src/io/memory.js';
import { loadTokenizer, BpeTokenizer, GPT2_PATTERN, type Tokenizer } from '../src/data/tokenizer.js';
import { tensor } from '../src/tensor/create.js';
import type { Tensor } from '../src/tensor/tensor.js';

function usage(): never {
  console.error('usage: npm run bench -- llamacpp [--vocab 32000] [--d 1024] [--layers 24] [--heads 16] [--kv-heads 16] [--d-ff 2730]');
  console.error('                                 [--threads 1,2] [--prompt 16] [--tokens 16] [--rounds 3] [--sparse true|false] [--out file.gguf]');
  process.exit(2);
}


const KNOWN = new Set(['vocab', 'd', 'layers', 'heads', 'kv-heads', 'd-ff', 'threads', 'prompt', 'tokens', 'out', 'sparse', 'rounds']);



/**
 * A BPE vocabulary of exactly `vocabSize` ids whose token strings are all
 * distinct: merge k joins token L[k / 26] (the letters, then the merged tokens
 * in order) with the letter 'a' + k % 26. Only for benchmarking shapes.
 */
function syntheticBpe(vocabSize: number): Tokenizer {
  const merges: number[] = [];
  const lefts: number[] = Array.from({ length: 26 }, (_, i) => 97 + i);
  for (let k = 0; k < vocabSize - 257; k++) {
    merges.push(lefts[Math.floor(k / 26)], 97 + (k % 26));
    lefts.push(256 + k);
  }
  return BpeTokenizer.fromJSON({ kind: 'bpe', version: 1, pattern: GPT2_PATTERN, merges });
}

function argmax(v: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[b]) b = i;
  return b;
}

interface Timing { threads: number; promptTokS: number; tokenMs: number; tokens: number[] }

const fmt = (x: number, d = 1) => x.toFixed(d);

/** The run with the median ms/token. */
function medianTiming(runs: Timing[]): Timing {
  const ms = median(runs.map((r) => r.tokenMs));
  return runs.reduce((a, b) => (Math.abs(b.tokenMs - ms) < Math.abs(a.tokenMs - ms) ? b : a));
}

/** Greedy decode with DecodeEngine: median ms/token, prompt tokens/s, the tokens. */
function engineTiming(engine: DecodeEngine, prompt: number[], nTokens: number, threads: number): Timing {
  engine.reset();
  const tp = performance.now();
  let next = argmax(engine.prefill(prompt));
  const promptS = (performance.now() - tp) / 1000;
  const tokens = [next];
  const gaps: number[] = [];
  for (let i = 0; i < nTokens; i++) {
    const ts = performance.now();
    next = argmax(engine.step(next));
    gaps.push(performance.now() - ts);
    tokens.push(next);
  }
  return { threads, promptTokS: prompt.length / promptS, tokenMs: median(gaps), tokens };
}

export async function runLlamacpp(args: readonly string[]): Promise<void> {
  const flags = parseFlags(args, usage);
  for (const k of flags.keys()) if (!KNOWN.has(k)) usage();
  const num = (k: string, def: number) => {
    const v = Number(flags.get(k) ?? def);
    if (!Number.isInteger(v) || v < 1) usage();
    return v;
  };
  const vocab = num('vocab', 32000);
  const promptLen = num('prompt', 16);
  const nTokens = num('tokens', 16);
  const rounds = num('rounds', 3);
  const threadList = (flags.get('threads') ?? '1,2').split(',').map(Number);
  if (threadList.some((t) => !Number.isInteger(t) || t < 1)) usage();
  const config = makeConfig({
    vocab_size: vocab, context_length: Math.max(256, promptLen + nTokens + 8), d_model: num('d', 1024), n_layers: num('layers', 24),
    n_heads: num('heads', 16), n_kv_heads: num('kv-heads', num('heads', 16)), d_ff: num('d-ff', 2730),
    norm: 'rmsnorm', positions: 'rope', activation: 'swiglu', ffn: 'dense', attn: 'dense', output: 'dense', ffn_bias: false, tied_output: false,
  });

  const load0 = loadavg().map((x) => x.toFixed(1)).join(' ');
  const dir = mkdtempSync(join(tmpdir(), 'sparselm-llamacpp-'));
  const path = flags.get('out') ?? join(dir, 'model.gguf');
  try {
    let t0 = performance.now();
    const raw = randomParams(config, 7);
    const tokenizer = vocab === 257 ? loadTokenizer({ kind: 'byte' }) : syntheticBpe(vocab);
    const params: Record<string, Tensor> = {};
    for (const [name, spec] of parameterSpecs(config)) params[name] = tensor(raw[name], spec.shape, { device: 'cpu' });
    const summary = writeGguf(path, config, params, tokenizer, { name: 'sparselm bench' });
    const exportS = (performance.now() - t0) / 1000;
    const nParams = Object.values(raw).reduce((a, x) => a + x.length, 0);
    console.log(`llama-style dense model: ${config.n_layers} layers, d ${config.d_model}, ${config.n_heads} heads (${config.n_kv_heads} kv), d_ff ${config.d_ff} SwiGLU, ` +
      `vocabulary ${vocab}, untied output; ${(nParams / 1e6).toFixed(0)}M parameters, float32 ${fmt(summary.bytes / 1e6, 0)} MB GGUF (${fmt(exportS)} s to make and export)`);
    console.log(`batch 1, greedy, ${promptLen}-token prompt; per run the median ms/token over ${nTokens} generated tokens; ${rounds} rounds after a warm-up ` +
      `round, llama.cpp and sparselm's decoders in turn; medians over rounds (the ratio: median of the rounds' ratios); random weights\n`);

    // GGUF ids: the byte vocabulary is permuted (b -> b + 3), a BPE vocabulary keeps its ids.
    const toG = (id: number) => (vocab === 257 ? (id === 256 ? 2 : id + 3) : id);
    const fromG = (g: number) => (vocab === 257 ? (g === 2 ? 256 : g >= 3 && g < 259 ? g - 3 : -1) : g);
    const prompt = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % (vocab - 1));

    // The oracle: sparselm's training-graph forward on the prompt.
    t0 = performance.now();
    const logits = forward(config, params, tensor(Int32Array.from(prompt), [1, promptLen], { device: 'cpu', dtype: 'int32' }), { mode: 'eval' }).toArray();
    const forwardS = (performance.now() - t0) / 1000;

    // The sparse models of the same shape (same threads, prompt and token count).
    const sparseVariants: [string, Record<string, unknown>][] = flags.get('sparse') === 'false' ? [] : [['Sparse FF + QKV', {}]];
    if (sparseVariants.length > 0 && vocab % 4 === 0) sparseVariants.push(['Sparse FF + QKV + sparse loss', { output: 'sparse' }]); // S_loss = 4 must divide V
    const sparseConfigs = sparseVariants.map(([name, extra]): [string, ModelConfig] => [name, makeConfig({
      ...config, ffn: 'sparse', attn: 'sparse', activation: 'relu', d_ff: 6144, sparse_block: 64, sparse_lowrank: 96,
      qkv_modules: 16, qkv_conv_length: 3, loss_modules: 4, ...extra,
    })]);
    const sparseRows: { name: string; row: Timing; bytes: number }[] = [];
    const engineRows: Timing[] = [];
    const ratios: number[] = []; // per thread count: median over rounds of DecodeEngine ms / llama.cpp ms

    const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, progressLogs: false });
    const llamaRows: Timing[] = [];
    let agreement = '';
    try {
      const model = await llama.loadModel({ modelPath: path });
      try {
        for (const threads of threadList) {
          const ctx = await model.createContext({ contextSize: 256, threads, batchSize: 512 });
          try {
            const seq = ctx.getSequence();
            if (agreement === '') {
              // Agreement with the oracle at every prompt position.
              const res = await seq.controlledEvaluate(prompt.map((t): [Token, { generateNext: { probabilities: true } }] => [toG(t) as Token, { generateNext: { probabilities: true } }]));
              let worstLog = 0;
              let argmaxSame = 0;
              const V = vocab;
              for (let i = 0; i < promptLen; i++) {
                const probs = res[i]?.next.probabilities;
                if (!probs) throw new Error(`llama.cpp returned no probabilities at position ${i}`);
                const row = Float64Array.from({ length: V }, (_, v) => logits[i * V + v]);
                const m = Math.max(...row);
                let z = 0;
                for (let v = 0; v < V; v++) z += Math.exp(row[v] - m);
                let mass = 0;
                for (let v = 0; v < V; v++) mass += probs.get(toG(v) as Token) ?? 0;
                let best = -1;
                let bestP = -1;
                for (const [g, p] of probs) if (fromG(g) >= 0 && p > bestP) { bestP = p; best = fromG(g); }
                if (best === argmax(row)) argmaxSame++;
                for (let v = 0; v < V; v++) {
                  const ours = Math.exp(row[v] - m) / z;
                  if (ours <= 1e-4) continue;
                  const theirs = (probs.get(toG(v) as Token) ?? 0) / mass;
                  worstLog = Math.max(worstLog, Math.abs(Math.log(theirs) - Math.log(ours)));
                }
              }
              agreement = `agreement with sparselm's forward (mode 'eval', ${fmt(forwardS)} s) over ${promptLen} prompt positions: ` +
                `max |Δ log p| ${worstLog.toExponential(2)} (tokens with p > 1e-4), same argmax at ${argmaxSame}/${promptLen}`;
              await seq.clearHistory();
            }
            // sparselm's decoders on the same prompt, same threads: the dense one on the same weights, and the sparse ones.
            const engines = [new DecodeEngine(config, raw, { threads, maxContext: promptLen + nTokens + 8 })];
            try {
              for (const [, sc] of sparseConfigs) engines.push(new DecodeEngine(sc, lazyRandomParams(sc, 7), { threads, maxContext: promptLen + nTokens + 8 }));
              releaseLoadGarbage(); // the copied parameter arrays, unmapped now rather than during a timed token (src/io/memory.ts)
              // Rounds: llama.cpp, then each engine, in turn (round 0 is the warm-up), so
              // load from other work on the shared machine falls on all of them alike.
              const l: Timing[] = [], e: Timing[][] = engines.map(() => []);
              for (let round = 0; round <= rounds; round++) {
                const tokens: number[] = [];
                const stamps: number[] = [];
                const start = performance.now();
                for await (const g of seq.evaluate(prompt.map((t) => toG(t) as Token), { temperature: 0 })) {
                  stamps.push(performance.now());
                  tokens.push(fromG(g));
                  if (tokens.length > nTokens) break;
                }
                await seq.clearHistory();
                const gaps = stamps.slice(1).map((s, i) => s - stamps[i]);
                const rows = engines.map((engine) => engineTiming(engine, prompt, nTokens, threads));
                if (round === 0) continue;
                l.push({ threads, promptTokS: promptLen / ((stamps[0] - start) / 1000), tokenMs: median(gaps), tokens });
                rows.forEach((r, i) => e[i].push(r));
              }
              llamaRows.push(medianTiming(l));
              engineRows.push(medianTiming(e[0]));
              ratios.push(median(l.map((x, i) => e[0][i].tokenMs / x.tokenMs)));
              sparseConfigs.forEach(([name], i) => sparseRows.push({ name, row: medianTiming(e[i + 1]), bytes: engines[i + 1].last.weightBytes }));
            } finally {
              for (const engine of engines) engine.dispose();
            }
          } finally {
            await ctx.dispose();
          }
        }
      } finally {
        await model.dispose();
      }
    } finally {
      await llama.dispose();
    }


    const gb = summary.bytes / 1e9;
    console.log('| threads | llama.cpp ms/token | llama.cpp tokens/s | llama.cpp GB/s | llama.cpp prompt tok/s | sparselm DecodeEngine ms/token | DecodeEngine tokens/s | DecodeEngine GB/s | DecodeEngine prompt tok/s | DecodeEngine ms / llama.cpp ms | same greedy tokens |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (let i = 0; i < threadList.length; i++) {
      const l = llamaRows[i];
      const e = engineRows[i];
      let same = 0;
      while (same < Math.min(l.tokens.length, e.tokens.length) && l.tokens[same] === e.tokens[same]) same++;
      console.log(`| ${l.threads} | ${fmt(l.tokenMs)} | ${fmt(1000 / l.tokenMs)} | ${fmt(gb / (l.tokenMs / 1000))} | ${fmt(l.promptTokS, 0)} | ` +
        `${fmt(e.tokenMs)} | ${fmt(1000 / e.tokenMs)} | ${fmt(gb / (e.tokenMs / 1000))} | ${fmt(e.promptTokS, 0)} | ${fmt(ratios[i], 2)}x | ${same}/${l.tokens.length} |`);
    }
    if (sparseRows.length > 0) {
      console.log(`\nsparse models of the same shape (sparselm DecodeEngine) against llama.cpp's dense decoding, same threads and prompt:`);
      console.log('| model | threads | ms/token | tokens/s | MB read/token | speedup over llama.cpp dense | speedup over sparselm dense |');
      console.log('| --- | --- | --- | --- | --- | --- | --- |');
      for (const s of sparseRows) {
        const i = threadList.indexOf(s.row.threads);
        console.log(`| ${s.name} | ${s.row.threads} | ${fmt(s.row.tokenMs)} | ${fmt(1000 / s.row.tokenMs)} | ${fmt(s.bytes / 1e6, 0)} | ` +
          `${fmt(llamaRows[i].tokenMs / s.row.tokenMs, 2)}x | ${fmt(engineRows[i].tokenMs / s.row.tokenMs, 2)}x |`);
      }
    }
    console.log(`\n${agreement}`);
    console.log('GB/s: the whole float32 model read once per token (weights bytes / time per token).');
    console.log(`load average at start ${load0}, at end ${loadavg().map((x) => x.toFixed(1)).join(' ')} (other work on the machine slows both columns, 2 threads most)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (flags.has('out')) console.log(`GGUF file kept: ${path}`);
  }
}

