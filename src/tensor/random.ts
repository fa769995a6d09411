/**
 * Counter-based random numbers. Element i of a draw with seed s and counter
 * base c is a pure function of (s, c + i), so every backend (and a GPU shader)
 * produces the same numbers, a draw can be split across threads, and a
 * resumed training run replays exactly. The mixer is a 32-bit integer hash
 * (xorshift-multiply rounds) using only u32 multiply, xor and shift, which
 * WGSL has too.
 *
 * Uniforms lie in the open interval (0, 1): never 0 or 1, so log(u) and
 * log(-log(u)) are finite.
 */

function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** 32 random bits for (seed, counter, stream). */
export function randomBits(seed: number, counter: number, stream: number): number {
  const hi = Math.floor(counter / 4294967296);
  return mix32(mix32(mix32(seed >>> 0) ^ (counter >>> 0)) ^ mix32((hi + Math.imul(stream, 0x9e3779b9)) >>> 0));
}

/** Uniform in (0, 1) with 24 bits (float32 resolution) or 53 bits. */
export function uniform01(seed: number, counter: number, stream: number, bits53: boolean): number {
  const a = randomBits(seed, counter, 2 * stream);
  if (!bits53) return ((a >>> 8) + 0.5) / 16777216;
  const b = randomBits(seed, counter, 2 * stream + 1);
  return ((a >>> 5) * 67108864 + (b >>> 6) + 0.5) / 9007199254740992;
}

export type Distribution = 'uniform' | 'normal' | 'gumbel';

/** The value of element `counter` of a draw (Box-Muller for normal, -log(-log u) for Gumbel). */
export function sample(dist: Distribution, seed: number, counter: number, bits53: boolean): number {
  switch (dist) {
    case 'uniform': return uniform01(seed, counter, 0, bits53);
    case 'normal': {
      const u1 = uniform01(seed, counter, 0, bits53);
      const u2 = uniform01(seed, counter, 1, bits53);
      return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }
    case 'gumbel': return -Math.log(-Math.log(uniform01(seed, counter, 0, bits53)));
    default: return dist satisfies never;
  }
}

/**
 * A seeded stream of draws: each draw takes the next block of counters, so a
 * sequence of draws from one generator is reproducible from (seed, position).
 */
export class Rng {
  constructor(public readonly seed: number, public position = 0) {}
  /** Reserves `n` counters and returns the first. */
  take(n: number): number {
    const start = this.position;
    this.position += n;
    return start;
  }
  state(): { seed: number; position: number } {
    return { seed: this.seed, position: this.position };
  }
}
