// WasmHeap: a small first-fit allocator over one shared WebAssembly.Memory.
//
// What it is: bookkeeping in JS (the kernels never allocate); blocks are byte ranges
// of the memory, aligned (default 64 B = one cache line), freed blocks are coalesced
// with their neighbours, and the memory grows (memory.grow) when the top is reached.
// What it is not: thread-safe — only the main thread allocates; workers only read and
// write inside blocks they were handed.
// Invariants: address 0 .. BASE-1 is never handed out (0 is the null pointer);
// `free` is sorted by address and no two free blocks touch; `top` is the end of the
// highest block ever carved out, every byte in [BASE, top) is either live or free.
// Views: shared memory never detaches, but a view made before a grow does not see
// the new pages, so f32/i32 build a fresh view of the current buffer every call.

import type { WasmMemory } from './wasm-api.js';

const PAGE = 65536;
const BASE = 65536;

export interface WasmHeap {
  /** Reserve `bytes` (rounded up to 16) aligned to `align` (power of two, default 64); returns a byte pointer. */
  alloc(bytes: number, align?: number): number;
  /** Return a block from alloc; freeing 0 is a no-op, anything else unknown throws. */
  free(p: number): void;
  /** Float32Array view of n floats at byte pointer p (p must be 4-aligned). */
  f32(p: number, n: number): Float32Array;
  /** Int32Array view of n ints at byte pointer p. */
  i32(p: number, n: number): Int32Array;
  readonly memory: WasmMemory;
}

interface Block { p: number; size: number }

export class SharedHeap implements WasmHeap {
  readonly memory: WasmMemory;
  private top = BASE;
  private readonly freeList: Block[] = [];
  private readonly live = new Map<number, number>(); // pointer -> size of the carved block
  private readonly carved = new Map<number, number>(); // pointer -> start of the carved block (alignment padding)

  constructor(memory: WasmMemory) {
    this.memory = memory;
    if (memory.buffer.byteLength < BASE) memory.grow(Math.ceil((BASE - memory.buffer.byteLength) / PAGE));
  }

  alloc(bytes: number, align = 64): number {
    if (!(bytes >= 0) || !Number.isFinite(bytes)) throw new RangeError(`heap.alloc: bad size ${bytes}`);
    if (align < 4 || (align & (align - 1)) !== 0) throw new RangeError(`heap.alloc: bad alignment ${align}`);
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
    this.ensure(end);
    this.top = end;
    this.live.set(p, end - start);
    this.carved.set(p, start);
    return p;
  }

  free(p: number): void {
    if (p === 0) return;
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

  f32(p: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, p, n);
  }

  i32(p: number, n: number): Int32Array {
    return new Int32Array(this.memory.buffer, p, n);
  }

  /** Bytes currently handed out (for tests and leak checks). */
  liveBytes(): number {
    let s = 0;
    for (const v of this.live.values()) s += v;
    return s;
  }

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    // Grow by at least 1/8 of the current size so many small allocations do not grow page by page.
    const need = Math.ceil((end - have) / PAGE);
    const pages = Math.max(need, Math.ceil(have / PAGE / 8));
    const maxPages = 65536;
    const cur = have / PAGE;
    this.memory.grow(Math.min(pages, Math.max(need, maxPages - cur)));
  }
}
