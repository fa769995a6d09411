// Needs out/probe.wasm from 02_x_window_probe.mjs; run from dev/gemv.
// Lab: column-blocked gemv (x chunk of CB floats stays in L1; measured above that an x
// window > 4 KiB halves the stream rate here), R rows at a time, partial sums kept in y.
import asc from 'assemblyscript/asc';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
mkdirSync('out', { recursive: true });
function variant(R, CB) {
  const L = [];
  L.push(`export function gemv(pW: usize, cols: i32, pX: usize, pY: usize, r0: i32, r1: i32): void {`);
  L.push(`  const rb: usize = <usize>cols << 2;`);
  L.push(`  for (let r = r0; r < r1; r++) store<f32>(pY + (<usize>r << 2), 0);`);
  L.push(`  for (let c0: usize = 0; c0 < rb; c0 += ${CB * 4}) {`);
  L.push(`    const ce: usize = min<usize>(rb, c0 + ${CB * 4});`);
  L.push(`    for (let r = r0; r + ${R} <= r1; r += ${R}) {`);
  L.push(`      const w0 = pW + <usize>r * rb;`);
  for (let i = 0; i < R; i++) L.push(`      let a${i} = f32x4.splat(0);`);
  L.push(`      for (let o: usize = c0; o < ce; o += 16) {`);
  L.push(`        const x = v128.load(pX + o);`);
  for (let i = 0; i < R; i++) L.push(`        a${i} = f32x4.add(a${i}, f32x4.mul(v128.load(w0 + ${i} * rb + o), x));`);
  L.push(`      }`);
  for (let i = 0; i < R; i++) L.push(`      { const q = pY + (<usize>(r + ${i}) << 2); store<f32>(q, load<f32>(q) + f32x4.extract_lane(a${i}, 0) + f32x4.extract_lane(a${i}, 1) + f32x4.extract_lane(a${i}, 2) + f32x4.extract_lane(a${i}, 3)); }`);
  L.push(`    }`);
  L.push(`  }`);
  L.push(`}`);
  return L.join('\n');
}
const rows = 11008, cols = 4096, big = 512 << 20, w = rows * cols * 4;
const memory = new WebAssembly.Memory({ initial: (big + w + (2 << 20)) >> 16, maximum: 65536, shared: true });
new Float32Array(memory.buffer).fill(0.001);
const read = new WebAssembly.Instance(new WebAssembly.Module(readFileSync('out/probe.wasm')), { env: { memory } }).exports;
const pB = 65536, pW = pB + big, pX = pW + w, pY = pX + 65536;
const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
for (const [R, CB] of process.argv.slice(2).map((s) => s.split('x').map(Number))) {
  const name = `blk_r${R}_c${CB}`;
  writeFileSync(`out/${name}.ts`, variant(R, CB));
  const { error, stderr } = await asc.main([`out/${name}.ts`, '--outFile', `out/${name}.wasm`, '-O3', '--noAssert', '--runtime', 'stub', '--enable', 'simd', '--enable', 'threads', '--importMemory', '--sharedMemory', '--initialMemory', '16', '--maximumMemory', '65536', '--use', 'abort='], {});
  if (error) { console.error(stderr.toString()); process.exit(1); }
  const ex = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(`out/${name}.wasm`)), { env: { memory } }).exports;
  const t = performance.now(); while (performance.now() - t < 40) ex.gemv(pW, cols, pX, pY, 0, 8);
  const g = [], c = [];
  for (let r = 0; r < 7; r++) {
    let t0 = performance.now(); read.readSum(pB, big / 4); c.push(big / (performance.now() - t0) / 1e6);
    t0 = performance.now(); ex.gemv(pW, cols, pX, pY, 0, rows); g.push(w / (performance.now() - t0) / 1e6);
  }
  console.log(`${name}: ${med(g).toFixed(1)} GB/s  read ${med(c).toFixed(1)}  ${(100 * med(g) / med(c)).toFixed(0)}%`);
}
