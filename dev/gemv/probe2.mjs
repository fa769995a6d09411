// Probe 2: gemv 4 rows x 1 vector over W [11008, 4096] with x placed at different offsets
// mod 4 KiB from W's rows (L1 set conflicts), and x working-set size.
import { readFileSync } from 'node:fs';
const ex0 = new WebAssembly.Module(readFileSync('out/gemv_r4_v1.wasm'));
const ex1 = new WebAssembly.Module(readFileSync('out/gemv_r2_v2.wasm'));
const rows = 11008, cols = 4096, big = 512 << 20, w = rows * cols * 4;
const memory = new WebAssembly.Memory({ initial: (big + w + (2 << 20)) >> 16, maximum: 65536, shared: true });
const A = new WebAssembly.Instance(ex0, { env: { memory } }).exports;
const B = new WebAssembly.Instance(ex1, { env: { memory } }).exports;
new Float32Array(memory.buffer).fill(0.001);
const pB = 65536, pW = pB + big, pX = pW + w, pY = pX + 65536;
const t = performance.now(); while (performance.now() - t < 50) { A.gemv(pW, cols, pX, pY, 0, 8); B.gemv(pW, cols, pX, pY, 0, 8); A.readSum(pW, 4096); }
const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
const res = {};
for (let r = 0; r < 7; r++) {
  for (const off of [0, 64, 1024, 2048, 2048 + 64]) for (const [nm, E] of [['r4v1', A], ['r2v2', B]]) {
    const name = `${nm} x@+${off}`;
    A.readSum(pB, big / 4);
    const t0 = performance.now(); E.gemv(pW, cols, pX + off, pY, 0, rows); (res[name] ??= []).push(w / (performance.now() - t0) / 1e6);
  }
  A.readSum(pB, big / 4); const t0 = performance.now(); A.readSum(pW, w / 4); (res.read ??= []).push(w / (performance.now() - t0) / 1e6);
}
for (const [k, v] of Object.entries(res)) console.log(k.padEnd(16), med(v).toFixed(1), 'GB/s');
