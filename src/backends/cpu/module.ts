// Loads a compiled kernels module (from src/backends/cpu/assembly/kernels.ts) once per
// process per build.
//
// What it is: the one place that reads the .wasm bytes and compiles them; each compiled
// module is shared by every CpuKernels instance that uses its build, and by their
// workers (structured clone). `simd` picks the build:
// - 'plain' (build/wasm/kernels.wasm): 128-bit SIMD, every multiply-accumulate is an
//   f32x4.mul followed by an f32x4.add. Runs wherever WebAssembly SIMD does.
// - 'relaxed' (build/wasm/kernels-relaxed.wasm): the same source built with relaxed
//   SIMD, so each multiply-accumulate is one f32x4.relaxed_madd, which V8 compiles to
//   vfmadd on x64 with FMA3. Why: on one thread the kernels are instruction-bound
//   (GEMM's micro-tile, gemmSmallM, attention; the matrix-vector loops partly), and the
//   fused form halves the arithmetic instructions and frees the temporary register each
//   product needed. Measured gains are in docs/cpu-backend.md ("Fused multiply-add").
// - 'auto': 'relaxed' when this runtime accepts it, else 'plain'.
// V8 flag caveat: Node 22+ and Chrome 114+ accept relaxed SIMD by default; Node 20
// (V8 11.3) only behind --experimental-wasm-relaxed-simd. When validation fails in Node
// we set that flag once at run time (v8.setFlagsFromString, before compiling: it applies
// to modules compiled afterwards) and validate again; the flag changes nothing else.
// relaxed_madd's rounding is implementation-defined (fused, or rounded twice), so the
// two builds may differ in the last bits; both stay within the float32 error bounds the
// tests check (test/kernels-simd.test.ts).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { wasm, type WasmModule } from './wasm-api.js';

/** Which build of the kernels: 'auto' picks the fastest one this runtime accepts. */
export type SimdFlavor = 'auto' | 'plain' | 'relaxed';

export interface KernelsModule {
  module: WasmModule;
  /** True when the kernels fuse multiply-add (relaxed SIMD's f32x4.relaxed_madd). */
  fma: boolean;
}

// wasm-api.ts declares only what the kernels use; validation is needed here alone.
const wasmValidate = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly;
const validate = (bytes: Uint8Array): boolean => wasmValidate.validate(bytes);

let plain: KernelsModule | undefined;
let relaxed: KernelsModule | undefined;
// Why the relaxed build cannot run here, once known (so 'auto' does not retry it).
let relaxedError: Error | undefined;
let flagTried = false;

// build/src/backends/cpu/module.js -> build/wasm/<file>
function readWasm(file: string): Uint8Array {
  return readFileSync(new URL(`../../../wasm/${file}`, import.meta.url));
}

function loadPlain(): KernelsModule {
  plain ??= { module: new wasm.Module(readWasm('kernels.wasm')), fma: false };
  return plain;
}

// Node 20 needs the V8 flag; set at most once per process (a second call is a no-op anyway).
function enableRelaxedFlag(): boolean {
  if (flagTried || typeof process === 'undefined' || process.versions?.node === undefined) return false;
  flagTried = true;
  const v8 = createRequire(import.meta.url)('node:v8') as { setFlagsFromString(flags: string): void };
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  return true;
}

function loadRelaxed(): KernelsModule {
  if (relaxed !== undefined) return relaxed;
  if (relaxedError !== undefined) throw relaxedError;
  const bytes = readWasm('kernels-relaxed.wasm');
  if (!validate(bytes) && !(enableRelaxedFlag() && validate(bytes))) {
    relaxedError = new Error(
      "cpu kernels: the 'relaxed' SIMD build (fused multiply-add) is not supported by this runtime " +
      `(${typeof process !== 'undefined' && process.versions?.node !== undefined ? `Node ${process.versions.node}, even with --experimental-wasm-relaxed-simd` : 'WebAssembly relaxed SIMD is off'}); ` +
      "use simd: 'plain' or SPARSELM_SIMD=plain");
    throw relaxedError;
  }
  relaxed = { module: new wasm.Module(bytes), fma: true };
  return relaxed;
}

/** The compiled kernels module for `simd` (throws a clear error when that build cannot run here). */
export function kernelsModule(simd: SimdFlavor = 'auto'): KernelsModule {
  switch (simd) {
    case 'plain': return loadPlain();
    case 'relaxed': return loadRelaxed();
    case 'auto':
      try {
        return loadRelaxed();
      } catch {
        return loadPlain();
      }
    default: throw new RangeError(`cpu kernels: unknown simd build '${String(simd)}' (auto, plain or relaxed)`);
  }
}
