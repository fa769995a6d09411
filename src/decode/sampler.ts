/**
 * Choosing the next token from logits: greedy, temperature, top-k, top-p
 * (nucleus) and a repetition penalty, with its own seeded generator so a
 * fixed seed gives a fixed output whatever else draws random numbers.
 *
 * Order of operations (as llama.cpp and Hugging Face apply them):
 * repetition penalty on the raw logits (positive logits divided by the
 * penalty, negative ones multiplied, for tokens already seen), then greedy if
 * temperature is 0; else divide by the temperature, keep the top-k logits,
 * softmax, keep the smallest set of most likely tokens whose probability
 * reaches top-p (always at least one), renormalise and draw.
 * Ties in the ranking go to the lower token id, as in the top-k op.
 */

import { SparselmError } from '../tensor/errors.js';
import { uniform01 } from '../tensor/random.js';

export interface SamplerOptions {
  /** 0 means greedy (default 0.8). */
  temperature?: number;
  /** Keep only the k most likely tokens (0: all; default 40). */
  topK?: number;
  /** Nucleus threshold in (0, 1] (default 0.95). */
  topP?: number;
  /** >= 1; 1 means none (default 1). */
  repetitionPenalty?: number;
  seed?: number;
}

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly repetitionPenalty: number;
  readonly seed: number;
  /** Draws taken so far (the generator's position). */
  draws = 0;
  private order: Int32Array = new Int32Array(0);
  private probs: Float64Array = new Float64Array(0);

  constructor(opts: SamplerOptions = {}) {
    this.temperature = opts.temperature ?? 0.8;
    this.topK = opts.topK ?? 40;
    this.topP = opts.topP ?? 0.95;
    this.repetitionPenalty = opts.repetitionPenalty ?? 1;
    this.seed = opts.seed ?? 0;
    const bad = (what: string) => { throw new SparselmError(`sampler: ${what}`); };
    if (!(this.temperature >= 0) || !Number.isFinite(this.temperature)) bad(`temperature must be >= 0, got ${this.temperature}`);
    if (!Number.isInteger(this.topK) || this.topK < 0) bad(`topK must be an integer >= 0, got ${this.topK}`);
    if (!(this.topP > 0 && this.topP <= 1)) bad(`topP must be in (0, 1], got ${this.topP}`);
    if (!(this.repetitionPenalty >= 1) || !Number.isFinite(this.repetitionPenalty)) bad(`repetitionPenalty must be >= 1, got ${this.repetitionPenalty}`);
  }

  /** The next token id for `logits` [V] (modified in place by the penalty), given the ids so far. */
  sample(logits: Float32Array | Float64Array, history: ArrayLike<number> = []): number {
    const V = logits.length;
    if (this.repetitionPenalty !== 1) {
      const seen = new Set<number>();
      for (let i = 0; i < history.length; i++) seen.add(history[i]);
      for (const id of seen) if (id >= 0 && id < V) logits[id] = logits[id] > 0 ? logits[id] / this.repetitionPenalty : logits[id] * this.repetitionPenalty;
    }
    if (this.temperature === 0) {
      let best = 0;
      for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
      return best;
    }
    if (this.order.length !== V) { this.order = new Int32Array(V); this.probs = new Float64Array(V); }
    const order = this.order;
    for (let i = 0; i < V; i++) order[i] = i;
    // Sort ids by logit, descending, ties to the lower id (only the kept prefix matters, but V is small).
    order.sort((a, b) => logits[b] - logits[a] || a - b);
    const k = this.topK > 0 ? Math.min(this.topK, V) : V;
    const top = logits[order[0]];
    let total = 0;
    for (let r = 0; r < k; r++) { this.probs[r] = Math.exp((logits[order[r]] - top) / this.temperature); total += this.probs[r]; }
    let kept = 0;
    let mass = 0;
    while (kept < k) { mass += this.probs[kept] / total; kept++; if (mass >= this.topP) break; }
    let keptTotal = 0;
    for (let r = 0; r < kept; r++) keptTotal += this.probs[r];
    let u = uniform01(this.seed, this.draws++, 0, true) * keptTotal;
    for (let r = 0; r < kept; r++) { u -= this.probs[r]; if (u <= 0) return order[r]; }
    return order[kept - 1];
  }
}
