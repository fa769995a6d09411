// Probe: why matrix-vector streams slower than a plain read. Variants over one 176 MiB stream.
import asc from 'assemblyscript/asc';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
mkdirSync('out', { recursive: true });
const src = `
export function readSum(p: usize, n: i32): f32 { let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let i = 0; i < n; i += 16) { a0 = f32x4.add(a0, v128.load(p)); a1 = f32x4.add(a1, v128.load(p, 16)); a2 = f32x4.add(a2, v128.load(p, 32)); a3 = f32x4.add(a3, v128.load(p, 48)); p += 64; }
  const s = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)); return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 3); }
export function mulConst(p: usize, n: i32, px: usize): f32 { let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  const x = v128.load(px);
  for (let i = 0; i < n; i += 16) { a0 = f32x4.add(a0, f32x4.mul(x, v128.load(p))); a1 = f32x4.add(a1, f32x4.mul(x, v128.load(p, 16))); a2 = f32x4.add(a2, f32x4.mul(x, v128.load(p, 32))); a3 = f32x4.add(a3, f32x4.mul(x, v128.load(p, 48))); p += 64; }
  const s = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)); return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 3); }
export function mulX(p: usize, n: i32, px: usize, xn: i32): f32 { let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  const xm: usize = (<usize>xn << 2) - 1; let o: usize = 0;
  for (let i = 0; i < n; i += 16) { const q = px + (o & xm);
    a0 = f32x4.add(a0, f32x4.mul(v128.load(q), v128.load(p))); a1 = f32x4.add(a1, f32x4.mul(v128.load(q, 16), v128.load(p, 16))); a2 = f32x4.add(a2, f32x4.mul(v128.load(q, 32), v128.load(p, 32))); a3 = f32x4.add(a3, f32x4.mul(v128.load(q, 48), v128.load(p, 48))); p += 64; o += 64; }
  const s = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)); return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 3); }
`;
writeFileSync('out/probe.ts', src);
const { error, stderr } = await asc.main(['out/probe.ts', '--outFile', 'out/probe.wasm', '-O3', '--noAssert', '--runtime', 'stub', '--enable', 'simd', '--enable', 'threads', '--importMemory', '--sharedMemory', '--initialMemory', '16', '--maximumMemory', '65536', '--use', 'abort='], {});
if (error) { console.error(stderr.toString()); process.exit(1); }
const big = 512 << 20, w = 176 << 20;
const memory = new WebAssembly.Memory({ initial: (big + w + (2 << 20)) >> 16, maximum: 65536, shared: true });
const ex = new WebAssembly.Instance(new WebAssembly.Module(readFileSync('out/probe.wasm')), { env: { memory } }).exports;
new Float32Array(memory.buffer).fill(0.001);
const pB = 65536, pW = pB + big, pX = pW + w;
const t = performance.now(); while (performance.now() - t < 50) { ex.readSum(pW, 4096); ex.mulConst(pW, 4096, pX); ex.mulX(pW, 4096, pX, 4096); }
const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
const res = { readSum: [], mulConst: [], mulX4096: [], mulX64: [], mulX16384: [] };
for (let r = 0; r < 7; r++) {
  const run = (name, f) => { ex.readSum(pB, big / 4); const t0 = performance.now(); f(); res[name].push(w / (performance.now() - t0) / 1e6); };
  run('readSum', () => ex.readSum(pW, w / 4));
  run('mulConst', () => ex.mulConst(pW, w / 4, pX));
  run('mulX4096', () => ex.mulX(pW, w / 4, pX, 4096));
  run('mulX64', () => ex.mulX(pW, w / 4, pX, 64));
  run('mulX16384', () => ex.mulX(pW, w / 4, pX, 16384));
}
for (const [k, v] of Object.entries(res)) console.log(k, med(v).toFixed(1), 'GB/s');
