// Tests for the Sparse FF controller's screen (src/decode/screen.ts and the kernels
// gemvPanels and gemmPanels, which also serve the dense products, screenQuantize,
// pairDotI16 and screenArgmax): in both wasm builds, on 1 and 2 threads. The screen's
// one promise is that its per-block choice equals the argmax of
// the exact controller logits l[j] = bias[j] + Σ_i u[i]·C2[i, j], ties to the lower
// index, whatever the data; so besides random data the cases below are the ones where
// 16-bit weights cannot tell neurons apart (exact ties, neurons one float32 ulp apart,
// huge and tiny scales), and the error bound the choice rests on is checked directly.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkClose, describeEachWasmBuild, normalData, randArray, refProduct, rng } from './helpers.js';
import { createKernels, memoryOf, offsetOf, panelRow, panelsInto, panelsLength, toPanels, type CpuKernels } from '../src/backends/cpu/kernels.js';
import { buildScreen, screenQmax, type ControllerScreen } from '../src/decode/screen.js';

/** The bytes of the heap block at address p (in whichever wasm memory holds it). */
function bytesAt(k: CpuKernels, p: number, n: number): Uint8Array {
  return new Uint8Array(k.heap.memories[memoryOf(p)].buffer, offsetOf(p), n);
}

/** Copies `data` into a fresh heap block and returns its address. */
function put(k: CpuKernels, data: Float32Array | Int32Array | Uint32Array | Float64Array): number {
  const p = k.heap.alloc(Math.max(4, data.byteLength), 64);
  bytesAt(k, p, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return p;
}

/** The exact logits (float64 sums of float32 inputs) and their per-block argmax, ties to the lower index, NaNs skipped as blockArgmax does. */
function exactChoice(c2: Float32Array, bias: Float32Array, u: Float32Array, r: number, dff: number, N: number): { l: Float64Array; idx: number[] } {
  const l = new Float64Array(dff);
  for (let j = 0; j < dff; j++) {
    let s = 0;
    for (let i = 0; i < r; i++) s += u[i] * c2[i * dff + j];
    l[j] = s + bias[j];
  }
  const idx: number[] = [];
  for (let b = 0; b < dff / N; b++) {
    let best = b * N;
    for (let j = b * N + 1; j < (b + 1) * N; j++) if (l[j] > l[best]) best = j;
    idx.push(best);
  }
  return { l, idx };
}

/**
 * Runs the whole screen (quantize, integer products, screened argmax) on the heap; returns
 * the choices, the screened logits and the recomputed count. C2ᵀ goes to `pC2t` when
 * given (already filled), else to a fresh block.
 */
function runScreen(k: CpuKernels, sc: ControllerScreen, c2Bias: Float32Array, u: Float32Array, N: number, dff: number,
  given?: number): { idx: Int32Array; s: Float32Array; info: Float64Array; recomputed: number } {
  const nb = dff / N, r = sc.r;
  const pC2t = given ?? put(k, sc.c2t);
  const pP = put(k, sc.panels), pScale = put(k, sc.colScale), pMargin = put(k, sc.margin), pBias = put(k, c2Bias);
  const pU = put(k, u), pUq = put(k, new Uint32Array(4 * sc.groups)), pInfo = put(k, new Float64Array(4));
  const pAcc = put(k, new Int32Array(sc.cols)), pS = put(k, new Float32Array(dff)), pIdx = put(k, new Int32Array(nb).fill(-7));
  try {
    k.screenQuantize(pU, r, sc.qmax, pUq, pInfo);
    k.pairDotI16(pP, sc.groups, sc.cols, pUq, pAcc);
    const recomputed = k.screenArgmax(pAcc, pScale, pBias, pS, pIdx, nb, N, pMargin, pInfo, pC2t, r, pU);
    const info = new Float64Array(4);
    new Uint8Array(info.buffer).set(bytesAt(k, pInfo, 32));
    return { idx: Int32Array.from(k.heap.i32(pIdx, nb)), s: Float32Array.from(k.heap.f32(pS, dff)), info, recomputed };
  } finally {
    for (const p of [pP, pScale, pMargin, pBias, pU, pUq, pInfo, pAcc, pS, pIdx]) k.heap.free(p);
    if (given === undefined) k.heap.free(pC2t);
  }
}

/** Seeded normal float32 data, scaled. */
function gauss(n: number, seed: number, scale = 1): Float32Array {
  return Float32Array.from(normalData([n], seed, scale));
}

function checkChoice(k: CpuKernels, c2: Float32Array, bias: Float32Array, u: Float32Array, r: number, dff: number, N: number, what: string): number {
  const sc = buildScreen(c2, bias, r, dff, N);
  assert.ok(sc, `${what}: screen built`);
  const got = runScreen(k, sc, bias, u, N, dff);
  const want = exactChoice(c2, bias, u, r, dff, N);
  assert.deepEqual(Array.from(got.idx), want.idx, `${what}: per-block choice`);
  return got.recomputed;
}

describeEachWasmBuild('controller screen', (kernels) => {
  test('gemvPanels equals W·x in panels of 8 rows (any rows and columns: zero padding; split across threads)', () => {
    const k = kernels();
    let seed = 10;
    for (const [rows, cols] of [[8, 4], [1, 1], [13, 36], [7, 5], [21, 30], [96, 1024], [40, 2048], [5460, 1024], [1024, 2730]] as const) {
      const w = randArray(rows * cols, seed++), x = randArray(cols, seed++);
      // x and y with a NaN after them: gemvPanels must neither read past x nor write past y.
      const pW = put(k, toPanels(w, rows, cols)), pX = put(k, Float32Array.of(...x, Number.NaN)), pY = put(k, new Float32Array(rows + 1).fill(Number.NaN));
      k.gemvPanels(pW, rows, cols, pX, pY);
      checkClose(k.heap.f32(pY, rows), refProduct(rows, 1, cols, (i, c) => w[i * cols + c], (c) => x[c]), `gemvPanels ${rows}x${cols}`);
      assert.ok(Number.isNaN(k.heap.f32(pY, rows + 1)[rows]), `gemvPanels ${rows}x${cols} wrote past y`);
      for (const p of [pW, pX, pY]) k.heap.free(p);
    }
    assert.throws(() => toPanels(new Float32Array(8 * 6), 8, 5), /\[rows, cols\]/);
  });

  test('gemmPanels equals X·Wᵀ for T rows of X and Y with strides (the prefill product); panelsInto equals toPanels of the stacked transposes', () => {
    const k = kernels();
    let seed = 50;
    // With OpenBLAS, T >= 4 goes through it (cpu-kernels.test.ts); these kernels have none.
    for (const [rows, cols, T] of [[13, 30, 3], [96, 64, 1], [40, 1027, 5], [300, 129, 7], [600, 1024, 5], [523, 2001, 4]] as const) {
      const w = randArray(rows * cols, seed++), ldx = cols + 3, ldy = rows + 2;
      const X = randArray(T * ldx, seed++).map((v, i) => (i % ldx >= cols ? Number.NaN : v)); // NaN between rows: not read
      const pW = put(k, toPanels(w, rows, cols)), pX = put(k, X), pY = put(k, new Float32Array(T * ldy).fill(Number.NaN));
      k.gemmPanels(pW, rows, cols, T, pX, ldx, pY, ldy);
      const Y = k.heap.f32(pY, T * ldy);
      for (let t = 0; t < T; t++) {
        checkClose(Y.subarray(t * ldy, t * ldy + rows), refProduct(rows, 1, cols, (i, c) => w[i * cols + c], (c) => X[t * ldx + c]), `gemmPanels ${rows}x${cols}, row ${t}`);
        for (let i = rows; i < ldy; i++) assert.ok(Number.isNaN(Y[t * ldy + i]), `gemmPanels wrote between rows of Y (row ${t}, ${i})`);
      }
      for (const p of [pW, pX, pY]) k.heap.free(p);
    }
    // Input-major matrices [cols, out_k] stacked along the outputs = toPanels of [Σ out_k, cols]: outputs
    // 5 (a partial panel), then 21 starting mid-panel (3 rows to finish it, two whole panels, 2 more), then 16.
    const cols = 11, outs = [5, 21, 16], total = 42;
    const mats = outs.map((o, i) => ({ data: randArray(cols * o, 90 + i), cols: o }));
    const stacked = new Float32Array(total * cols);
    let r0 = 0;
    for (const { data, cols: o } of mats) {
      for (let c = 0; c < cols; c++) for (let j = 0; j < o; j++) stacked[(r0 + j) * cols + c] = data[c * o + j];
      r0 += o;
    }
    const got = new Float32Array(panelsLength(total, cols)).fill(7);
    panelsInto(got, cols, mats);
    assert.deepEqual(Array.from(got), Array.from(toPanels(stacked, total, cols)));
    // panelRow reads a row back (the decoder's embedding lookup in a tied, paneled embedding).
    const row = new Float32Array(cols);
    for (let r = 0; r < total; r++) {
      panelRow(got, cols, r, row);
      assert.deepEqual(Array.from(row), Array.from(stacked.subarray(r * cols, (r + 1) * cols)), `panelRow ${r}`);
    }
    assert.throws(() => panelsInto(new Float32Array(3), cols, [mats[0]]), /needs/);
    assert.throws(() => k.gemmPanels(0, 4, 8, 1, 0, 7, 0, 4), /ldx >= cols/);
  });

  test('pairDotI16 sums integer products exactly, at the largest magnitudes the bound allows (no int32 overflow)', () => {
    const k = kernels();
    // Integer columns whose largest entry is ±qmax have colScale 1 and cq = C2; an
    // integer u whose largest entry is ±qmax has uScale 1 and uq = u. The screened
    // logit is then bias + the exact integer sum, which a float64 reference holds exactly.
    let seed = 20;
    for (const [r, dff, N] of [[1, 8, 4], [8, 16, 8], [17, 100, 10], [96, 6144, 64], [32, 256, 256], [96, 1400, 20]] as const) {
      const qmax = screenQmax(r);
      const g = rng(seed++);
      const c2 = new Float32Array(r * dff), u = new Float32Array(r);
      // r = 8: u all ±qmax, so column 0's sum is r·qmax², the largest there can be.
      for (let i = 0; i < r; i++) u[i] = i === 0 || r === 8 ? (i % 2 === 0 ? qmax : -qmax) : Math.round((2 * g() - 1) * qmax);
      for (let j = 0; j < dff; j++) {
        for (let i = 0; i < r; i++) c2[i * dff + j] = j % 7 === 0 ? (i % 2 === 0 ? qmax : -qmax) * Math.sign(u[i] || 1) : Math.round((2 * g() - 1) * qmax);
        c2[(j % r) * dff + j] = j % 2 === 0 ? qmax : -qmax;
      }
      for (let i = 0; i < r; i++) if (u[i] === 0) u[i] = 1;
      const bias = new Float32Array(dff);
      const sc = buildScreen(c2, bias, r, dff, N);
      assert.ok(sc);
      const got = runScreen(k, sc, bias, u, N, dff);
      assert.equal(got.info[0], 1, 'uScale');
      const want = exactChoice(c2, bias, u, r, dff, N);
      for (let j = 0; j < dff; j++) {
        assert.ok(Math.abs(want.l[j]) < 2 ** 31, 'the reference sum fits an int32');
        assert.equal(got.s[j], Math.fround(want.l[j]), `r ${r}: screened logit ${j}`);
      }
      assert.deepEqual(Array.from(got.idx), want.idx, `r ${r}: choices`);
    }
  });

  test('screenQuantize: |uq| <= qmax, and the norms it reports bound the true ones from above, tightly', () => {
    const k = kernels();
    for (const [r, seed, scale] of [[96, 1, 1], [32, 2, 1e-30], [5, 3, 1e30], [1, 4, -3]] as const) {
      const u = gauss(r, seed, scale);
      const qmax = screenQmax(r);
      const pU = put(k, u), pUq = put(k, new Uint32Array(Math.ceil(r / 8) * 4)), pInfo = put(k, new Float64Array(4));
      k.screenQuantize(pU, r, qmax, pUq, pInfo);
      const info = new Float64Array(4);
      new Uint8Array(info.buffer).set(new Uint8Array(k.heap.memories[0].buffer, pInfo, 32));
      const words = k.heap.i32(pUq, Math.ceil(r / 2));
      let uu = 0, dd = 0, qq = 0;
      for (let i = 0; i < r; i++) {
        const q = (words[i >> 1] << (i & 1 ? 0 : 16)) >> 16;
        assert.ok(Math.abs(q) <= qmax, `|uq[${i}]| = ${Math.abs(q)} > qmax ${qmax}`);
        const dv = u[i] - info[0] * q;
        assert.ok(Math.abs(dv) <= info[0] / 2 * (1 + 1e-12), `u[${i}] rounded to the nearest step`);
        uu += u[i] * u[i]; dd += dv * dv; qq += q * q;
      }
      assert.equal(Math.fround(info[0]), info[0], 'uScale is a float32');
      const within = (got: number, want: number, what: string): void => {
        // The kernel rounds its float64 norms up by 2^-20; float64 sums in another order move them by ~1e-15.
        assert.ok(got >= want && got <= want * (1 + 2 ** -19) + 1e-300, `${what}: ${got} vs ${want}`);
      };
      within(info[1], Math.sqrt(uu), '‖u‖');
      within(info[2], Math.sqrt(dd), '‖du‖');
      within(info[3], info[0] * Math.sqrt(qq), 'uScale·‖uq‖');
      for (const p of [pU, pUq, pInfo]) k.heap.free(p);
    }
  });

  test('screened logits stay within the bound the choice rests on (random, skewed and spiky data)', () => {
    const k = kernels();
    let seed = 40;
    for (const [r, dff, N, kind] of [[96, 1024, 64, 'gauss'], [32, 512, 256, 'skewed'], [7, 60, 6, 'spiky'], [16, 64, 16, 'gauss']] as const) {
      const c2 = gauss(r * dff, seed++), u = gauss(r, seed++), bias = gauss(dff, seed++, 0.1);
      if (kind === 'skewed') for (let i = 0; i < r * dff; i++) c2[i] *= 2 ** ((i % 41) - 20);
      if (kind === 'spiky') { u.fill(1e-3); u[3] = 50; }
      const sc = buildScreen(c2, bias, r, dff, N);
      assert.ok(sc);
      const got = runScreen(k, sc, bias, u, N, dff);
      const want = exactChoice(c2, bias, u, r, dff, N);
      const [, unorm, dnorm, qnorm] = got.info;
      for (let b = 0; b < dff / N; b++) {
        const [A, B, C] = [sc.margin[3 * b], sc.margin[3 * b + 1], sc.margin[3 * b + 2]];
        const e = (unorm * A + dnorm * B + 2 ** -21 * (C + qnorm * B)) * (1 + 2 ** -10) + 1e-30;
        for (let j = b * N; j < (b + 1) * N; j++) {
          assert.ok(Math.abs(got.s[j] - want.l[j]) <= e, `${kind}: |s - l| = ${Math.abs(got.s[j] - want.l[j])} > e = ${e} at neuron ${j}`);
        }
      }
      assert.deepEqual(Array.from(got.idx), want.idx, `${kind}: choices`);
    }
  });

  test('random controllers: the exact choice, and the screen recomputes only a few neurons', () => {
    const k = kernels();
    let seed = 60;
    for (const [r, dff, N] of [[96, 6144, 64], [32, 4096, 256], [16, 48, 8], [5, 18, 6], [9, 8, 1]] as const) {
      let recomputed = 0;
      for (let t = 0; t < 4; t++) {
        recomputed += checkChoice(k, gauss(r * dff, seed++), gauss(dff, seed++, 0.2), gauss(r, seed++), r, dff, N, `r ${r}, d_ff ${dff}, N ${N}, trial ${t}`);
      }
      // A screen that recomputes everything would still choose right; this is what it is for.
      if (N > 1) assert.ok(recomputed <= 0.05 * 4 * dff, `recomputed ${recomputed} of ${4 * dff}`);
    }
  });

  test('ties and near-ties the 16-bit weights cannot see: exact ties go to the lower index, one-ulp differences to the larger', () => {
    const k = kernels();
    const r = 24, N = 16, dff = 6 * N, seed = 80;
    const u = gauss(r, seed);
    const base = gauss(r * dff, seed + 1), bias = new Float32Array(dff);
    const col = (j: number): Float32Array => Float32Array.from({ length: r }, (_, i) => base[i * dff + j]);
    const setCol = (c2: Float32Array, j: number, v: Float32Array): void => { for (let i = 0; i < r; i++) c2[i * dff + j] = v[i]; };
    // The block's best column, found exactly, copied or nudged elsewhere in the block.
    const c2 = base.slice();
    const best = exactChoice(c2, bias, u, r, dff, N).idx;
    // Block 0: an exact copy of the best column placed elsewhere -> the lower of the two wins.
    const copyAt = best[0] === 0 ? 1 : 0;
    setCol(c2, copyAt, col(best[0]));
    // Block 1: a copy one ulp larger in its largest-|u| weight, after the best -> the copy wins.
    const big = u.reduce((m, v, i) => (Math.abs(v) > Math.abs(u[m]) ? i : m), 0);
    const nudge = (v: Float32Array, up: boolean): Float32Array => {
      const w = v.slice(), bits = new Uint32Array(w.buffer);
      const grow = (u[big] > 0) === up;
      // One ulp away from zero grows |w|, toward zero shrinks it (w[big] is nonzero here).
      bits[big] += (grow === (w[big] > 0)) ? 1 : -1;
      return w;
    };
    const after1 = best[1] === 2 * N - 1 ? N : best[1] + 1;
    setCol(c2, after1, nudge(col(best[1]), true));
    // Block 2: a copy one ulp smaller elsewhere in the block -> the original still wins.
    const other2 = best[2] === 2 * N ? 2 * N + 1 : 2 * N;
    setCol(c2, other2, nudge(col(best[2]), false));
    // Block 3: every column equal -> the first.
    for (let j = 3 * N; j < 4 * N; j++) setCol(c2, j, col(3 * N));
    // Block 4: zero weights, the bias decides, with a tie between two maxima.
    for (let j = 4 * N; j < 5 * N; j++) { setCol(c2, j, new Float32Array(r)); bias[j] = (j % 5) * 0.25; }
    // Block 5: columns 2^±40 apart in scale.
    for (let j = 5 * N; j < 6 * N; j++) setCol(c2, j, col(j).map((v) => v * 2 ** (((j * 7) % 81) - 40)));
    const want = exactChoice(c2, bias, u, r, dff, N);
    const sc = buildScreen(c2, bias, r, dff, N);
    assert.ok(sc);
    const got = runScreen(k, sc, bias, u, N, dff);
    assert.deepEqual(Array.from(got.idx), want.idx, 'choices');
    assert.equal(got.idx[0], Math.min(copyAt, best[0]), 'an exact tie: the lower index');
    assert.equal(got.idx[1], after1, 'the one-ulp-larger copy wins');
    assert.equal(got.idx[2], best[2], 'the one-ulp-smaller copy loses');
    assert.equal(got.idx[3], 3 * N, 'all equal: the first');
    assert.ok(got.recomputed >= 2 * 3 + N, `the tied blocks were recomputed (${got.recomputed})`);
  });

  test('near-ties at the size of the quantization step: the screen must not decide them (400 blocks)', () => {
    const k = kernels();
    // Two leading neurons per block whose weights differ by about one int16 step: their
    // exact logits are close, and the screened ones are about as often in the wrong
    // order as in the right one. Only the error bound keeps both as candidates.
    const r = 24, N = 8, nb = 400, dff = N * nb, qmax = screenQmax(r);
    const g = rng(95);
    const c2 = new Float32Array(r * dff), bias = new Float32Array(dff), u = gauss(r, 96);
    for (let b = 0; b < nb; b++) {
      const a = gauss(r, 1000 + b);
      const step = Math.max(...a.map(Math.abs)) / qmax;
      const j1 = b * N + (b % N), j2 = b * N + ((b + 3) % N);
      for (let j = b * N; j < (b + 1) * N; j++) {
        for (let i = 0; i < r; i++) {
          const v = j === j1 ? a[i] : j === j2 ? a[i] + step * (g() - 0.5) * 2 : 0.3 * a[i] * (g() - 0.5);
          c2[i * dff + j] = v;
        }
      }
    }
    const got = checkChoice(k, c2, bias, u, r, dff, N, 'near-ties');
    // Most blocks' leaders are closer than the bound (this case exercises the recomputation).
    assert.ok(got >= nb / 2, `recomputed ${got} neurons in ${nb} blocks`);
  });

  test('u of zeros, and u with a NaN or an infinity, choose as the exact logits do', () => {
    const k = kernels();
    const r = 12, N = 8, dff = 32;
    const c2 = gauss(r * dff, 90), bias = gauss(dff, 91);
    // u = 0 leaves the bias: neurons 2 and 5 tie for block 0's maximum.
    bias[2] = bias[5] = Math.max(...bias.subarray(0, N)) + 1;
    checkChoice(k, c2, bias, new Float32Array(r), r, dff, N, 'u = 0');
    const zeros = buildScreen(c2, bias, r, dff, N);
    assert.ok(zeros);
    assert.equal(runScreen(k, zeros, bias, new Float32Array(r), N, dff).idx[0], 2, 'u = 0: the tie goes to the lower index');
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const u = gauss(r, 92);
      u[4] = bad;
      const sc = buildScreen(c2, bias, r, dff, N);
      assert.ok(sc);
      const got = runScreen(k, sc, bias, u, N, dff);
      assert.deepEqual(Array.from(got.idx), exactChoice(c2, bias, u, r, dff, N).idx, `u[4] = ${bad}`);
      assert.equal(got.recomputed, dff, 'every neuron recomputed');
    }
  });
});

describe('controller screen across wasm memories', () => {
  test('C2ᵀ in another memory than the other operands: all eight are staged, and the choice is the same', () => {
    // 12 MiB memories (the kernels' own scratch needs a few): fillers take memory 0 until
    // one opens memory 1, where C2ᵀ then goes; the fillers in memory 0 are freed, and
    // every other operand lands there.
    const k = createKernels({ threads: 2, blas: false, memoryBytes: 12 * 2 ** 20 });
    try {
      const r = 24, N = 64, dff = 2048;
      const c2 = gauss(r * dff, 120), bias = gauss(dff, 121, 0.2), u = gauss(r, 122);
      // Every third block's leader copied to another of its neurons (an exact tie), so the
      // exact recomputation reads C2ᵀ across memories.
      const best = exactChoice(c2, bias, u, r, dff, N).idx;
      for (let b = 0; b < dff / N; b += 3) {
        const to = best[b] === b * N ? b * N + 1 : b * N;
        for (let i = 0; i < r; i++) c2[i * dff + to] = c2[i * dff + best[b]];
        bias[to] = bias[best[b]];
      }
      const sc = buildScreen(c2, bias, r, dff, N);
      assert.ok(sc);
      const fillers: number[] = [];
      while (fillers.length === 0 || memoryOf(fillers[fillers.length - 1]) === 0) fillers.push(k.heap.alloc(64 * 1024)); // smaller than C2ᵀ (192 KB)
      const pC2t = put(k, sc.c2t);
      for (const f of fillers) k.heap.free(f);
      const got = runScreen(k, sc, bias, u, N, dff, pC2t);
      assert.equal(memoryOf(pC2t), 1, 'C2ᵀ in memory 1');
      const probe = k.heap.alloc(64);
      assert.equal(memoryOf(probe), 0, 'the other operands in memory 0');
      k.heap.free(probe);
      assert.deepEqual(Array.from(got.idx), exactChoice(c2, bias, u, r, dff, N).idx, 'choices');
      assert.ok(got.recomputed >= 2 * Math.ceil(dff / N / 3), `recomputed ${got.recomputed}`);
    } finally {
      k.dispose();
    }
  });
});

describe('buildScreen', () => {
  test('qmax keeps r int16 products inside an int32', () => {
    for (const r of [1, 2, 3, 8, 32, 96, 1000, 65536]) {
      const q = screenQmax(r);
      assert.ok(q >= 1 && q <= 32767 && r * q * q < 2 ** 31 && (q === 32767 || r * (q + 1) ** 2 >= 2 ** 31), `r ${r}: qmax ${q}`);
    }
  });

  test('refuses weights it cannot scale (the decoder then keeps float32 C2), and shapes that do not match', () => {
    const c2 = gauss(4 * 8, 1), c = gauss(8, 2);
    assert.ok(buildScreen(c2, c, 4, 8, 4));
    for (const bad of [Number.NaN, Number.NEGATIVE_INFINITY]) {
      const w = c2.slice(); w[9] = bad;
      assert.equal(buildScreen(w, c, 4, 8, 4), null, `C2 with ${bad}`);
      const b = c.slice(); b[3] = bad;
      assert.equal(buildScreen(c2, b, 4, 8, 4), null, `bias with ${bad}`);
    }
    const huge = c2.slice(); huge[0] = 3.4e38;
    const sc = buildScreen(huge, c, 4, 8, 4);
    assert.ok(sc, 'a column near float32 max still scales');
    assert.ok(Number.isFinite(sc.colScale[0]) && sc.margin.every(Number.isFinite), 'its scale and margins are finite');
    assert.throws(() => buildScreen(c2, c, 4, 8, 3), /do not match/);
    assert.throws(() => buildScreen(c2, c.subarray(1), 4, 8, 4), /do not match/);
  });
});
