// Optional native helpers through the koffi FFI (an optional dependency): the native
// address of a shared buffer, and transparent huge pages for the wasm memories.
//
// What it is: small functions that return null/false (never throw) when koffi or the
// C library is missing or the platform has no such call, so callers carry on without.
// Why huge pages: the decoder streams weights and gathers rows of them; with 4 KiB
// pages every selected 16 KiB row crosses four TLB entries and the hardware
// prefetcher stops at each page edge. madvise(MADV_HUGEPAGE) on a memory's range lets
// Linux back it with 2 MiB pages (where transparent huge pages are in "madvise" or
// "always" mode). Measured on this machine (dev/gemv/hugepages.mjs, 1 thread, three
// runs under load): gathered rows 1/8 of 4096x4096 17.1-18.2 GB/s against 15.0-16.8
// with 4 KiB pages, 1/64 8.1-8.3 against 6.7-7.6, the read ceiling 19.6-25.5 against
// 13.2-20.4.
import { createRequire } from 'node:module';

type Koffi = typeof import('koffi');
type Fn = (...args: unknown[]) => unknown;

interface Native { koffi: Koffi; memmove: Fn; madvise: Fn | null }

let cached: Native | null | undefined;

function load(): Native | null {
  if (cached !== undefined) return cached;
  cached = null;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as Koffi;
    const libc = koffi.load(process.platform === 'darwin' ? 'libSystem.dylib' : process.platform === 'win32' ? 'msvcrt.dll' : 'libc.so.6');
    const memmove = libc.func('void *memmove(void *, const void *, size_t)') as Fn;
    let madvise: Fn | null = null;
    if (process.platform === 'linux') {
      try { madvise = libc.func('int madvise(uintptr_t, size_t, int)') as Fn; } catch { madvise = null; }
    }
    cached = { koffi, memmove, madvise };
  } catch {
    cached = null;
  }
  return cached;
}

/** The native address of byte 0 of a shared buffer (fixed for its lifetime: shared memories never move), or null. */
export function nativeAddress(buffer: SharedArrayBuffer): number | null {
  const n = load();
  if (n === null) return null;
  // memmove(p, p, 0) returns p: the portable way to read a buffer's address through koffi.
  const bytes = new Uint8Array(buffer, 0, 1);
  return Number(n.koffi.address(n.memmove(bytes, bytes, 0)));
}

const MADV_HUGEPAGE = 14;

/** Ask Linux to back `bytes` from the buffer's start with huge pages (before they are touched); true when accepted. */
export function adviseHugePages(buffer: SharedArrayBuffer, bytes: number): boolean {
  const n = load();
  if (n === null || n.madvise === null) return false;
  const base = nativeAddress(buffer);
  if (base === null) return false;
  return n.madvise(base, bytes, MADV_HUGEPAGE) === 0;
}
