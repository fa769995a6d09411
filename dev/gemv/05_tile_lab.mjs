// Lab 5: dense gemv variants against the read ceiling, interleaved (ceiling, kernel,
// ceiling, kernel, ...) on 1 thread, W [11008, 4096] cold (a 512 MiB read precedes
// every call). Variants:
//   base      4 rows x 2 vectors, whole rows (the promoted kernel before this lab)
//   r8v1      8 rows x 1 vector
//   tG_T      rows in groups of G, columns in tiles of T floats: for each tile, every
//             4-row quad of the group dots its T-float segment with the x tile (which
//             stays in L1); partial sums are added into y.
// Ceilings: read4 (4 accumulators, 128 B/iteration, as in kernels.ts), read8 (8, 256 B).
// xoff: byte offset of x mod 4096 (x lines vs weight lines in the same L1 sets or not).
// Usage (from the repo root): node dev/gemv/05_tile_lab.mjs [reps] [xoff]
import asc from 'assemblyscript/asc';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'out');
mkdirSync(out, { recursive: true });

const quad = (pre, xo) => `
    let a0 = f32x4.splat(0), b0 = f32x4.splat(0), a1 = f32x4.splat(0), b1 = f32x4.splat(0);
    let a2 = f32x4.splat(0), b2 = f32x4.splat(0), a3 = f32x4.splat(0), b3 = f32x4.splat(0);
    for (let o: usize = ${pre}; o < oe; o += 32) {
      const x0 = v128.load(pX + o${xo}); const x1 = v128.load(pX + o${xo}, 16);
      a0 = f32x4.add(a0, f32x4.mul(v128.load(w0 + o), x0)); b0 = f32x4.add(b0, f32x4.mul(v128.load(w0 + o, 16), x1));
      a1 = f32x4.add(a1, f32x4.mul(v128.load(w1 + o), x0)); b1 = f32x4.add(b1, f32x4.mul(v128.load(w1 + o, 16), x1));
      a2 = f32x4.add(a2, f32x4.mul(v128.load(w2 + o), x0)); b2 = f32x4.add(b2, f32x4.mul(v128.load(w2 + o, 16), x1));
      a3 = f32x4.add(a3, f32x4.mul(v128.load(w3 + o), x0)); b3 = f32x4.add(b3, f32x4.mul(v128.load(w3 + o, 16), x1));
    }`;

function source(tiles) {
  const L = [`
@inline function hsum(v: v128): f32 { return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3)); }
export function read4(p: usize, n: i32): f32 { let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let i = 0; i < n; i += 32) { a0 = f32x4.add(a0, v128.load(p)); a1 = f32x4.add(a1, v128.load(p, 16)); a2 = f32x4.add(a2, v128.load(p, 32)); a3 = f32x4.add(a3, v128.load(p, 48));
  a0 = f32x4.add(a0, v128.load(p, 64)); a1 = f32x4.add(a1, v128.load(p, 80)); a2 = f32x4.add(a2, v128.load(p, 96)); a3 = f32x4.add(a3, v128.load(p, 112)); p += 128; }
  return hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3))); }
export function read8(p: usize, n: i32): f32 { let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
  for (let i = 0; i < n; i += 64) {
  a0 = f32x4.add(a0, v128.load(p)); a1 = f32x4.add(a1, v128.load(p, 16)); a2 = f32x4.add(a2, v128.load(p, 32)); a3 = f32x4.add(a3, v128.load(p, 48));
  a4 = f32x4.add(a4, v128.load(p, 64)); a5 = f32x4.add(a5, v128.load(p, 80)); a6 = f32x4.add(a6, v128.load(p, 96)); a7 = f32x4.add(a7, v128.load(p, 112));
  a0 = f32x4.add(a0, v128.load(p, 128)); a1 = f32x4.add(a1, v128.load(p, 144)); a2 = f32x4.add(a2, v128.load(p, 160)); a3 = f32x4.add(a3, v128.load(p, 176));
  a4 = f32x4.add(a4, v128.load(p, 192)); a5 = f32x4.add(a5, v128.load(p, 208)); a6 = f32x4.add(a6, v128.load(p, 224)); a7 = f32x4.add(a7, v128.load(p, 240)); p += 256; }
  return hsum(f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)))); }
export function base(pW: usize, cols: i32, pX: usize, pY: usize, r0: i32, r1: i32): void {
  const rb: usize = <usize>cols << 2; const oe = rb;
  for (let r = r0; r + 4 <= r1; r += 4) {
    const w0 = pW + <usize>r * rb, w1 = w0 + rb, w2 = w1 + rb, w3 = w2 + rb;${quad('0', '')}
    const q = pY + (<usize>r << 2);
    store<f32>(q, hsum(f32x4.add(a0, b0))); store<f32>(q, hsum(f32x4.add(a1, b1)), 4); store<f32>(q, hsum(f32x4.add(a2, b2)), 8); store<f32>(q, hsum(f32x4.add(a3, b3)), 12);
  }
}
export function r8v1(pW: usize, cols: i32, pX: usize, pY: usize, r0: i32, r1: i32): void {
  const rb: usize = <usize>cols << 2;
  for (let r = r0; r + 8 <= r1; r += 8) {
    const w0 = pW + <usize>r * rb;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0), a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
    for (let o: usize = 0; o < rb; o += 16) {
      const x = v128.load(pX + o); const w = w0 + o;
      a0 = f32x4.add(a0, f32x4.mul(v128.load(w), x)); a1 = f32x4.add(a1, f32x4.mul(v128.load(w + rb), x));
      a2 = f32x4.add(a2, f32x4.mul(v128.load(w + 2 * rb), x)); a3 = f32x4.add(a3, f32x4.mul(v128.load(w + 3 * rb), x));
      a4 = f32x4.add(a4, f32x4.mul(v128.load(w + 4 * rb), x)); a5 = f32x4.add(a5, f32x4.mul(v128.load(w + 5 * rb), x));
      a6 = f32x4.add(a6, f32x4.mul(v128.load(w + 6 * rb), x)); a7 = f32x4.add(a7, f32x4.mul(v128.load(w + 7 * rb), x));
    }
    const q = pY + (<usize>r << 2);
    store<f32>(q, hsum(a0)); store<f32>(q, hsum(a1), 4); store<f32>(q, hsum(a2), 8); store<f32>(q, hsum(a3), 12);
    store<f32>(q, hsum(a4), 16); store<f32>(q, hsum(a5), 20); store<f32>(q, hsum(a6), 24); store<f32>(q, hsum(a7), 28);
  }
}`];
  for (const [G, T] of tiles) {
    L.push(`export function t${G}_${T}(pW: usize, cols: i32, pX: usize, pY: usize, r0: i32, r1: i32): void {
  const rb: usize = <usize>cols << 2;
  for (let r = r0; r < r1; r++) store<f32>(pY + (<usize>r << 2), 0);
  for (let g = r0; g + ${G} <= r1; g += ${G}) {
    for (let c0: usize = 0; c0 < rb; c0 += ${T * 4}) {
      const oe: usize = min<usize>(rb, c0 + ${T * 4});
      for (let r = g; r < g + ${G}; r += 4) {
        const w0 = pW + <usize>r * rb, w1 = w0 + rb, w2 = w1 + rb, w3 = w2 + rb;${quad('c0', '')}
        const q = pY + (<usize>r << 2);
        store<f32>(q, load<f32>(q) + hsum(f32x4.add(a0, b0))); store<f32>(q, load<f32>(q, 4) + hsum(f32x4.add(a1, b1)), 4);
        store<f32>(q, load<f32>(q, 8) + hsum(f32x4.add(a2, b2)), 8); store<f32>(q, load<f32>(q, 12) + hsum(f32x4.add(a3, b3)), 12);
      }
    }
  }
}`);
  }
  return L.join('\n');
}

const reps = Number(process.argv[2] ?? 7);
const xoff = Number(process.argv[3] ?? 0);
const tiles = (process.env.TILES ?? '8x1024,16x1024,32x1024,16x512,64x512,16x2048').split(',').map((s) => s.split('x').map(Number));
const src = join(out, 'tile_lab.ts');
writeFileSync(src, source(tiles));
const wasmFile = join(out, 'tile_lab.wasm');
const { error, stderr } = await asc.main([src, '--outFile', wasmFile, '-O3', '--noAssert', '--runtime', 'stub', '--enable', 'simd',
  '--enable', 'threads', '--importMemory', '--sharedMemory', '--initialMemory', '16', '--maximumMemory', '65536', '--use', 'abort='], {});
if (error) { console.error(stderr.toString()); process.exit(1); }

const rows = 11008, cols = 4096, big = 512 << 20, wBytes = rows * cols * 4;
const memory = new WebAssembly.Memory({ initial: (big + wBytes + (4 << 20)) >> 16, maximum: 65536, shared: true });
const ex = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(wasmFile)), { env: { memory } }).exports;
const pBig = 65536, pW = pBig + big, pX = pW + wBytes + 65536 + xoff, pY = pX + 65536;
const f = new Float32Array(memory.buffer);
for (let i = 0; i < f.length; i++) f[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
const names = ['base', 'r8v1', ...tiles.map(([G, T]) => `t${G}_${T}`)];
// Warm up (TurboFan) on small data, then check every variant against base.
const t = performance.now();
while (performance.now() - t < 300) { for (const n of names) ex[n](pW, cols, pX, pY, 0, 64); ex.read4(pW, 4096); ex.read8(pW, 4096); }
ex.base(pW, cols, pX, pY, 0, 128);
const ref = new Float32Array(memory.buffer, pY, 128).slice();
for (const n of names) {
  ex[n](pW, cols, pX, pY, 0, 128);
  const got = new Float32Array(memory.buffer, pY, 128);
  for (let i = 0; i < 128; i++) if (Math.abs(got[i] - ref[i]) > 1e-2 * (1 + Math.abs(ref[i]))) throw new Error(`${n} row ${i}: ${got[i]} vs ${ref[i]}`);
}
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
const res = Object.fromEntries([...names, 'read4', 'read8'].map((n) => [n, []]));
for (let r = 0; r < reps; r++) {
  for (const n of [...names, 'read4', 'read8']) {
    ex.read4(pBig, big / 4); // evict W
    const t0 = performance.now();
    if (n.startsWith('read')) ex[n](pW, wBytes / 4); else ex[n](pW, cols, pX, pY, 0, rows);
    res[n].push(wBytes / (performance.now() - t0) / 1e6);
  }
}
const ceil = Math.max(med(res.read4), med(res.read8));
for (const [n, v] of Object.entries(res)) console.log(`${n.padEnd(10)} ${med(v).toFixed(1).padStart(5)} GB/s  ${(100 * med(v) / ceil).toFixed(0)}%  [${v.map((x) => x.toFixed(0)).join(' ')}]`);
