// Lab 6: dense gemv, R rows in flight x V vectors per row per step x U steps per loop
// iteration (one accumulator per row and vector), with per-row pointers bumped each
// iteration (variant "p") or one offset added to each row base ("o"). 1 thread,
// W [11008, 4096] cold, interleaved with the read ceiling (read8: 8 accumulators).
// Usage (repo root): node dev/gemv/06_rows_unroll_lab.mjs [reps] R.V.U.mode ...
//   mode n: x is one constant vector (no x stream: is the x stream the cost?)
//   e.g. 4.2.1.o 8.1.1.o 8.1.2.o 8.1.2.p 12.1.1.o
import asc from 'assemblyscript/asc';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'out');
mkdirSync(out, { recursive: true });

function variant(R, V, U, mode) {
  const name = `g${R}_${V}_${U}${mode}`;
  const L = [`export function ${name}(pW: usize, cols: i32, pX: usize, pY: usize, r0: i32, r1: i32): void {`,
    `  const rb: usize = <usize>cols << 2;`,
    `  for (let r = r0; r + ${R} <= r1; r += ${R}) {`,
    `    const base = pW + <usize>r * rb;`];
  for (let i = 0; i < R; i++) L.push(`    let w${i}: usize = base + ${i} * rb;`);
  for (let i = 0; i < R; i++) for (let v = 0; v < V; v++) L.push(`    let a${i}_${v} = f32x4.splat(0);`);
  L.push(`    let px = pX; const xc = v128.load(pX);`);
  L.push(`    for (let o: usize = 0; o < rb; o += ${16 * V * U}) {`);
  for (let u = 0; u < U; u++) {
    for (let v = 0; v < V; v++) L.push(mode === 'n' ? `      const x${u}_${v} = xc;` : `      const x${u}_${v} = v128.load(${mode === 'p' ? 'px' : 'pX + o'}, ${16 * (u * V + v)});`);
    for (let i = 0; i < R; i++) for (let v = 0; v < V; v++) {
      L.push(`      a${i}_${v} = f32x4.add(a${i}_${v}, f32x4.mul(v128.load(${mode === 'p' ? `w${i}` : `w${i} + o`}, ${16 * (u * V + v)}), x${u}_${v}));`);
    }
  }
  if (mode === 'p') { for (let i = 0; i < R; i++) L.push(`      w${i} += ${16 * V * U};`); L.push(`      px += ${16 * V * U};`); }
  L.push(`    }`);
  for (let i = 0; i < R; i++) {
    let e = `a${i}_0`; for (let v = 1; v < V; v++) e = `f32x4.add(${e}, a${i}_${v})`;
    L.push(`    { const s = ${e}; store<f32>(pY + (<usize>(r + ${i}) << 2), (f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3))); }`);
  }
  L.push(`  }`, `}`);
  return [name, L.join('\n')];
}

const reps = Number(process.argv[2] ?? 5);
const specs = process.argv.slice(3).length ? process.argv.slice(3) : ['4.2.1.o', '8.1.1.o', '8.1.2.o', '8.1.2.p', '8.1.4.p', '12.1.1.o', '12.1.2.p', '6.2.1.p'];
const vs = specs.map((s) => { const [R, V, U, m] = s.split('.'); return variant(Number(R), Number(V), Number(U), m); });
const src = join(out, 'rows_unroll_lab.ts');
writeFileSync(src, `export function read8(p: usize, n: i32): f32 { let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
  for (let i = 0; i < n; i += 64) {
  a0 = f32x4.add(a0, v128.load(p)); a1 = f32x4.add(a1, v128.load(p, 16)); a2 = f32x4.add(a2, v128.load(p, 32)); a3 = f32x4.add(a3, v128.load(p, 48));
  a4 = f32x4.add(a4, v128.load(p, 64)); a5 = f32x4.add(a5, v128.load(p, 80)); a6 = f32x4.add(a6, v128.load(p, 96)); a7 = f32x4.add(a7, v128.load(p, 112));
  a0 = f32x4.add(a0, v128.load(p, 128)); a1 = f32x4.add(a1, v128.load(p, 144)); a2 = f32x4.add(a2, v128.load(p, 160)); a3 = f32x4.add(a3, v128.load(p, 176));
  a4 = f32x4.add(a4, v128.load(p, 192)); a5 = f32x4.add(a5, v128.load(p, 208)); a6 = f32x4.add(a6, v128.load(p, 224)); a7 = f32x4.add(a7, v128.load(p, 240)); p += 256; }
  const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3); }
` + vs.map((v) => v[1]).join('\n'));
const wasmFile = join(out, 'rows_unroll_lab.wasm');
const { error, stderr } = await asc.main([src, '--outFile', wasmFile, '-O3', '--noAssert', '--runtime', 'stub', '--enable', 'simd',
  '--enable', 'threads', '--importMemory', '--sharedMemory', '--initialMemory', '16', '--maximumMemory', '65536', '--use', 'abort='], {});
if (error) { console.error(stderr.toString()); process.exit(1); }

const rows = 11008 - 11008 % 24, cols = 4096, big = 512 << 20, wBytes = rows * cols * 4;
const memory = new WebAssembly.Memory({ initial: (big + wBytes + (4 << 20)) >> 16, maximum: 65536, shared: true });
const ex = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(wasmFile)), { env: { memory } }).exports;
const pBig = 65536, pW = pBig + big, pX = pW + wBytes + 65536, pY = pX + 65536;
const f = new Float32Array(memory.buffer);
for (let i = 0; i < f.length; i++) f[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
const names = vs.map((v) => v[0]);
const t = performance.now();
while (performance.now() - t < 300) { for (const n of names) ex[n](pW, cols, pX, pY, 0, 48); ex.read8(pW, 4096); }
let ref;
for (const n of names) {
  ex[n](pW, cols, pX, pY, 0, 96);
  const got = new Float32Array(memory.buffer, pY, 96).slice();
  if (!n.endsWith('n')) ref ??= got;
  for (let i = 0; i < 96; i++) if (!n.endsWith('n') && Math.abs(got[i] - ref[i]) > 1e-2 * (1 + Math.abs(ref[i]))) throw new Error(`${n} row ${i}: ${got[i]} vs ${ref[i]}`);
}
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
const res = Object.fromEntries([...names, 'read8'].map((n) => [n, []]));
for (let r = 0; r < reps; r++) {
  for (const n of [...names, 'read8']) {
    ex.read8(pBig, big / 4); // evict W
    const t0 = performance.now();
    if (n === 'read8') ex.read8(pW, wBytes / 4); else ex[n](pW, cols, pX, pY, 0, rows);
    res[n].push(wBytes / (performance.now() - t0) / 1e6);
  }
}
const ceil = med(res.read8);
for (const [n, v] of Object.entries(res)) console.log(`${n.padEnd(10)} ${med(v).toFixed(1).padStart(5)} GB/s  ${(100 * med(v) / ceil).toFixed(0)}%  [${v.map((x) => x.toFixed(0)).join(' ')}]`);
