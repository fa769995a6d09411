/**
 * releaseLoadGarbage(): free, now, the memory a model load left to the garbage
 * collector (the parameter arrays that DecodeEngine copied into its own heap), so that
 * no decoded token pays for it later.
 *
 * Why it matters: V8 returns a dead ArrayBuffer's memory to the system (munmap) on a
 * background thread, after some later collection. Unmapping gigabytes holds the
 * process's memory-map lock for a long time (a 2.4 GB array: 0.18 s here, under
 * strace), and the decoding thread needs that lock for any page fault and whenever V8
 * write-protects code it compiled. It then waits: one token of the 17B-class block took
 * 150 ms instead of 4, with 140 ms of it kernel time, at a token that depended only on
 * when the collector ran.
 *
 * How: a forced full collection (V8's `gc`, exposed through its flag at run time), then
 * a wait, at most `maxMs`, until the resident set stops falling (the unmapping runs on
 * V8's background thread meanwhile).
 *
 * Invariant: nothing the caller still references is touched; without `gc` (a runtime
 * that refuses the flag) it does nothing and returns false.
 */

import v8 from 'node:v8';
import vm from 'node:vm';

let collect: (() => void) | null | undefined;

/** V8's full collection, or null where the runtime does not give it. */
function collector(): (() => void) | null {
  if (collect === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      const f: unknown = vm.runInNewContext('gc');
      collect = typeof f === 'function' ? (f as () => void) : null;
    } catch {
      collect = null;
    }
  }
  return collect;
}

/** Quiet time after which the resident set counts as settled (ms), and the polling step. */
const SETTLED_MS = 100;
const POLL_MS = 10;
/** A drop smaller than this (bytes) is not progress (the process's own small churn). */
const PROGRESS_BYTES = 1 << 20;

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Collects garbage and waits (up to maxMs) for its memory to be unmapped; returns true
 * when a collection ran. Blocks the calling thread: call it after loading, before timing.
 */
export function releaseLoadGarbage(maxMs = 2000): boolean {
  const gc = collector();
  if (gc === null) return false;
  gc();
  const t0 = performance.now();
  let low = process.memoryUsage.rss(), quietSince = t0;
  for (let now = t0; now - t0 < maxMs && now - quietSince < SETTLED_MS; now = performance.now()) {
    Atomics.wait(sleeper, 0, 0, POLL_MS);
    const rss = process.memoryUsage.rss();
    if (rss < low - PROGRESS_BYTES) { low = rss; quietSince = performance.now(); }
  }
  return true;
}
