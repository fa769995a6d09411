// Loads the compiled kernels module (build/wasm/kernels.wasm, from
// src/backends/cpu/assembly/kernels.ts) once per process.
//
// What it is: the one place that reads the .wasm bytes and compiles them; the compiled
// module is shared by every CpuKernels instance and its workers (structured clone).
// `simd` picks the build; today there is one ('plain': 128-bit SIMD, separate multiply
// and add).
import { readFileSync } from 'node:fs';
import { wasm, type WasmModule } from './wasm-api.js';

/** Which build of the kernels: 'auto' picks the fastest one this runtime accepts. */
export type SimdFlavor = 'auto' | 'plain' | 'relaxed';

export interface KernelsModule {
  module: WasmModule;
  /** True when the kernels fuse multiply-add (relaxed SIMD's f32x4.relaxed_madd). */
  fma: boolean;
}

let plain: KernelsModule | undefined;

/** The compiled kernels module for `simd` (throws a clear error when that build cannot run here). */
export function kernelsModule(simd: SimdFlavor = 'auto'): KernelsModule {
  if (simd === 'relaxed') throw new Error("cpu kernels: the 'relaxed' SIMD build is not available");
  if (plain === undefined) {
    // build/src/backends/cpu/module.js -> build/wasm/kernels.wasm
    const bytes = readFileSync(new URL('../../../wasm/kernels.wasm', import.meta.url));
    plain = { module: new wasm.Module(bytes), fma: false };
  }
  return plain;
}
