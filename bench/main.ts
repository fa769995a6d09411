// Benchmark entry point: `npm run bench -- <name> [flags]` (= node build/bench/main.js).
// Each benchmark prints its achieved FLOP/s or GB/s next to the ceiling measured in the
// same run (style.md point 10). Benchmarks: ops (CPU kernels: matmul, matrix-vector), decode (the batch-1 decoder),
// llamacpp (the decoder against llama.cpp on the same dense weights, and the sparse models of that shape).
import { runOps } from './ops.js';
import { runDecode } from './decode.js';
import { parseFlags } from './util.js';

function usage(): never {
  console.error('usage: npm run bench -- ops [--threads 1,2] [--reps N]');
  console.error('       npm run bench -- decode [--preset 800m|17b|small] [--threads 1,2] [--tokens 10] [--prompt 16] [--rounds 5] [--blas false] [--only NAME] [--contexts 16,512,2048]');
  console.error('                               [--contexts 16,512,2048]  (also ms/token and prefill at these prompt lengths)');
  console.error('       npm run bench -- llamacpp [--threads 1,2] [--prompt 16] [--tokens 16] [--sparse true|false] [shape flags: see bench/llamacpp.ts]');
  process.exit(2);
}


const [name, ...rest] = process.argv.slice(2);
const flags = name === 'llamacpp' ? new Map<string, string>() : parseFlags(rest, usage);
switch (name) {
  case 'ops': {
    const threads = (flags.get('threads') ?? '1,2').split(',').map(Number);
    const reps = Number(flags.get('reps') ?? '5');
    if (threads.some((t) => !Number.isInteger(t) || t < 1) || !Number.isInteger(reps) || reps < 1) usage();
    runOps({ threads, reps });
    break;
  }
  case 'decode': {
    const threads = (flags.get('threads') ?? '1,2').split(',').map(Number);
    const tokens = Number(flags.get('tokens') ?? '10');
    const prompt = Number(flags.get('prompt') ?? '16');
    const rounds = Number(flags.get('rounds') ?? '5');
    if (!Number.isInteger(rounds) || rounds < 1) usage();
    const contexts = flags.has('contexts') ? (flags.get('contexts') ?? '').split(',').map(Number) : [];
    if (threads.some((t) => !Number.isInteger(t) || t < 1) || !Number.isInteger(tokens) || tokens < 1 || !Number.isInteger(prompt) || prompt < 1) usage();
    if (contexts.some((c) => !Number.isInteger(c) || c < 1)) usage();
    runDecode({ preset: flags.get('preset') ?? '800m', threads, tokens, prompt, rounds, blas: flags.get('blas') !== 'false', only: flags.get('only'), contexts });
    break;
  }
  case 'llamacpp': {
    // Loaded only here: node-llama-cpp is a dev dependency and loads a native library.
    const { runLlamacpp } = await import('./llamacpp.js');
    await runLlamacpp(rest);
    break;
  }
  default:
    usage();
}
