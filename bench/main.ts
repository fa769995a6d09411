// Benchmark entry point: `npm run bench -- <name> [flags]` (= node build/bench/main.js).
// Each benchmark prints its achieved FLOP/s or GB/s next to the ceiling measured in the
// same run (style.md point 10). Benchmarks: ops (CPU kernels: matmul, matrix-vector), decode (the batch-1 decoder).
import { runOps } from './ops.js';
import { runDecode } from './decode.js';

function usage(): never {
  console.error('usage: npm run bench -- ops [--threads 1,2] [--reps N]');
  console.error('       npm run bench -- decode [--preset 800m|small] [--threads 1,2] [--tokens 10] [--prompt 16] [--blas false] [--only NAME]');
  process.exit(2);
}

function parseFlags(args: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--')) usage();
    const eq = a.indexOf('=');
    if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
    else if (i + 1 < args.length && !args[i + 1].startsWith('--')) flags.set(a.slice(2), args[++i]);
    else flags.set(a.slice(2), 'true');
  }
  return flags;
}

const [name, ...rest] = process.argv.slice(2);
const flags = parseFlags(rest);
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
    if (threads.some((t) => !Number.isInteger(t) || t < 1) || !Number.isInteger(tokens) || tokens < 1 || !Number.isInteger(prompt) || prompt < 1) usage();
    runDecode({ preset: flags.get('preset') ?? '800m', threads, tokens, prompt, blas: flags.get('blas') !== 'false', only: flags.get('only') });
    break;
  }
  default:
    usage();
}
