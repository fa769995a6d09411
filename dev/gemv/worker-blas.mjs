// Lab: can worker threads call OpenBLAS (through koffi) on halves of a matrix-vector
// product, each single-threaded, and does that beat the wasm workers on 2 threads?
//   node dev/gemv/worker-blas.mjs [reps] [INxOUT,...]
// Main thread + 1 worker over one shared buffer; y[out] = Mᵀx with M stored [in, out]
// (sgemv Trans), split by output columns (lda = out) or by input rows (partial sums).
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const koffi = require('koffi');
const lib = koffi.load('libopenblas.so.0');
const sgemv = lib.func('void cblas_sgemv(int, int, int, int, float, uintptr_t, int, uintptr_t, int, float, uintptr_t, int)');
const setThreads = lib.func('void openblas_set_num_threads(int)');
const libc = koffi.load('libc.so.6');
const memmove = libc.func('void *memmove(void *, const void *, size_t)');
const addr = (buf) => { const b = new Uint8Array(buf, 0, 1); return Number(koffi.address(memmove(b, b, 0))); };
const RM = 101, T = 112;

if (isMainThread) {
  setThreads(1);
  const reps = Number(process.argv[2] ?? 15);
  const bytes = 1 << 30;
  const sab = new SharedArrayBuffer(bytes + 4096);
  const ctl = new Int32Array(sab, bytes, 1024);
  const f64 = new Float64Array(sab, bytes + 1024, 256);
  new Worker(new URL(import.meta.url), { workerData: { sab, bytes } });
  const base = addr(sab);
  const f = new Float32Array(sab, 0, bytes / 4);
  for (let i = 0; i < f.length; i += 1024) f[i] = 0.001;
  let seq = 0;
  const run = (args) => { // args: [mode, rows, cols, pW, pX, pY, pP]
    for (let i = 0; i < args.length; i++) f64[i] = args[i];
    Atomics.store(ctl, 16, 0);
    Atomics.store(ctl, 0, ++seq); Atomics.notify(ctl, 0);
    share(0, args);
    while (Atomics.load(ctl, 16) === 0);
  };
  const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
  let off = 0;
  for (const [inn, out] of (process.argv[3] ?? "1024x3072,1024x1024,1024x4096").split(",").map((s) => s.split("x").map(Number))) {
    const n = inn * out; const copies = Math.max(1, Math.floor((256 << 20) / (n * 4)));
    const pX = off; off += 65536; const pY = off; off += 4 * 65536 * 2; const pP = off; off += 4 * 65536 * 2;
    const mats = []; for (let c = 0; c < copies; c++) { mats.push(off); off += n * 4; off = Math.ceil(off / 64) * 64; }
    if (off > bytes) break;
    const res = {};
    for (const mode of [0, 1, 2]) { // 0: 1 thread, 1: split columns, 2: split rows
      const ts = [];
      for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        for (const pW of mats) {
          if (mode === 0) sgemv(RM, T, inn, out, 1, base + pW, out, base + pX, 1, 0, base + pY, 1);
          else run([mode, inn, out, base + pW, base + pX, base + pY, base + pP]);
        }
        ts.push((performance.now() - t0) / copies);
      }
      res[mode] = (n * 4 / (med(ts) * 1e6)).toFixed(1);
    }
    console.log(`[${inn}, ${out}] x${copies}: 1 thread ${res[0]} GB/s, 2 threads split cols ${res[1]}, split rows ${res[2]}`);
  }
  Atomics.store(ctl, 0, -1); Atomics.notify(ctl, 0);
} else {
  const { sab, bytes } = workerData;
  const ctl = new Int32Array(sab, bytes, 1024);
  const f64 = new Float64Array(sab, bytes + 1024, 256);
  let seen = 0;
  for (;;) {
    let s; while ((s = Atomics.load(ctl, 0)) === seen);
    if (s === -1) break;
    seen = s;
    share(1, Array.from(f64.subarray(0, 7)));
    Atomics.store(ctl, 16, 1);
  }
}

function share(t, [mode, inn, out, pW, pX, pY, pP]) {
  if (mode === 1) {
    const h = Math.round(out / 2 / 16) * 16, j0 = t === 0 ? 0 : h, j1 = t === 0 ? h : out;
    sgemv(RM, T, inn, j1 - j0, 1, pW + j0 * 4, out, pX, 1, 0, pY + j0 * 4, 1);
  } else {
    const h = inn >> 1, i0 = t === 0 ? 0 : h, i1 = t === 0 ? h : inn;
    sgemv(RM, T, i1 - i0, out, 1, pW + i0 * out * 4, out, pX + i0 * 4, 1, 0, t === 0 ? pY : pP, 1);
  }
}
