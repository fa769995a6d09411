// Compiles the AssemblyScript kernels (src/backends/cpu/assembly/kernels.ts) twice:
// - build/wasm/kernels.wasm: SIMD + threads (runs everywhere WebAssembly SIMD does);
// - build/wasm/kernels-relaxed.wasm: the same plus relaxed SIMD, so the kernels' madd
//   helper is one fused f32x4.relaxed_madd (ASC_FEATURE_RELAXED_SIMD is true there);
//   src/backends/cpu/module.ts loads it when the runtime accepts it.
// Both: memory imported from env.memory as shared memory (maximum 65536 pages =
// 4 GiB), -O3, stub runtime (the kernels never allocate: they only use raw pointers,
// load/store and v128), with a .wat beside each .wasm. Runs offline: asc comes from
// node_modules (devDependency assemblyscript).
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'src/backends/cpu/assembly/kernels.ts');
const outDir = join(root, 'build/wasm');
mkdirSync(outDir, { recursive: true });

const builds = [
  { file: 'kernels.wasm', features: [] },
  { file: 'kernels-relaxed.wasm', features: ['--enable', 'relaxed-simd'] },
];

for (const { file, features } of builds) {
  const outFile = join(outDir, file);
  const args = [
    entry,
    '--outFile', outFile,
    '--textFile', outFile.replace(/\.wasm$/, '.wat'),
    '-O3', '--noAssert',
    '--runtime', 'stub',
    '--enable', 'simd',
    '--enable', 'threads',
    ...features,
    '--importMemory', '--sharedMemory',
    '--initialMemory', '1', '--maximumMemory', '65536',
    '--use', 'abort=',
  ];
  const { error, stderr } = await asc.main(args, {});
  if (error) {
    console.error(stderr.toString());
    console.error(`build-wasm: ${file}: ${error.message}`);
    process.exit(1);
  }
  console.log(`build-wasm: wrote ${outFile}`);
}
