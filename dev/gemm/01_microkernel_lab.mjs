// Kernel lab (llm.c style): generates AssemblyScript micro-kernel variants MRx8 with
// k-unroll U, compiles each with the same asc flags as scripts/build-wasm.mjs, and
// times the micro-kernel alone on L1-resident packed panels (its ceiling).
// Usage: node dev/gemm/gen.mjs   (after npm install)
import asc from 'assemblyscript/asc';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'out');
mkdirSync(out, { recursive: true });

function kernel(MR, U, splatMode) {
  const L = [];
  L.push(`export function bench(kc: i32, reps: i32, pa0: usize, pb0: usize, pc: usize): void {`);
  L.push(`  for (let rep = 0; rep < reps; rep++) {`);
  L.push(`  let pa = pa0, pb = pb0;`);
  for (let r = 0; r < MR; r++) L.push(`  let c${r}0 = f32x4.splat(0), c${r}1 = f32x4.splat(0);`);
  L.push(`  for (let k = 0; k < kc; k += ${U}) {`);
  for (let u = 0; u < U; u++) {
    L.push(`    { const b0 = v128.load(pb, ${u * 32}); const b1 = v128.load(pb, ${u * 32 + 16});`);
    for (let r = 0; r < MR; r++) {
      const a = splatMode === 'load' ? `v128.load32_splat(pa, ${(u * MR + r) * 4})` : `f32x4.splat(load<f32>(pa, ${(u * MR + r) * 4}))`;
      L.push(`      { const a = ${a}; c${r}0 = f32x4.add(c${r}0, f32x4.mul(a, b0)); c${r}1 = f32x4.add(c${r}1, f32x4.mul(a, b1)); }`);
    }
    L.push(`    }`);
  }
  L.push(`    pa += ${MR * 4 * U}; pb += ${32 * U};`);
  L.push(`  }`);
  for (let r = 0; r < MR; r++) L.push(`  v128.store(pc, f32x4.add(v128.load(pc, ${r * 32}), c${r}0), ${r * 32}); v128.store(pc, f32x4.add(v128.load(pc, ${r * 32 + 16}), c${r}1), ${r * 32 + 16});`);
  L.push(`  }`);
  L.push(`}`);
  return L.join('\n');
}

const variants = [];
for (const MR of [4, 5, 6]) for (const U of [1, 2, 4]) for (const s of ['load', 'reg']) variants.push({ MR, U, s });
const results = [];
for (const v of variants) {
  const name = `mk${v.MR}x8_u${v.U}_${v.s}`;
  const src = join(out, `${name}.ts`);
  writeFileSync(src, kernel(v.MR, v.U, v.s));
  const wasmFile = join(out, `${name}.wasm`);
  const { error, stderr } = await asc.main([src, '--outFile', wasmFile, '-O3', '--noAssert', '--runtime', 'stub', '--enable', 'simd',
    '--enable', 'threads', '--importMemory', '--sharedMemory', '--initialMemory', '16', '--maximumMemory', '65536', '--use', 'abort='], {});
  if (error) { console.error(stderr.toString()); process.exit(1); }
  const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true });
  const inst = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(wasmFile)), { env: { memory } });
  const f = new Float32Array(memory.buffer); for (let i = 0; i < f.length; i++) f[i] = (i % 7) * 0.001;
  const kc = 256, pa = 65536, pb = 65536 * 3, pc = 65536 * 6;
  const bench = inst.exports.bench;
  for (let i = 0; i < 50; i++) bench(kc, 10, pa, pb, pc); // tier up
  const t0 = Date.now(); while (Date.now() - t0 < 30) bench(kc, 10, pa, pb, pc);
  const times = [];
  for (let r = 0; r < 7; r++) {
    const reps = 4000;
    const t = performance.now(); bench(kc, reps, pa, pb, pc); const dt = performance.now() - t;
    times.push(2 * v.MR * 8 * kc * reps / dt / 1e6);
  }
  times.sort((a, b) => a - b);
  results.push([name, times[3]]);
  console.log(name, times[3].toFixed(1), 'GFLOP/s (median of 7)');
}
