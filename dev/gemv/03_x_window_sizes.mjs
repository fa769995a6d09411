// Needs out/probe.wasm from 02_x_window_probe.mjs; run from dev/gemv.
// Probe 3: single W stream times an x window of xn floats (sequential, wrapping).
import { readFileSync } from 'node:fs';
const big = 512 << 20, w = 176 << 20;
const memory = new WebAssembly.Memory({ initial: (big + w + (2 << 20)) >> 16, maximum: 65536, shared: true });
const ex = new WebAssembly.Instance(new WebAssembly.Module(readFileSync('out/probe.wasm')), { env: { memory } }).exports;
new Float32Array(memory.buffer).fill(0.001);
const pB = 65536, pW = pB + big, pX = pW + w;
const t = performance.now(); while (performance.now() - t < 50) { ex.readSum(pW, 4096); ex.mulX(pW, 4096, pX, 4096); }
const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
const res = {};
for (let r = 0; r < 5; r++) for (const xn of [64, 256, 512, 1024, 2048, 4096, 8192]) {
  ex.readSum(pB, big / 4); const t0 = performance.now(); ex.mulX(pW, w / 4, pX, xn); (res[xn] ??= []).push(w / (performance.now() - t0) / 1e6);
}
for (const [k, v] of Object.entries(res)) console.log(`x ${k} floats`.padEnd(16), med(v).toFixed(1), 'GB/s');
