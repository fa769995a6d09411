// The few WebAssembly JS-API types the CPU backend uses. The project compiles with
// lib ES2022 and @types/node 20, neither of which declares the WebAssembly namespace
// (it lives in lib.dom), so we describe the subset we need and read the global once.

/** A WebAssembly.Memory created with shared: true (its buffer never detaches). */
export interface WasmMemory {
  readonly buffer: SharedArrayBuffer;
  /** Grow by `pages` of 64 KiB; returns the old size in pages; throws RangeError past the maximum. */
  grow(pages: number): number;
}

/** An opaque compiled module (structured-cloneable to workers). */
export interface WasmModule { readonly __wasmModule?: never }

interface WasmInstance { readonly exports: object }

interface WasmApi {
  Memory: new (desc: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: { env: { memory: WasmMemory } }) => WasmInstance;
}

export const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
