// Helpers shared by the benchmarks: flag parsing, medians, and random weights of a
// model's shapes (speed does not depend on training, only on shapes).
import type { ModelConfig } from '../src/models/config.js';
import { parameterSpecs, type Init } from '../src/models/params.js';

/** `--name value`, `--name=value` and bare `--flag` (= 'true'); anything else calls `usage`. */
export function parseFlags(args: readonly string[], usage: () => never): Map<string, string> {
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

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Random parameters of the config's shapes: uniform with each spec's std (norm
 * weights ones, biases zeros), from a fixed xorshift stream: fast to make at
 * the 800m shapes, where the counter-based generator would take seconds.
 */
export function randomParams(config: ModelConfig, seed: number): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  let s = seed >>> 0 || 1;
  for (const [name, spec] of parameterSpecs(config)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    s = fillInit(a, spec.init, s);
    out[name] = a;
  }
  return out;
}

/**
 * Like randomParams, but each array is made when read (a getter) and not kept: the
 * decoder reads each parameter once and copies it into its own heap, so a 4.8 GB
 * 17B-class block is never held twice. Parameter i uses its own stream (seed, i), so
 * the values do not depend on the order of reads.
 */
export function lazyRandomParams(config: ModelConfig, seed: number): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  let i = 0;
  for (const [name, spec] of parameterSpecs(config)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const s0 = (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(++i, 0x85ebca6b)) >>> 0 || 1;
    Object.defineProperty(out, name, {
      enumerable: true,
      get: () => { const a = new Float32Array(n); fillInit(a, spec.init, s0); return a; },
    });
  }
  return out;
}

/** Fill `a` by its init (ones, zeros, or uniform with the spec's std from the xorshift state s); returns the new state. */
function fillInit(a: Float32Array, init: Init, s: number): number {
  if (init.kind === 'ones') a.fill(1);
  else if (init.kind === 'normal') {
    const w = init.std * Math.sqrt(12); // uniform [-w/2, w/2] has std `std`
    for (let i = 0; i < a.length; i++) {
      s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
      a[i] = ((s >>> 0) / 4294967296 - 0.5) * w;
    }
  }
  return s;
}
