// Compiles the AssemblyScript kernels (src/backends/cpu/assembly/kernels.ts) into
// build/wasm/kernels.wasm: SIMD + threads, memory imported from env.memory as shared
// memory (maximum 65536 pages = 4 GiB), -O3, stub runtime (the kernels never allocate:
// they only use raw pointers, load/store and v128). Runs offline: asc comes from
// node_modules (devDependency assemblyscript).
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'src/backends/cpu/assembly/kernels.ts');
const outFile = join(root, 'build/wasm/kernels.wasm');
mkdirSync(dirname(outFile), { recursive: true });

const args = [
  entry,
  '--outFile', outFile,
  '--textFile', outFile.replace(/\.wasm$/, '.wat'),
  '-O3', '--noAssert',
  '--runtime', 'stub',
  '--enable', 'simd',
  '--enable', 'threads',
  '--importMemory', '--sharedMemory',
  '--initialMemory', '1', '--maximumMemory', '65536',
  '--use', 'abort=',
];

const { error, stderr } = await asc.main(args, {});
if (error) {
  console.error(stderr.toString());
  console.error(`build-wasm: ${error.message}`);
  process.exit(1);
}
console.log(`build-wasm: wrote ${outFile}`);
