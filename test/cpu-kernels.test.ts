// Tests for the multi-threaded WebAssembly kernels (src/backends/cpu/kernels.ts):
// every kernel against a plain float64 JS reference on seeded random data, awkward
// sizes (edges of the 6x8 micro-tile and of the 96/256/2048 cache blocks), all
// transpose combinations, the accumulate flag, gathered rows at the edges, with 1 and
// 2 threads, and the OpenBLAS path when it is available (skipped otherwise).
//
// Tolerance (derived, not tuned): inputs are float32, so the float64 reference is
// exact up to 2^-53. A float32 dot product of K terms, in any summation order and
// with or without FMA, satisfies |fl(s) - s| <= gamma(K) * sum_k |a_k b_k| with
// gamma(K) = K u / (1 - K u), u = 2^-24 (Higham, Accuracy and Stability, 3.1); one
// more u covers the accumulate add and the final rounding. checkClose uses exactly
// that per element. A dropped or wrong term is ~sum|ab|/K, which for the K used
// here (<= 600) is >> K u sum|ab|; the "checker" test shows such an error fails.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TRANSPOSES, block, checkClose, checkGemmCases, gamma, positionMajor, randArray, refGemm, rng } from './helpers.js';
import { APART_NS, createKernels, panelsLength, toColumnPanels, toPanels, type CpuKernels, type Placement } from '../src/backends/cpu/kernels.js';
import { newSharedMemory } from '../src/backends/cpu/heap.js';
import { nativeAddress } from '../src/backends/cpu/native.js';
import { MAX_JOBS, OP_BITS, Op, PF_MAX_RANGES, PF_STATE } from '../src/backends/cpu/exec.js';

test('control block: every op fits the op bits of SEQ, and the largest job counter keeps SEQ a positive int32', () => {
  // A 16th op once wrapped to op 0 in the workers' decoding (s & 15): an "unknown op" only
  // when a job ran on two threads.
  const ops = Object.values(Op);
  assert.equal(new Set(ops).size, ops.length, 'op values are distinct');
  for (const op of ops) assert.ok(op > 0 && op < 2 ** OP_BITS, `op ${op} fits ${OP_BITS} bits`);
  const seq = (MAX_JOBS * 2 ** OP_BITS) + (2 ** OP_BITS - 1);
  assert.ok(seq <= 2 ** 31 - 1, 'SEQ stays a positive int32');
  assert.equal((MAX_JOBS << OP_BITS) | 1, MAX_JOBS * 2 ** OP_BITS + 1, 'the shift does not overflow');
});

// [M, N, K]: 1s, tile edges (6x8), MC=96 and KC=256 block edges, N > NC=2048, and
// sizes large enough (2MNK >= 2^19) to run split across threads along M or N. On the
// OpenBLAS path, products over blas.ts SMALL_MNK are cut into parts: [200, 150, 70]
// along N, [8, 40, 4000] and [16, 64, 1500] along K; and, shared between threads (2MNK
// >= 2^22), [64, 48, 1400] by rows and [8, 512, 600] by columns, each thread's part
// again along K.
const GEMM_SIZES: [number, number, number][] = [
  [1, 1, 1], [1, 7, 33], [7, 1, 65], [6, 8, 4], [7, 33, 65], [65, 7, 129], [33, 129, 7],
  [97, 9, 257], [13, 17, 513], [3, 2050, 5], [129, 65, 33], [200, 150, 70], [20, 300, 100],
  [8, 40, 4000], [16, 64, 1500], [64, 48, 1400], [8, 512, 600],
];

test('checker: rejects a result with one term missing, accepts the exact one', () => {
  const K = 600, a = randArray(K, 1), b = randArray(K, 2);
  const ref = refGemm(false, false, 1, 1, K, a, 0, K, b, 0, 1, null, 0, 1);
  const missing = ref.val[0] - a[K - 1] * b[K - 1];
  assert.throws(() => checkClose([missing], ref, 'dropped term'));
  checkClose([Math.fround(ref.val[0])], ref, 'rounded exact');
});

for (const threads of [1, 2]) {
  describe(`cpu kernels, ${threads} thread(s), wasm`, () => {
    let k: CpuKernels;
    before(() => { k = createKernels({ threads, blas: false }); });
    after(() => k.dispose());

    test('reports its configuration', () => {
      assert.equal(k.threads, threads);
      assert.equal(k.blas, false);
    });

    test('gemm: all transposes, accumulate, strides, odd sizes', () => {
      checkGemmCases(k, GEMM_SIZES, 10);
    });

    test('gemm: K = 0 gives zeros (or leaves C when accumulating)', () => {
      const pC = k.heap.alloc(6 * 4);
      k.heap.f32(pC, 6).fill(3);
      k.gemm(false, false, 2, 3, 0, pC, 1, pC, 3, pC, 3, true);
      assert.deepEqual(Array.from(k.heap.f32(pC, 6)), [3, 3, 3, 3, 3, 3]);
      k.gemm(false, false, 2, 3, 0, pC, 1, pC, 3, pC, 3, false);
      assert.deepEqual(Array.from(k.heap.f32(pC, 6)), [0, 0, 0, 0, 0, 0]);
      k.heap.free(pC);
    });

    test('matmul: JS arrays with offsets and strides, all transposes', () => {
      let seed = 1000;
      for (const [M, N, K] of GEMM_SIZES) {
        for (const [tA, tB] of TRANSPOSES) {
          const lda = (tA ? M : K) + 2, ldb = (tB ? K : N) + 1, ldc = N + 3;
          const aOff = 5, bOff = 3, cOff = 7;
          const a = randArray(aOff + (tA ? K : M) * lda, seed++), b = randArray(bOff + (tB ? N : K) * ldb, seed++);
          const c = randArray(cOff + M * ldc, seed++);
          const before = c.slice();
          k.matmul(tA, tB, M, N, K, a, aOff, lda, b, bOff, ldb, c, cOff, ldc);
          checkClose(block(c, cOff, ldc, M, N), refGemm(tA, tB, M, N, K, a, aOff, lda, b, bOff, ldb, null, 0, ldc), `matmul ${M}x${N}x${K} ${tA} ${tB}`);
          for (let i = 0; i < cOff; i++) assert.equal(c[i], before[i]);
          for (let i = 0; i < M; i++) for (let j = N; j < ldc && cOff + i * ldc + j < c.length; j++) assert.equal(c[cOff + i * ldc + j], before[cOff + i * ldc + j]);
        }
      }
    });

    test('matmul: rejects arrays too short for the shape', () => {
      const a = new Float32Array(6), b = new Float32Array(6), c = new Float32Array(3);
      assert.throws(() => k.matmul(false, false, 2, 2, 3, a, 0, 3, b, 0, 2, c, 0, 2), RangeError);
    });

    // Rows around the 8-row groups (7, 8, 9, 15, 17, 23, 65), columns around the 4-float
    // vectors (1, 3, 5, 33, 257, 4097 ...), and calls large enough to split across threads.
    const GEMV_SIZES: [number, number][] = [[1, 1], [3, 5], [7, 33], [65, 129], [4, 8], [1000, 257], [129, 1000],
      [8, 4], [9, 3], [15, 17], [17, 16], [23, 4097], [64, 1031], [200, 1024]];

    test('gemv: y = W x', () => {
      let seed = 2000;
      for (const [rows, cols] of GEMV_SIZES) {
        const h = k.heap;
        const w = randArray(rows * cols, seed++), x = randArray(cols, seed++);
        const pW = h.alloc(w.length * 4), pX = h.alloc(cols * 4), pY = h.alloc(rows * 4 + 4);
        h.f32(pW, w.length).set(w); h.f32(pX, cols).set(x); h.f32(pY + rows * 4, 1)[0] = 42;
        k.gemv(pW, rows, cols, pX, pY);
        checkClose(h.f32(pY, rows), refGemm(false, false, rows, 1, cols, w, 0, cols, x, 0, 1, null, 0, 1), `gemv ${rows}x${cols}`);
        assert.equal(h.f32(pY + rows * 4, 1)[0], 42, 'gemv wrote past y');
        h.free(pW); h.free(pX); h.free(pY);
      }
    });

    // Index lists: edges, all the same row, duplicates, unsorted, random sorted, empty.
    function indexCases(rows: number, seed: number): [string, number[]][] {
      const r = rng(seed);
      const second = Math.min(1, rows - 1);
      const sorted = Array.from({ length: rows }, (_, i) => i).filter(() => r() < 0.3);
      return [
        ['first', [0]], ['last', [rows - 1]], ['first+last', [0, rows - 1]],
        ['all same', Array.from({ length: 9 }, () => rows - 1)],
        ['duplicates', [0, 0, second, rows - 1, rows - 1, second, 0]],
        ['random sorted', sorted.length > 0 ? sorted : [0]],
        ['all rows', Array.from({ length: rows }, (_, i) => i)],
        ['descending', Array.from({ length: rows }, (_, i) => rows - 1 - i)],
        ['last row in a full group of 8, then a tail', [...Array.from({ length: 8 }, (_, i) => Math.max(0, rows - 1 - i)), 0, rows - 1]],
        ['first and last in every slot of 17', Array.from({ length: 17 }, (_, i) => (i % 2 === 0 ? 0 : rows - 1))],
        ['empty', []],
      ];
    }

    test('gemvT: y += Wᵀ · x over every row', () => {
      let seed = 3500;
      for (const [rows, cols] of GEMV_SIZES) {
        const h = k.heap;
        const w = randArray(rows * cols, seed++), x = randArray(rows, seed++), y0 = randArray(cols, seed++);
        const pW = h.alloc(w.length * 4), pX = h.alloc(rows * 4), pY = h.alloc(cols * 4 + 4);
        h.f32(pW, w.length).set(w); h.f32(pX, rows).set(x); h.f32(pY, cols).set(y0); h.f32(pY + cols * 4, 1)[0] = 42;
        k.gemvT(pW, rows, cols, pX, pY);
        checkClose(h.f32(pY, cols), refGemm(true, false, cols, 1, rows, w, 0, cols, x, 0, 1, y0, 0, 1), `gemvT ${rows}x${cols}`);
        assert.equal(h.f32(pY + cols * 4, 1)[0], 42, 'gemvT wrote past y');
        h.free(pW); h.free(pX); h.free(pY);
      }
    });

    test('gemvRows: y[i] = W[idx[i]] · x', () => {
      let seed = 3000;
      for (const [rows, cols] of GEMV_SIZES) {
        const h = k.heap;
        const w = randArray(rows * cols, seed++), x = randArray(cols, seed++);
        const pW = h.alloc(w.length * 4), pX = h.alloc(cols * 4);
        h.f32(pW, w.length).set(w); h.f32(pX, cols).set(x);
        for (const [name, idx] of indexCases(rows, seed++)) {
          const n = idx.length;
          const pI = h.alloc(n * 4), pY = h.alloc(n * 4 + 4);
          h.i32(pI, n).set(idx); h.f32(pY + n * 4, 1)[0] = 42;
          k.gemvRows(pW, cols, pI, n, pX, pY);
          const sel = new Float32Array(n * cols);
          idx.forEach((row, i) => sel.set(w.subarray(row * cols, (row + 1) * cols), i * cols));
          checkClose(h.f32(pY, n), refGemm(false, false, n, 1, cols, sel, 0, cols, x, 0, 1, null, 0, 1), `gemvRows ${rows}x${cols} ${name}`);
          assert.equal(h.f32(pY + n * 4, 1)[0], 42, 'gemvRows wrote past y');
          h.free(pI); h.free(pY);
        }
        h.free(pW); h.free(pX);
      }
    });

    test('axpyRows: y += Σ coef[i] W[idx[i]]', () => {
      let seed = 4000;
      for (const [rows, cols] of GEMV_SIZES) {
        const h = k.heap;
        const w = randArray(rows * cols, seed++), y0 = randArray(cols, seed++);
        const pW = h.alloc(w.length * 4), pY = h.alloc(cols * 4 + 4);
        h.f32(pW, w.length).set(w);
        for (const [name, idx] of indexCases(rows, seed++)) {
          const n = idx.length;
          const coef = randArray(n, seed++);
          const pI = h.alloc(n * 4), pC = h.alloc(n * 4);
          h.i32(pI, n).set(idx); h.f32(pC, n).set(coef);
          h.f32(pY, cols).set(y0); h.f32(pY + cols * 4, 1)[0] = 42;
          k.axpyRows(pW, cols, pI, pC, n, pY);
          // Reference: y0 + Wsel^T coef, as a [cols] result of n terms.
          const sel = new Float32Array(n * cols);
          idx.forEach((row, i) => sel.set(w.subarray(row * cols, (row + 1) * cols), i * cols));
          const ref = refGemm(true, false, cols, 1, n, sel, 0, cols, coef, 0, 1, y0, 0, 1);
          checkClose(h.f32(pY, cols), ref, `axpyRows ${rows}x${cols} ${name}`);
          assert.equal(h.f32(pY + cols * 4, 1)[0], 42, 'axpyRows wrote past y');
          h.free(pI); h.free(pC);
        }
        h.free(pW); h.free(pY);
      }
    });

    test('readBandwidth: returns the sum', () => {
      for (const n of [0, 1, 7, 33, 100003]) {
        const x = randArray(n, 5000 + n);
        const p = k.heap.alloc(n * 4);
        k.heap.f32(p, n).set(x);
        let s = 0, m = 0;
        for (const v of x) { s += v; m += Math.abs(v); }
        checkClose([k.readBandwidth(p, n * 4)], { val: Float64Array.of(s), mag: Float64Array.of(m), terms: n }, `readBandwidth ${n}`);
        k.heap.free(p);
      }
    });
  });
}

test('heap: alignment, reuse after free, coalescing, growth, views', () => {
  const k = createKernels({ threads: 1, blas: false });
  try {
    const h = k.heap;
    const a = h.alloc(100), b = h.alloc(10, 256), c = h.alloc(1000);
    assert.equal(a % 64, 0); assert.equal(b % 256, 0); assert.equal(c % 64, 0);
    assert.ok(a !== 0 && b > a && c > b);
    h.free(b);
    assert.equal(h.alloc(10, 256), b, 'freed block is reused');
    h.free(a); h.free(b);
    const d = h.alloc(120); // 128 B: larger than a's 112-B block, fits only in the coalesced a+b hole (>= 128 B)
    assert.ok(d < c, 'coalesced hole is reused');
    assert.throws(() => h.free(d + 4));
    const before = h.memories[0].buffer.byteLength;
    const big = h.alloc(before + 1024 * 1024);
    assert.ok(h.memories[0].buffer.byteLength >= big + before + 1024 * 1024, 'memory grew');
    const v = h.f32(big, 4); v.set([1, 2, 3, 4]);
    assert.deepEqual(Array.from(h.f32(big, 4)), [1, 2, 3, 4]);
    h.free(big); h.free(c); h.free(d);
  } finally {
    k.dispose();
  }
});

test('heap over several memories: addresses, views, free, and kernels whose operands lie in different memories', () => {
  const MiB = 2 ** 20;
  for (const threads of [1, 2]) {
    const k = createKernels({ threads, blas: false, memoryBytes: 8 * MiB });
    const one = createKernels({ threads, blas: false });
    try {
      const h = k.heap;
      // 3 MiB blocks: two do not fit beside the scratch in one 8 MiB memory.
      const big = [h.alloc(3 * MiB), h.alloc(3 * MiB), h.alloc(3 * MiB)];
      assert.ok(h.memories.length >= 3, `${h.memories.length} memories`);
      assert.ok(big[2] >= 2 ** 32, 'a later memory has addresses from 2^32 on');
      assert.throws(() => h.alloc(9 * MiB), /do not fit in one WebAssembly memory/);
      const rows = 700, cols = 1000; // 2.8 MB matrix: in memory >= 1
      const W = big[2], x = h.alloc(cols * 4), y = h.alloc(rows * 4), idx = h.alloc(rows * 4), coef = h.alloc(rows * 4);
      assert.notEqual(Math.floor(W / 2 ** 32), Math.floor(x / 2 ** 32), 'matrix and vectors in different memories');
      const w = randArray(rows * cols, 11), xv = randArray(cols, 12), cv = randArray(rows, 13);
      const iv = Int32Array.from({ length: rows }, (_, i) => (i * 37) % rows);
      h.f32(W, rows * cols).set(w); h.f32(x, cols).set(xv); h.f32(coef, rows).set(cv); h.i32(idx, rows).set(iv);
      // The same calls with everything in one memory.
      const o = one.heap;
      const W1 = o.alloc(rows * cols * 4), x1 = o.alloc(cols * 4), y1 = o.alloc(rows * 4), idx1 = o.alloc(rows * 4), coef1 = o.alloc(rows * 4);
      o.f32(W1, rows * cols).set(w); o.f32(x1, cols).set(xv); o.f32(coef1, rows).set(cv); o.i32(idx1, rows).set(iv);
      // One thread: bit-identical (same arithmetic, another memory). Two: chunks are claimed
      // dynamically, so a gathered sum's split between threads (and its rounding) varies
      // from call to call; both results are then within gamma(cols + 1)·Σ|terms| of the
      // exact sum, so of each other within twice that. Every product here has at most
      // K = max(rows, cols) + 1 terms (the +1: axpyRows' y), each of magnitude <= 1.
      const same = (a: Float32Array, b: Float32Array, what: string) => {
        if (threads === 1) { assert.deepEqual(Array.from(a), Array.from(b), what); return; }
        const K = Math.max(rows, cols) + 1;
        const bound = 2 * gamma(K) * K;
        for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i] - b[i]) <= bound)) assert.fail(`${what}: element ${i}: ${a[i]} vs ${b[i]}`);
      };
      k.gemv(W, rows, cols, x, y); one.gemv(W1, rows, cols, x1, y1);
      same(h.f32(y, rows), o.f32(y1, rows), `gemv, ${threads} threads`);
      k.gemvRows(W, cols, idx, 300, x, y); one.gemvRows(W1, cols, idx1, 300, x1, y1);
      same(h.f32(y, 300), o.f32(y1, 300), `gemvRows, ${threads} threads`);
      h.f32(x, cols).fill(0.5); o.f32(x1, cols).fill(0.5);
      k.axpyRows(W, cols, idx, coef, rows, x); one.axpyRows(W1, cols, idx1, coef1, rows, x1);
      same(h.f32(x, cols), o.f32(x1, cols), `axpyRows, ${threads} threads`);
      // gemm: A [8, cols] and C [8, rows] in memory 0, B = W (transposed) elsewhere.
      const A = h.alloc(8 * cols * 4), C = h.alloc(8 * rows * 4), A1 = o.alloc(8 * cols * 4), C1 = o.alloc(8 * rows * 4);
      const av = randArray(8 * cols, 14);
      h.f32(A, 8 * cols).set(av); o.f32(A1, 8 * cols).set(av);
      k.gemm(false, true, 8, rows, cols, A, cols, W, cols, C, rows, false); one.gemm(false, true, 8, rows, cols, A1, cols, W1, cols, C1, rows, false);
      same(h.f32(C, 8 * rows), o.f32(C1, 8 * rows), `gemm, ${threads} threads`);
      k.gemmSmallM(A, W, C, 2, rows, 4); one.gemmSmallM(A1, W1, C1, 2, rows, 4);
      same(h.f32(C, 2 * rows), o.f32(C1, 2 * rows), `gemmSmallM, ${threads} threads`);
      // The decoder's glue: a norm of a row that lies in another memory than its weights
      // and output, and a copy out of it (the token embedding's row into x).
      h.f32(x, cols).set(xv); o.f32(x1, cols).set(xv); // axpyRows left them different on 2 threads
      k.norm(W + cols * 4, x, coef, y, 300, 1e-5, false); one.norm(W1 + cols * 4, x1, coef1, y1, 300, 1e-5, false);
      assert.deepEqual(Array.from(h.f32(y, 300)), Array.from(o.f32(y1, 300)), `norm across memories, ${threads} threads`);
      k.copyRows(x, 0, W + 5 * cols * 4, 0, 1, cols);
      assert.deepEqual(Array.from(h.f32(x, cols)), Array.from(w.subarray(5 * cols, 6 * cols)), `copyRows across memories, ${threads} threads`);
      // Views of a later memory, free and reuse there.
      h.f32(big[1], 4).set([1, 2, 3, 4]);
      assert.deepEqual(Array.from(h.f32(big[1], 4)), [1, 2, 3, 4]);
      h.free(big[1]);
      assert.equal(h.alloc(3 * MiB), big[1], 'a freed block in a later memory is reused');
    } finally {
      k.dispose();
      one.dispose();
    }
  }
});

test('native helpers: a shared memory keeps its native address when it grows; huge pages only when asked', (t) => {
  const mem = newSharedMemory(16);
  const a = nativeAddress(mem.buffer);
  if (a === null) { t.skip('koffi or the C library not available'); return; }
  assert.ok(Number.isSafeInteger(a) && a > 0 && a % 65536 === 0, `address ${a}`);
  mem.grow(64);
  assert.equal(nativeAddress(mem.buffer), a, 'the address after grow');
  const k = createKernels({ threads: 1, hugePages: false });
  try {
    assert.equal(k.hugePages, false);
  } finally {
    k.dispose();
  }
});

test('gemmBatch: independent products at once (threads take whole products), each as gemm; bad lists are rejected', () => {
  // 'apart': the threads taken to share no cache (checkPlacement), so this small batch runs on the calling thread.
  for (const [threads, blas, placement] of [[1, true, 'auto'], [2, true, 'auto'], [3, true, 'auto'], [2, false, 'auto'], [2, true, 'apart']] as [number, boolean, Placement][]) {
    const k = createKernels({ threads, blas, placement });
    try {
      const h = k.heap;
      // [transA, transB, M, N, K, accumulate]: the decoder's convolution shapes, a transposed one, an empty one.
      const shapes = [[0, 0, 16, 64, 576, 0], [0, 0, 16, 64, 576, 1], [0, 0, 16, 64, 192, 0], [1, 1, 7, 33, 65, 0], [0, 0, 0, 5, 5, 0]];
      let seed = 7100;
      const list: number[] = [], checks: (() => void)[] = [];
      for (const [tA, tB, M, N, K, acc] of shapes) {
        const lda = (tA ? M : K) + 1, ldb = (tB ? K : N) + 2, ldc = N + 3;
        const a = randArray((tA ? K : M) * lda + 1, seed++), b = randArray((tB ? N : K) * ldb + 1, seed++), c0 = randArray(Math.max(1, M * ldc), seed++);
        const pA = h.alloc(a.length * 4), pB = h.alloc(b.length * 4), pC = h.alloc(c0.length * 4);
        h.f32(pA, a.length).set(a); h.f32(pB, b.length).set(b); h.f32(pC, c0.length).set(c0);
        list.push(tA, tB, M, N, K, pA, lda, pB, ldb, pC, ldc, acc);
        const want = refGemm(tA === 1, tB === 1, M, N, K, a, 0, lda, b, 0, ldb, acc ? c0 : null, 0, ldc);
        checks.push(() => { if (M > 0) checkClose(block(h.f32(pC, c0.length), 0, ldc, M, N), want, `gemmBatch ${M}x${N}x${K} ${tA}${tB}${acc}, ${threads} threads, blas ${blas}`); });
      }
      k.gemmBatch(list);
      for (const check of checks) check();
      assert.throws(() => k.gemmBatch(list.slice(1)), RangeError);
    } finally {
      k.dispose();
    }
  }
});

test('prefetch: a hint that returns at once; the kernels after it are unaffected; bad ranges are rejected', async () => {
  for (const threads of [1, 2]) {
    const k = createKernels({ threads, blas: false });
    try {
      const h = k.heap, rows = 300, cols = 400;
      const w = randArray(rows * cols, 77), xv = randArray(cols, 78);
      const W = h.alloc(rows * cols * 4), x = h.alloc(cols * 4), y = h.alloc(rows * 4);
      h.f32(W, rows * cols).set(w); h.f32(x, cols).set(xv);
      const want = refGemm(false, false, rows, 1, cols, w, 0, cols, xv, 0, 1, null, 0, 1);
      for (let i = 0; i < 20; i++) {
        k.prefetch([W, rows * cols * 4, x, cols * 4]); // while two are pending the next is dropped
        k.gemv(W, rows, cols, x, y);
        checkClose(h.f32(y, rows), want, `gemv after prefetch ${i}, ${threads} threads`);
        if (i % 5 === 0) await new Promise((r) => setTimeout(r, 2)); // let a worker finish one
      }
      assert.throws(() => k.prefetch([W]), RangeError);
      assert.throws(() => k.prefetch(Array.from({ length: 2 * PF_MAX_RANGES + 2 }, () => W)), RangeError);
      if (threads === 1) assert.equal(k.prefetchesDone(), 0, 'one thread: no prefetch');
    } finally {
      k.dispose();
    }
  }
});

test('prefetch: a second hint posted while the first is unread waits in the other slot instead of being dropped', async () => {
  // Fresh kernels, so both slots are free and no earlier hint can be counted.
  const k = createKernels({ threads: 2, blas: false });
  try {
    const h = k.heap, n = 1 << 20;
    const A = h.alloc(n * 4), B = h.alloc(1024);
    h.f32(A, n).fill(1);
    k.prefetch([A, n * 4]);
    k.prefetch([B, 1024]);
    for (let t = 0; t < 5000 && k.prefetchesDone() < 2; t++) await new Promise((r) => setTimeout(r, 1));
    assert.equal(k.prefetchesDone(), 2, 'both hints read: the second was queued, not dropped');
  } finally {
    k.dispose();
  }
});

test('prefetch: with the slot it tries first still claimed (several workers), a hint goes into the other', async () => {
  const k = createKernels({ threads: 2, blas: false });
  const i32 = (k as unknown as { i32: Int32Array }).i32;
  try {
    const B = k.heap.alloc(1024);
    // Fresh kernels try slot 0 first; mark it claimed, as a slower worker's would be.
    Atomics.store(i32, PF_STATE, 2);
    k.prefetch([B, 1024]);
    for (let t = 0; t < 2000 && k.prefetchesDone() < 1; t++) await new Promise((r) => setTimeout(r, 1));
    assert.equal(k.prefetchesDone(), 1, 'the hint was posted in slot 1 and read');
    assert.equal(Atomics.load(i32, PF_STATE + 1), 0, 'and slot 1 freed');
  } finally {
    Atomics.store(i32, PF_STATE, 0);
    k.dispose();
  }
});

test('roundTripNs: 0 on one thread; on two, a time a cache line can take, and the job protocol intact after it', () => {
  const one = createKernels({ threads: 1, blas: false });
  try {
    assert.equal(one.roundTripNs(), 0);
  } finally {
    one.dispose();
  }
  const k = createKernels({ threads: 2, blas: false });
  try {
    const ns = k.roundTripNs(300);
    // A store seen by another core and answered cannot take under 10 ns; a probe whose
    // worker never answered throws instead of returning. The upper bound allows a
    // machine where both threads share one core (a scheduler slice per trip).
    assert.ok(Number.isFinite(ns) && ns > 10 && ns < 1e7, `round trip ${ns} ns`);
    assert.ok(k.roundTripNs(300) > 10, 'a second probe on the same kernels works too');
    const h = k.heap, rows = 64, cols = 96;
    const W = h.alloc(rows * cols * 4), x = h.alloc(cols * 4), y = h.alloc(rows * 4);
    const w = h.f32(W, rows * cols), xv = h.f32(x, cols);
    for (let i = 0; i < w.length; i++) w[i] = ((i * 37) % 11) - 5;
    for (let i = 0; i < cols; i++) xv[i] = (i % 7) - 3;
    k.gemv(W, rows, cols, x, y);
    const want = new Float32Array(rows);
    for (let r = 0; r < rows; r++) { let s = 0; for (let c = 0; c < cols; c++) s += w[r * cols + c] * xv[c]; want[r] = s; }
    assert.deepEqual(Array.from(h.f32(y, rows)), Array.from(want), 'a gemv after the probe (small integers: exact)');
  } finally {
    k.dispose();
  }
});

test('placement: apart turns the prefetch off; shared and one thread never probe; auto looks at most once per maxAgeMs; bad values are rejected', async () => {
  const apart = createKernels({ threads: 2, blas: false, placement: 'apart' });
  try {
    assert.equal(apart.threadsApart, true);
    assert.equal(apart.checkPlacement(0), true, 'a fixed placement is not measured');
    apart.roundTripNs(10); // the worker is up
    const n = 1 << 16, A = apart.heap.alloc(n * 4);
    apart.prefetch([A, n * 4]);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(apart.prefetchesDone(), 0, 'no prefetch while apart');
  } finally {
    apart.dispose();
  }
  const shared = createKernels({ threads: 2, blas: false, placement: 'shared' });
  try {
    assert.equal(shared.threadsApart, false);
    assert.equal(shared.checkPlacement(0), false);
    // The same hint is read when the threads share a cache (so the wait above was long enough).
    shared.roundTripNs(10);
    const n = 1 << 16, A = shared.heap.alloc(n * 4);
    shared.prefetch([A, n * 4]);
    for (let t = 0; t < 200 && shared.prefetchesDone() < 1; t++) await new Promise((r) => setTimeout(r, 1));
    assert.equal(shared.prefetchesDone(), 1, 'the hint is read when shared');
  } finally {
    shared.dispose();
  }
  const one = createKernels({ threads: 1, blas: false, placement: 'apart' });
  try {
    assert.equal(one.threadsApart, false, 'one thread is never apart');
  } finally {
    one.dispose();
  }
  const auto = createKernels({ threads: 2, blas: false });
  try {
    const measured = auto.checkPlacement(0);
    assert.equal(auto.threadsApart, measured, 'the verdict of a real probe (either is possible on a given machine)');
    // The verdict follows the probe against APART_NS, and a look younger than maxAgeMs is reused.
    let probes = 0, ns = APART_NS;
    (auto as unknown as { probeRoundTrip: () => number }).probeRoundTrip = () => { probes++; return ns; };
    assert.equal(auto.checkPlacement(0), true, `${ns} ns: apart`);
    ns = APART_NS - 1;
    assert.equal(auto.checkPlacement(60_000), true, 'a recent look is reused');
    assert.equal(probes, 1);
    assert.equal(auto.checkPlacement(0), false, `${ns} ns: shared`);
    assert.equal(probes, 2);
    // A probe the worker did not answer (-1) keeps the last verdict, and counts as a look.
    ns = APART_NS;
    assert.equal(auto.checkPlacement(0), true);
    ns = -1;
    assert.equal(auto.checkPlacement(0), true, 'an unanswered probe keeps "apart"');
    assert.equal(probes, 4);
    assert.equal(auto.checkPlacement(60_000), true);
    assert.equal(probes, 4, 'and is not retried before maxAgeMs');
    assert.throws(() => auto.roundTripNs(10), /did not answer/, 'roundTripNs itself reports it');
  } finally {
    auto.dispose();
  }
  assert.throws(() => createKernels({ threads: 1, placement: 'far' as Placement }), /placement/);
});

test('dispose: later calls throw', () => {
  const k = createKernels({ threads: 2, blas: false });
  k.dispose();
  assert.throws(() => k.gemv(0, 0, 0, 0, 0), /dispose/);
  k.dispose(); // idempotent
});

test('options: bad thread counts are rejected', () => {
  assert.throws(() => createKernels({ threads: 0 }), RangeError);
  assert.throws(() => createKernels({ threads: 1.5 }), RangeError);
});

describe('cpu kernels, OpenBLAS path', () => {
  // 3 threads: uneven parts, and a partial y for more than one worker.
  for (const threads of [1, 2, 3]) {
    test(`gemv and gemvT through cblas_sgemv, ${threads} thread(s)`, (t) => {
      const k = createKernels({ threads, blasGemv: true });
      try {
        if (!k.blasGemv) { t.skip('OpenBLAS or koffi not available'); return; }
        let seed = 6500;
        const h = k.heap;
        // Shared across threads from 2^16 floats: by rows ([257, 1031]; Wᵀx sums partial ys) or, for a
        // short, wide Wᵀ, by columns ([40, 2600]).
        for (const [rows, cols] of [[1, 1], [7, 13], [64, 300], [257, 1031], [40, 2600]]) {
          const w = randArray(rows * cols, seed++), x = randArray(Math.max(rows, cols), seed++), y0 = randArray(Math.max(rows, cols), seed++);
          const pW = h.alloc(w.length * 4), pX = h.alloc(x.length * 4), pY = h.alloc(y0.length * 4 + 4);
          h.f32(pW, w.length).set(w); h.f32(pX, x.length).set(x);
          h.f32(pY, y0.length).set(y0); h.f32(pY + y0.length * 4, 1)[0] = 42;
          k.gemv(pW, rows, cols, pX, pY);
          checkClose(h.f32(pY, rows), refGemm(false, false, rows, 1, cols, w, 0, cols, x, 0, 1, null, 0, 1), `blas gemv ${rows}x${cols}`);
          h.f32(pY, y0.length).set(y0);
          k.gemvT(pW, rows, cols, pX, pY);
          checkClose(h.f32(pY, cols), refGemm(true, false, cols, 1, rows, w, 0, cols, x, 0, 1, y0, 0, 1), `blas gemvT ${rows}x${cols}`);
          assert.equal(h.f32(pY + y0.length * 4, 1)[0], 42, 'wrote past y');
          h.free(pW); h.free(pX); h.free(pY);
        }
      } finally {
        k.dispose();
      }
    });

    test(`gemmPanels through cblas_sgemm: W's panels unpacked a slice at a time, the slices shared by the threads, ${threads} thread(s)`, (t) => {
      const k = createKernels({ threads });
      try {
        if (!k.blas) { t.skip('OpenBLAS or koffi not available'); return; }
        let seed = 6800;
        const h = k.heap;
        // From 4 rows of X; slices of ~1 MiB of W: 1, 6 (the last partial, rows not a multiple of 8) and 16 of them.
        for (const [rows, cols, T] of [[40, 33, 4], [3001, 515, 5], [4100, 1024, 4]] as const) {
          const w = randArray(rows * cols, seed++), ldx = cols + 2, ldy = rows + 3;
          const x = randArray(T * ldx, seed++);
          const pW = h.alloc(panelsLength(rows, cols) * 4), pX = h.alloc(x.length * 4), pY = h.alloc(T * ldy * 4);
          h.f32(pW, panelsLength(rows, cols)).set(toPanels(w, rows, cols)); h.f32(pX, x.length).set(x);
          for (let rep = 0; rep < 3; rep++) { // a few times: slices taken by both threads at once, each in its own scratch
            h.f32(pY, T * ldy).fill(Number.NaN);
            k.gemmPanels(pW, rows, cols, T, pX, ldx, pY, ldy);
            checkClose(block(h.f32(pY, T * ldy), 0, ldy, T, rows), refGemm(false, true, T, rows, cols, x, 0, ldx, w, 0, cols, null, 0, rows), `gemmPanels ${rows}x${cols}, T ${T}`);
            for (let r = 0; r < T; r++) for (let i = rows; i < ldy; i++) assert.ok(Number.isNaN(h.f32(pY, T * ldy)[r * ldy + i]), 'wrote between rows of Y');
          }
          h.free(pW); h.free(pX); h.free(pY);
        }
      } finally {
        k.dispose();
      }
    });

    test(`gemm and matmul through cblas_sgemm, ${threads} thread(s)`, (t) => {
      const k = createKernels({ threads });
      try {
        if (!k.blas) { t.skip('OpenBLAS or koffi not available'); return; }
        let seed = 6000;
        for (const [M, N, K] of GEMM_SIZES) {
          for (const [tA, tB] of TRANSPOSES) {
            const lda = (tA ? M : K) + 1, ldb = (tB ? K : N) + 2, ldc = N + 1;
            const a = randArray(4 + (tA ? K : M) * lda, seed++), b = randArray(2 + (tB ? N : K) * ldb, seed++);
            const c = randArray(M * ldc + 1, seed++);
            k.matmul(tA, tB, M, N, K, a, 4, lda, b, 2, ldb, c, 1, ldc);
            checkClose(block(c, 1, ldc, M, N), refGemm(tA, tB, M, N, K, a, 4, lda, b, 2, ldb, null, 0, ldc), `blas matmul ${M}x${N}x${K} ${tA} ${tB}`);
            // Resident-pointer gemm with accumulate.
            const h = k.heap;
            const pA = h.alloc(a.length * 4), pB = h.alloc(b.length * 4), pC = h.alloc(c.length * 4);
            h.f32(pA, a.length).set(a); h.f32(pB, b.length).set(b); h.f32(pC, c.length).set(c);
            k.gemm(tA, tB, M, N, K, pA + 16, lda, pB + 8, ldb, pC + 4, ldc, true);
            checkClose(block(h.f32(pC, c.length), 1, ldc, M, N), refGemm(tA, tB, M, N, K, a, 4, lda, b, 2, ldb, c, 1, ldc), `blas gemm acc ${M}x${N}x${K} ${tA} ${tB}`);
            h.free(pA); h.free(pB); h.free(pC);
          }
        }
      } finally {
        k.dispose();
      }
    });
  }
});

for (const threads of [1, 2]) {
  describe(`cpu kernels, ${threads} thread(s): decoder kernels (gemmSmallM, attention)`, () => {
    let k: CpuKernels;
    before(() => { k = createKernels({ threads, blas: false }); });
    after(() => k.dispose());

    test('gemmSmallM: C = A·B for few rows, odd and wide N (16-column panels, tails, thread splits)', () => {
      let seed = 9000;
      // [M, N, K]: odd rows (the 1-row tail), N not a multiple of 16, and wide enough to be split across threads.
      for (const [M, N, K] of [[1, 1, 1], [2, 16, 3], [3, 17, 5], [4, 40, 33], [5, 64, 64], [16, 64, 192], [4, 1000, 300], [7, 2063, 130]]) {
        const h = k.heap;
        const pA = h.alloc(M * K * 4), pB = h.alloc(K * N * 4), pC = h.alloc(M * N * 4 + 4);
        const a = randArray(M * K, seed++), b = randArray(K * N, seed++);
        h.f32(pA, a.length).set(a); h.f32(pB, b.length).set(b);
        h.f32(pC, M * N).fill(Number.NaN); // overwritten, not accumulated
        const sentinel = h.f32(pC + M * N * 4, 1); sentinel[0] = 42;
        k.gemmSmallM(pA, pB, pC, M, N, K);
        const what = `gemmSmallM ${M}x${N}x${K}`;
        const want = refGemm(false, false, M, N, K, a, 0, K, b, 0, N, null, 0, N);
        checkClose(h.f32(pC, M * N), want, what);
        assert.equal(h.f32(pC + M * N * 4, 1)[0], 42, `${what}: wrote past C`);
        if (N % 16 === 0) {
          // The same product with B in column panels: the same sums in the same order.
          const row = Float32Array.from(h.f32(pC, M * N));
          h.f32(pB, b.length).set(toColumnPanels(b, K, N));
          h.f32(pC, M * N).fill(Number.NaN);
          k.gemmSmallM(pA, pB, pC, M, N, K, true);
          assert.deepEqual(Array.from(h.f32(pC, M * N)), Array.from(row), `${what}, B in column panels`);
          assert.equal(h.f32(pC + M * N * 4, 1)[0], 42, `${what}, panels: wrote past C`);
        } else {
          assert.throws(() => k.gemmSmallM(pA, pB, pC, M, N, K, true), /multiple of 16/);
        }
        h.free(pA); h.free(pB); h.free(pC);
      }
    });

    test('toColumnPanels: panel p holds columns 16p..16p+15 row after row; bad shapes are rejected', () => {
      const K = 3, N = 32, b = Float32Array.from({ length: K * N }, (_, i) => i);
      const p = toColumnPanels(b, K, N);
      for (let pp = 0; pp < N / 16; pp++) for (let kk = 0; kk < K; kk++) for (let c = 0; c < 16; c++) {
        assert.equal(p[(pp * K + kk) * 16 + c], b[kk * N + 16 * pp + c]);
      }
      assert.throws(() => toColumnPanels(b, K, 24), RangeError);
      assert.throws(() => toColumnPanels(b.subarray(1), K, N), RangeError);
    });

    test('attention: all heads, grouped kv heads, head- and position-major caches, against a float64 softmax reference', () => {
      let seed = 9500;
      // [H, group, T, hd, ctx]: one position, odd head size (scalar tail), grouped-query heads; the last
      // three are large enough for the threads to share the heads (whole groups, uneven chunks).
      // T covers every remainder mod 4 (the kernel takes keys and values four at a time).
      for (const [H, group, T, hd, ctx] of [[1, 1, 1, 4, 1], [2, 1, 5, 6, 7], [3, 1, 7, 8, 9], [4, 2, 9, 16, 12], [6, 3, 33, 7, 40], [16, 1, 40, 64, 48],
        [12, 3, 100, 32, 110], [10, 2, 70, 50, 80]]) {
        const Hkv = H / group, h = k.heap, scale = 1 / Math.sqrt(hd);
        const q = randArray(H * hd, seed++), K = randArray(Hkv * ctx * hd, seed++), V = randArray(Hkv * ctx * hd, seed++);
        const pQ = h.alloc(q.length * 4), pK = h.alloc(K.length * 4), pV = h.alloc(V.length * 4);
        const pO = h.alloc(H * hd * 4), pS = h.alloc(H * T * 4);
        for (const layout of ['head-major', 'position-major']) {
          const pm = layout === 'position-major';
          h.f32(pQ, q.length).set(q); h.f32(pK, K.length).set(pm ? positionMajor(K, Hkv, ctx, hd) : K); h.f32(pV, V.length).set(pm ? positionMajor(V, Hkv, ctx, hd) : V);
          h.f32(pO, H * hd).fill(Number.NaN);
          k.attention(pQ, pK, pV, pO, pS, H, group, T, hd, pm ? hd : ctx * hd, pm ? Hkv * hd : hd, scale);
          const got = h.f32(pO, H * hd);
          // Reference: float64 throughout. The kernel's p carries the float32 error of the
          // scores (a dot of hd terms) through exp, so each output (a sum of T terms p·v
          // with Σp = 1, |v| ≤ 1) is within ~(hd·|s| + T)·u·a few of it: 1e-5 is ~100x that.
          for (let hh = 0; hh < H; hh++) {
            const g = Math.floor(hh / group), base = g * ctx * hd;
            const s = new Float64Array(T);
            for (let t = 0; t < T; t++) {
              let d = 0;
              for (let i = 0; i < hd; i++) d += q[hh * hd + i] * K[base + t * hd + i];
              s[t] = d * scale;
            }
            const mx = Math.max(...s);
            let sum = 0;
            for (let t = 0; t < T; t++) { s[t] = Math.exp(s[t] - mx); sum += s[t]; }
            for (let i = 0; i < hd; i++) {
              let o = 0;
              for (let t = 0; t < T; t++) o += (s[t] / sum) * V[base + t * hd + i];
              const err = Math.abs(got[hh * hd + i] - o);
              if (!(err <= 1e-5)) assert.fail(`attention ${layout} H=${H} group=${group} T=${T} hd=${hd}: head ${hh} [${i}]: got ${got[hh * hd + i]}, want ${o}`);
            }
          }
        }
        h.free(pQ); h.free(pK); h.free(pV); h.free(pO); h.free(pS);
      }
    });

    test('mulRows: rows shared between threads from 2^16 floats, each product the exact float32 rounding', () => {
      const h = k.heap, rows = 64, n = 1100; // 70400 floats
      const x = randArray(n, 9990), D = randArray(rows * n, 9991);
      const pX = h.alloc(n * 4), pD = h.alloc(rows * n * 4), pO = h.alloc(rows * n * 4 + 4);
      h.f32(pX, n).set(x); h.f32(pD, rows * n).set(D); h.f32(pO + rows * n * 4, 1)[0] = 42;
      k.mulRows(pX, pD, pO, rows, n);
      const got = h.f32(pO, rows * n);
      for (let i = 0; i < rows * n; i++) if (got[i] !== Math.fround(x[i % n] * D[i])) assert.fail(`mulRows [${i}]: got ${got[i]}`);
      assert.equal(h.f32(pO + rows * n * 4, 1)[0], 42, 'wrote past the output');
      h.free(pX); h.free(pD); h.free(pO);
    });

    test('attention: a group that does not divide H is rejected', () => {
      assert.throws(() => k.attention(0, 0, 0, 0, 0, 3, 2, 1, 4, 4, 4, 1), RangeError);
    });
  });
}

describe('cpu kernels: decoder elementwise kernels (mulRows, addRows, im2col, norm, rope, copyRows)', () => {
  let k: CpuKernels;
  before(() => { k = createKernels({ threads: 1, blas: false }); });
  after(() => k.dispose());

  test('norm: layernorm (with and without bias) and rmsnorm within one float32 rounding of a float64 reference', () => {
    let seed = 9800;
    const h = k.heap;
    for (const n of [1, 2, 7, 64, 1027]) {
      // An offset mean, so that layernorm's centring matters.
      const x = randArray(n, seed++).map((v) => v * 3 + 0.75), w = randArray(n, seed++), b = randArray(n, seed++);
      const pX = h.alloc(n * 4), pW = h.alloc(n * 4), pB = h.alloc(n * 4), pO = h.alloc(n * 4 + 4);
      h.f32(pX, n).set(x); h.f32(pW, n).set(w); h.f32(pB, n).set(b);
      const eps = 1e-5;
      let mean = 0;
      for (let i = 0; i < n; i++) mean += x[i];
      mean /= n;
      let v = 0, ss = 0;
      for (let i = 0; i < n; i++) { v += (x[i] - mean) ** 2; ss += x[i] * x[i]; }
      const inv = 1 / Math.sqrt(v / n + eps), invRms = 1 / Math.sqrt(ss / n + eps);
      const cases: [string, number | null, boolean, (i: number) => number][] = [
        ['layernorm + bias', pB, false, (i) => (x[i] - mean) * inv * w[i] + b[i]],
        ['layernorm', null, false, (i) => (x[i] - mean) * inv * w[i]],
        ['rmsnorm', null, true, (i) => x[i] * invRms * w[i]],
      ];
      for (const [what, bias, rms, ref] of cases) {
        h.f32(pO + n * 4, 1)[0] = 42;
        k.norm(pX, pW, bias, pO, n, eps, rms);
        const got = h.f32(pO, n);
        for (let i = 0; i < n; i++) {
          const want = ref(i);
          // Rounded once from float64: within one float32 ulp of the float64 value.
          if (!(Math.abs(got[i] - want) <= Math.abs(want) * 2 ** -23 + 1e-30)) assert.fail(`${what} n=${n} [${i}]: got ${got[i]}, want ${want}`);
        }
        assert.equal(h.f32(pO + n * 4, 1)[0], 42, `${what}: wrote past the output`);
      }
      h.free(pX); h.free(pW); h.free(pB); h.free(pO);
    }
  });

  test('rope: adjacent pairs rotated in float64 and rounded once, every head, in place; an odd head size is rejected', () => {
    const h = k.heap;
    for (const [nHeads, hd, pos] of [[1, 2, 0], [3, 8, 5], [16, 64, 1000]]) {
      const v0 = randArray(nHeads * hd + 1, 9900 + hd), pV = h.alloc((nHeads * hd + 1) * 4), pT = h.alloc(hd * 8);
      h.f32(pV, nHeads * hd + 1).set(v0);
      const t = new Float64Array(h.memories[0].buffer, pT, hd);
      for (let i = 0; i < hd / 2; i++) { const a = pos * 10000 ** (-2 * i / hd); t[i] = Math.cos(a); t[hd / 2 + i] = Math.sin(a); }
      k.rope(pV, nHeads, hd, pT);
      const got = h.f32(pV, nHeads * hd + 1);
      for (let r = 0; r < nHeads; r++) {
        for (let i = 0; i < hd / 2; i++) {
          const j = r * hd + 2 * i, cs = t[i], sn = t[hd / 2 + i];
          assert.equal(got[j], Math.fround(v0[j] * cs - v0[j + 1] * sn), `rope ${nHeads}x${hd} head ${r} pair ${i}`);
          assert.equal(got[j + 1], Math.fround(v0[j] * sn + v0[j + 1] * cs), `rope ${nHeads}x${hd} head ${r} pair ${i}`);
        }
      }
      assert.equal(got[nHeads * hd], v0[nHeads * hd], 'rope wrote past the heads');
      h.free(pV); h.free(pT);
    }
    assert.throws(() => k.rope(0, 1, 3, 0), /even head size/);
  });

  test('swiglu: silu(gate)·up within one float32 rounding of float64, also in place', () => {
    const h = k.heap;
    for (const n of [1, 7, 2730]) {
      const g = randArray(2 * n, 9960 + n).map((v) => v * 6); // gates over [-6, 6): both tails of the sigmoid
      const pH = h.alloc(2 * n * 4), pO = h.alloc(n * 4 + 4);
      const want = Array.from({ length: n }, (_, u) => (g[u] / (1 + Math.exp(-g[u]))) * g[n + u]);
      const check = (got: Float32Array, what: string) => {
        for (let u = 0; u < n; u++) {
          if (!(Math.abs(got[u] - want[u]) <= Math.abs(want[u]) * 2 ** -23 + 1e-30)) assert.fail(`${what} n=${n} [${u}]: got ${got[u]}, want ${want[u]}`);
        }
      };
      h.f32(pH, 2 * n).set(g); h.f32(pO + n * 4, 1)[0] = 42;
      k.swiglu(pH, pO, n);
      check(h.f32(pO, n), 'swiglu');
      assert.equal(h.f32(pO + n * 4, 1)[0], 42, 'wrote past the output');
      k.swiglu(pH, pH, n);
      check(h.f32(pH, n), 'swiglu in place');
      h.free(pH); h.free(pO);
    }
  });

  test('copyRows: strided rows, exact; nothing outside them is touched', () => {
    const h = k.heap;
    const rows = 5, n = 13, srcStride = 17, dstStride = 40;
    const src = randArray(rows * srcStride, 9950), dst0 = randArray(rows * dstStride, 9951);
    const pS = h.alloc(src.length * 4), pD = h.alloc(dst0.length * 4);
    h.f32(pS, src.length).set(src); h.f32(pD, dst0.length).set(dst0);
    k.copyRows(pD, dstStride, pS, srcStride, rows, n);
    const got = h.f32(pD, dst0.length);
    for (let i = 0; i < got.length; i++) {
      const r = Math.floor(i / dstStride), c = i % dstStride;
      assert.equal(got[i], c < n ? src[r * srcStride + c] : dst0[i], `copyRows [${r}, ${c}]`);
    }
    h.free(pS); h.free(pD);
  });

  test('mulRows and addRows broadcast a row over rows (odd n: the scalar tail); products and sums are exact float32 roundings', () => {
    let seed = 9700;
    for (const [rows, n] of [[1, 1], [1, 7], [3, 5], [16, 64], [2, 1027]]) {
      const h = k.heap;
      const x = randArray(n, seed++), D = randArray(rows * n, seed++), y0 = randArray(rows * n, seed++);
      const pX = h.alloc(n * 4), pD = h.alloc(rows * n * 4), pO = h.alloc(rows * n * 4 + 4);
      h.f32(pX, n).set(x); h.f32(pD, rows * n).set(D);
      const sentinel = h.f32(pO + rows * n * 4, 1); sentinel[0] = 42;
      k.mulRows(pX, pD, pO, rows, n);
      let got = h.f32(pO, rows * n);
      for (let i = 0; i < rows * n; i++) assert.equal(got[i], Math.fround(x[i % n] * D[i]), `mulRows ${rows}x${n} [${i}]`);
      h.f32(pO, rows * n).set(y0);
      k.addRows(pO, pX, rows, n);
      got = h.f32(pO, rows * n);
      for (let i = 0; i < rows * n; i++) assert.equal(got[i], Math.fround(y0[i] + x[i % n]), `addRows ${rows}x${n} [${i}]`);
      assert.equal(h.f32(pO + rows * n * 4, 1)[0], 42, 'wrote past the output');
      h.free(pX); h.free(pD); h.free(pO);
    }
  });

  test('blockArgmax: per-block argmax, ties to the lower index, first and last in a block; NaN and signed zeros as the scalar scan', () => {
    let seed = 9900;
    // N = 6, 7: a scalar tail after the vector part (block 2 peaks in it).
    for (const [nb, N] of [[1, 1], [3, 1], [4, 8], [3, 6], [3, 7], [96, 64]]) {
      const h = k.heap;
      const l = randArray(nb * N, seed++);
      // Ties: block 0 all equal (-> its first index); block 1 ties its two largest (-> the lower); block 2 peaks last.
      if (nb > 2 && N > 2) { l.fill(0.5, 0, N); l[N + 1] = 2; l[N + N - 1] = 2; l[3 * N - 1] = 3; }
      const pL = h.alloc(l.length * 4), pI = h.alloc(nb * 4);
      h.f32(pL, l.length).set(l);
      k.blockArgmax(pL, pI, nb, N);
      const got = h.i32(pI, nb);
      for (let b = 0; b < nb; b++) {
        let best = b * N;
        for (let u = b * N + 1; u < (b + 1) * N; u++) if (l[u] > l[best]) best = u;
        assert.equal(got[b], best, `blockArgmax nb=${nb} N=${N} block ${b}`);
      }
      if (nb > 2 && N > 2) assert.deepEqual([got[0], got[1], got[2]], [0, N + 1, 3 * N - 1]);
      h.free(pL); h.free(pI);
    }
    // A NaN in a block (the scan skips it: NaN > x and x > NaN are both false), and -0 before +0 (equal: the first).
    const h = k.heap, pL = h.alloc(24 * 4), pI = h.alloc(3 * 4);
    const l = new Float32Array(24).fill(-1);
    l[1] = NaN; l[5] = 0.25; l[8] = NaN; l[12] = 4; l[17] = -0; l[19] = 0;
    h.f32(pL, 24).set(l);
    k.blockArgmax(pL, pI, 3, 8);
    const want = [0, 1, 2].map((b) => { let best = b * 8; for (let u = b * 8 + 1; u < b * 8 + 8; u++) if (l[u] > l[best]) best = u; return best; });
    assert.deepEqual(Array.from(h.i32(pI, 3)), want, 'NaN and signed zeros');
    assert.deepEqual(want, [5, 8, 17], 'the scalar reference itself');
    h.free(pL); h.free(pI);
  });

  test('im2col: causal rows from state and the current row, zero padding at the module edges', () => {
    let seed = 9800;
    for (const [S, M, Fl, Fw] of [[1, 4, 1, 1], [4, 3, 3, 3], [16, 8, 3, 1], [5, 2, 2, 5]]) {
      const d = S * M, h = k.heap, width = Fl * Fw * M;
      const state = randArray(Math.max(1, (Fl - 1) * d), seed++), cur = randArray(d, seed++);
      const pS = h.alloc(state.length * 4), pC = h.alloc(d * 4), pCol = h.alloc(S * width * 4);
      h.f32(pS, state.length).set(state); h.f32(pC, d).set(cur);
      h.f32(pCol, S * width).fill(Number.NaN);
      k.im2col(pS, pC, pCol, S, M, Fl, Fw, d);
      const got = h.f32(pCol, S * width), half = (Fw - 1) / 2;
      for (let s = 0; s < S; s++) {
        for (let i = 0; i < Fl; i++) {
          for (let j = 0; j < Fw; j++) {
            for (let c = 0; c < M; c++) {
              const sm = s + j - half;
              const want = sm < 0 || sm >= S ? 0 : i < Fl - 1 ? state[i * d + sm * M + c] : cur[sm * M + c];
              assert.equal(got[s * width + (i * Fw + j) * M + c], want, `im2col S=${S} M=${M} Fl=${Fl} Fw=${Fw} s=${s} i=${i} j=${j} c=${c}`);
            }
          }
        }
      }
      h.free(pS); h.free(pC); h.free(pCol);
    }
    assert.throws(() => k.im2col(0, 0, 0, 1, 1, 1, 2, 1), RangeError);
  });
});
