// Lab 8: gathered rows (gemvRows) with touch-ahead: before each group of 8 selected
// rows, load the first TA cache lines of each row of the next group (so those DRAM
// streams start while this group computes). Ran against a temporary export gemvRowsTA
// (gemvRows plus, before each group of 8, `sink ^= load<u32>(row + 64*l)` for l < TA
// over the next group's rows; TA = 0 is plain gemvRows) that was removed again after
// the result: no gain (2026-11-28, 1 thread: ta0 / ta1 / ta2 / ta4 within noise, ta4
// slightly worse). Re-add that export to rerun. 1 thread, W [rows, 4096] cold,
// interleaved with readSum over 512 MiB. Usage: node dev/gemv/08_gather_touch_lab.mjs [reps]
import { readFileSync } from 'node:fs';
const cols = 4096, big = 512 << 20, maxRows = 11008, wBytes = maxRows * cols * 4;
const memory = new WebAssembly.Memory({ initial: (big + wBytes + (4 << 20)) >> 16, maximum: 65536, shared: true });
const ex = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(new URL('../../build/wasm/kernels.wasm', import.meta.url))), { env: { memory } }).exports;
const pBig = 65536, pW = pBig + big, pX = pW + wBytes, pY = pX + 65536, pI = pY + 65536;
const f = new Float32Array(memory.buffer);
for (let i = 0; i < (pI >> 2); i++) f[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
const idx = new Int32Array(memory.buffer, pI, maxRows);
let seed = 1;
const pick = (rows, n) => {
  const all = Int32Array.from({ length: rows }, (_, i) => i);
  for (let i = 0; i < n; i++) { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; const j = i + (seed % (rows - i)); const t = all[i]; all[i] = all[j]; all[j] = t; }
  idx.set(all.subarray(0, n).sort());
};
pick(64, 64);
const t = performance.now();
while (performance.now() - t < 300) { for (const ta of [0, 1, 2, 4]) ex.gemvRowsTA(pW, cols, pI, pX, pY, 0, 32, ta); ex.readSum(pW, 4096); }
const reps = Number(process.argv[2] ?? 9);
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
for (const [rows, frac] of [[4096, 8], [4096, 64], [11008, 8], [11008, 64]]) {
  const n = Math.floor(rows / frac);
  const res = { read: [] };
  for (let r = 0; r < reps; r++) {
    pick(rows, n);
    for (const ta of [0, 1, 2, 4, 'r']) {
      let t0 = performance.now();
      ex.readSum(pBig, big / 4);
      const tc = performance.now() - t0;
      if (ta === 'r') { res.read.push(big / tc / 1e6); continue; }
      t0 = performance.now();
      ex.gemvRowsTA(pW, cols, pI, pX, pY, 0, n, ta);
      (res[`ta${ta}`] ??= []).push(n * cols * 4 / (performance.now() - t0) / 1e6);
    }
  }
  const c = med(res.read);
  console.log(`${rows} 1/${frac}: ` + Object.entries(res).map(([k, v]) => `${k} ${med(v).toFixed(1)} (${(100 * med(v) / c).toFixed(0)}%)`).join('  '));
}
