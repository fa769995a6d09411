// Kernel lab: matrix-vector variants, R rows in flight x V vectors (4 floats) per row per
// iteration, one accumulator per row and vector; timed on 1 thread over W [11008, 4096]
// (176 MiB, cold: a 512 MiB read precedes every call) against that read.
// Usage: node dev/gemv/gen.mjs
import asc from 'assemblyscript/asc';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'out');
mkdirSync(out, { recursive: true });

function variant(R, V, P = 0) {
  const L = [];
  L.push(`export function readSum(p: usize, n: i32): f32 { let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let i = 0; i < n; i += 32) { a0 = f32x4.add(a0, v128.load(p)); a1 = f32x4.add(a1, v128.load(p, 16)); a2 = f32x4.add(a2, v128.load(p, 32)); a3 = f32x4.add(a3, v128.load(p, 48));
  a0 = f32x4.add(a0, v128.load(p, 64)); a1 = f32x4.add(a1, v128.load(p, 80)); a2 = f32x4.add(a2, v128.load(p, 96)); a3 = f32x4.add(a3, v128.load(p, 112)); p += 128; }
  const s = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)); return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 3); }`);
  L.push(`export function gemv(pW: usize, cols: i32, pX: usize, pY: usize, r0: i32, r1: i32): void {`);
  L.push(`  const rb: usize = <usize>cols << 2;`);
  L.push(`  for (let r = r0; r + ${R} <= r1; r += ${R}) {`);
  L.push(`    const w0 = pW + <usize>r * rb;`);
  for (let i = 0; i < R; i++) for (let v = 0; v < V; v++) L.push(`    let a${i}_${v} = f32x4.splat(0);`);
  if (P) L.push(`    let tch: u32 = 0; const lim: usize = rb - ${P};`);
  L.push(`    for (let o: usize = 0; o < rb; o += ${16 * V}) {`);
  if (P) for (let i = 0; i < R; i++) L.push(`      tch ^= load<u32>(w0 + ${i} * rb + min<usize>(o + ${P}, lim));`);
  for (let v = 0; v < V; v++) L.push(`      const x${v} = v128.load(pX + o, ${16 * v});`);
  for (let i = 0; i < R; i++) for (let v = 0; v < V; v++) L.push(`      a${i}_${v} = f32x4.add(a${i}_${v}, f32x4.mul(v128.load(w0 + ${i} * rb + o, ${16 * v}), x${v}));`);
  L.push(`    }`);
  for (let i = 0; i < R; i++) {
    let e = `a${i}_0`; for (let v = 1; v < V; v++) e = `f32x4.add(${e}, a${i}_${v})`;
    L.push(`    { const s = ${e}; store<f32>(pY + (<usize>(r + ${i}) << 2), f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3)); }`);
  }
  if (P) L.push(`    store<u32>(pY, tch ^ load<u32>(pY));`);
  L.push(`  }`);
  L.push(`}`);
  return L.join('\n');
}

const rows = 11008, cols = 4096;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };
const variants = process.argv.slice(2).length ? process.argv.slice(2).map((s) => s.split(/[xp]/).map(Number)) : [[1, 4], [2, 2], [2, 4], [4, 1], [4, 2], [4, 3], [6, 2], [8, 1]];
for (const [R, V, P] of variants) {
  const name = `gemv_r${R}_v${V}_p${P ?? 0}`;
  const src = join(out, `${name}.ts`);
  writeFileSync(src, variant(R, V, P));
  const wasmFile = join(out, `${name}.wasm`);
  const { error, stderr } = await asc.main([src, '--outFile', wasmFile, '-O3', '--noAssert', '--runtime', 'stub', '--enable', 'simd',
    '--enable', 'threads', '--importMemory', '--sharedMemory', '--initialMemory', '16', '--maximumMemory', '65536', '--use', 'abort='], {});
  if (error) { console.error(stderr.toString()); process.exit(1); }
  const bigBytes = 512 << 20, wBytes = rows * cols * 4;
  const memory = new WebAssembly.Memory({ initial: (bigBytes + wBytes + (1 << 20)) >> 16, maximum: 65536, shared: true });
  const ex = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(wasmFile)), { env: { memory } }).exports;
  const pBig = 65536, pW = pBig + bigBytes, pX = pW + wBytes, pY = pX + cols * 4;
  new Float32Array(memory.buffer).fill(0.001);
  for (let i = 0; i < 30; i++) { ex.gemv(pW, cols, pX, pY, 0, 8); ex.readSum(pW, 4096); }
  const t = performance.now(); while (performance.now() - t < 20) { ex.gemv(pW, cols, pX, pY, 0, 8); ex.readSum(pW, 4096); }
  const g = [], c = [];
  for (let r = 0; r < 7; r++) {
    let t0 = performance.now(); ex.readSum(pBig, bigBytes / 4); c.push(bigBytes / (performance.now() - t0) / 1e6);
    t0 = performance.now(); ex.gemv(pW, cols, pX, pY, 0, rows - rows % R); g.push(wBytes / (performance.now() - t0) / 1e6);
  }
  console.log(`${name}: ${median(g).toFixed(1)} GB/s, read ${median(c).toFixed(1)} GB/s, ${(100 * median(g) / median(c)).toFixed(0)}%`);
}
