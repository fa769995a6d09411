// WasmHeap: first-fit allocation over one or more shared WebAssembly.Memory objects.
//
// What it is: bookkeeping in JS (the kernels never allocate). A wasm32 memory holds at
// most 4 GiB, so a model larger than that (one block of the paper's 17B model is 4.4 GB
// of float32) spreads over several memories. An *address* names a byte in any of them:
// address = memory index · 2^32 + byte offset, a plain JS number (exact below 2^53).
// Memory 0's addresses are its byte offsets, so single-memory code never sees the
// difference. Blocks never straddle two memories.
// Per memory (MemoryArena): blocks are byte ranges, aligned (default 64 B = one cache
// line), freed blocks are coalesced with their neighbours, and the memory grows
// (memory.grow) when its top is reached, up to 4 GiB; an allocation that does not fit
// in any existing memory opens a new one (the owner is told, to instantiate its kernels
// on it). The last 1/16 of every memory is kept for the kernels' own blocks (allocIn:
// GEMM scratch, staging of operands that live in another memory), so a memory filled
// with weights still has room to stage the vectors a kernel call on it needs.
// What it is not: thread-safe: only the main thread allocates; workers only read and
// write inside blocks they were handed.
// Invariants: offset 0 .. BASE-1 of every memory is never handed out (address 0 is the
// null pointer; the rest is the kernels module's static data); each arena's `free` is
// sorted by offset and no two free blocks touch; `top` is the end of the highest block
// ever carved out, every byte in [BASE, top) is either live or free.
// Views: shared memory never detaches, but a view made before a grow does not see the
// new pages, so f32/i32 build a fresh view of the current buffer every call.

import { wasm, type WasmMemory } from './wasm-api.js';

const PAGE = 65536;
const BASE = 65536;
/** 1/RESERVE_FRACTION of every memory is for allocIn only. */
const RESERVE_FRACTION = 16;
/** Pages in a full wasm32 memory (4 GiB). */
export const MAX_PAGES = 65536;
/** Address span of one memory: address = memory index · MEMORY_SPAN + byte offset. */
export const MEMORY_SPAN = 2 ** 32;

export interface WasmHeap {
  /** Reserve `bytes` (rounded up to 16) aligned to `align` (power of two, default 64); returns an address. */
  alloc(bytes: number, align?: number): number;
  /** Return a block from alloc; freeing 0 is a no-op, anything else unknown throws. */
  free(p: number): void;
  /** Float32Array view of n floats at address p (p must be 4-aligned). */
  f32(p: number, n: number): Float32Array;
  /** Int32Array view of n ints at address p. */
  i32(p: number, n: number): Int32Array;
  /** The memories, in address order (memory i holds addresses i·2^32 ..). */
  readonly memories: readonly WasmMemory[];
}

/** The memory index of address p. */
export const memoryOf = (p: number): number => Math.floor(p / MEMORY_SPAN);
/** The byte offset of address p inside its memory. */
export const offsetOf = (p: number): number => p % MEMORY_SPAN;

interface Block { p: number; size: number }

/** First-fit allocator over one memory; pointers are byte offsets in it. */
export class MemoryArena {
  readonly memory: WasmMemory;
  private top = BASE;
  private readonly freeList: Block[] = [];
  private readonly live = new Map<number, number>(); // pointer -> size of the carved block
  private readonly carved = new Map<number, number>(); // pointer -> start of the carved block (alignment padding)

  /** @param maxBytes the arena never grows its memory past this (default and most: 4 GiB) */
  constructor(memory: WasmMemory, private readonly maxBytes = MAX_PAGES * PAGE) {
    this.memory = memory;
    if (memory.buffer.byteLength < BASE) memory.grow(Math.ceil((BASE - memory.buffer.byteLength) / PAGE));
  }

  /**
   * Like WasmHeap.alloc, but returns 0 when the block does not fit below maxBytes
   * (below maxBytes minus the kernels' reserve unless `reserve` is false).
   */
  tryAlloc(bytes: number, align: number, reserve = true): number {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    // First fit in the free list: a block fits if the aligned start plus size is inside it.
    for (let i = 0; i < this.freeList.length; i++) {
      const b = this.freeList[i];
      const p = Math.ceil(b.p / align) * align;
      const end = p + size;
      if (end <= b.p + b.size) {
        // Carve [b.p, end) out; the rest stays free.
        const rest = b.p + b.size - end;
        if (rest > 0) this.freeList[i] = { p: end, size: rest };
        else this.freeList.splice(i, 1);
        this.live.set(p, end - b.p);
        this.carved.set(p, b.p);
        return p;
      }
    }
    const start = this.top;
    const p = Math.ceil(start / align) * align;
    const end = p + size;
    if (end > (reserve ? this.maxBytes - this.maxBytes / RESERVE_FRACTION : this.maxBytes)) return 0;
    this.ensure(end);
    this.top = end;
    this.live.set(p, end - start);
    this.carved.set(p, start);
    return p;
  }

  free(p: number): void {
    const size = this.live.get(p);
    const start = this.carved.get(p);
    if (size === undefined || start === undefined) throw new Error(`heap.free: ${p} is not a live block`);
    this.live.delete(p);
    this.carved.delete(p);
    let blk: Block = { p: start, size };
    // Insert sorted, then merge with neighbours.
    let i = 0;
    while (i < this.freeList.length && this.freeList[i].p < blk.p) i++;
    const prev = i > 0 ? this.freeList[i - 1] : undefined;
    if (prev !== undefined && prev.p + prev.size === blk.p) {
      prev.size += blk.size;
      blk = prev;
      i--;
    } else {
      this.freeList.splice(i, 0, blk);
    }
    const next = this.freeList[i + 1];
    if (next !== undefined && blk.p + blk.size === next.p) {
      blk.size += next.size;
      this.freeList.splice(i + 1, 1);
    }
    // A free block at the top is given back to the bump pointer.
    if (blk.p + blk.size === this.top) {
      this.top = blk.p;
      this.freeList.splice(i, 1);
    }
  }

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    // Grow by at least 1/8 of the current size so many small allocations do not grow page by page.
    const need = Math.ceil((end - have) / PAGE);
    const pages = Math.max(need, Math.ceil(have / PAGE / 8));
    const cur = have / PAGE;
    this.memory.grow(Math.min(pages, Math.max(need, this.maxBytes / PAGE - cur)));
  }
}

/** A new shared memory of `initial` pages that may grow to 4 GiB. */
export function newSharedMemory(initial = 64): WasmMemory {
  return new wasm.Memory({ initial, maximum: MAX_PAGES, shared: true });
}

export class SharedHeap implements WasmHeap {
  private readonly arenas: MemoryArena[] = [];
  private readonly memoryList: WasmMemory[] = [];

  /**
   * @param first memory 0 (the kernels' control block lives there)
   * @param onMemory called with each memory opened later and its index, before alloc hands out an address in it
   * @param maxBytes bytes one memory may grow to (default 4 GiB; tests use a few MiB to exercise several memories)
   */
  constructor(first: WasmMemory, private readonly onMemory: (memory: WasmMemory, index: number) => void = () => {},
    private readonly maxBytes = MAX_PAGES * PAGE) {
    if (!Number.isInteger(maxBytes / PAGE) || maxBytes < 2 * BASE || maxBytes > MAX_PAGES * PAGE) {
      throw new RangeError(`heap: maxBytes must be a multiple of 64 KiB in 128 KiB..4 GiB, got ${maxBytes}`);
    }
    this.arenas.push(new MemoryArena(first, maxBytes));
    this.memoryList.push(first);
  }

  get memories(): readonly WasmMemory[] { return this.memoryList; }

  alloc(bytes: number, align = 64): number {
    if (!(bytes >= 0) || !Number.isFinite(bytes)) throw new RangeError(`heap.alloc: bad size ${bytes}`);
    if (align < 4 || (align & (align - 1)) !== 0) throw new RangeError(`heap.alloc: bad alignment ${align}`);
    if (bytes + align + BASE > this.maxBytes - this.maxBytes / RESERVE_FRACTION) throw new RangeError(`heap.alloc: ${bytes} bytes do not fit in one WebAssembly memory (${this.maxBytes / 2 ** 20} MiB)`);
    for (let m = 0; m < this.arenas.length; m++) {
      const p = this.arenas[m].tryAlloc(bytes, align);
      if (p !== 0) return m * MEMORY_SPAN + p;
    }
    // Nothing fits: open a memory sized for this block (growing later as needed).
    const memory = newSharedMemory(Math.ceil((BASE + bytes + align) / PAGE));
    const m = this.arenas.length;
    const arena = new MemoryArena(memory, this.maxBytes);
    this.arenas.push(arena);
    this.memoryList.push(memory);
    this.onMemory(memory, m); // may allocIn(m, ...) its own blocks first
    const p = arena.tryAlloc(bytes, align);
    if (p === 0) throw new RangeError(`heap.alloc: ${bytes} bytes do not fit in a fresh WebAssembly memory`);
    return m * MEMORY_SPAN + p;
  }

  /** Like alloc, but in memory m (which must exist) and allowed into its reserve: the kernels' per-memory scratch and staging areas. */
  allocIn(m: number, bytes: number, align = 64): number {
    const arena = this.arenas[m];
    if (arena === undefined) throw new RangeError(`heap.allocIn: no memory ${m}`);
    const p = arena.tryAlloc(bytes, align, false);
    if (p === 0) throw new RangeError(`heap.allocIn: ${bytes} bytes do not fit in memory ${m}`);
    return m * MEMORY_SPAN + p;
  }

  free(p: number): void {
    if (p === 0) return;
    const arena = this.arenas[memoryOf(p)];
    if (arena === undefined) throw new Error(`heap.free: ${p} is not a live block`);
    arena.free(offsetOf(p));
  }

  f32(p: number, n: number): Float32Array {
    return new Float32Array(this.memoryList[memoryOf(p)].buffer, offsetOf(p), n);
  }

  i32(p: number, n: number): Int32Array {
    return new Int32Array(this.memoryList[memoryOf(p)].buffer, offsetOf(p), n);
  }
}
