// AssemblyScript float32 kernels for the CPU backend (compiled by scripts/build-wasm.mjs
// twice, with SIMD + threads and imported shared memory: build/wasm/kernels.wasm, and
// build/wasm/kernels-relaxed.wasm with relaxed SIMD, where every multiply-accumulate is
// one fused f32x4.relaxed_madd; module.ts picks one at load time).
//
// What this is: leaf loops only. Every function works on raw byte pointers into the
// one shared linear memory and on an explicit [lo, hi) range of the work, so the JS
// side (src/backends/cpu/kernels.ts) can split a call across worker threads that each
// instantiate this same module over the same memory.
// What this is not: no allocation, no GC objects, no strings, no globals with state;
// the module is reentrant and all threads may run it at once on disjoint outputs.
// Layout: float32 row-major; `ld*` arguments are row strides in elements.
//
// Performance notes (V8 on x64, Node 20; FMA only in the relaxed build, see madd):
// - V8 gives us 15 usable xmm registers (xmm15 is its scratch). GEMM
//   uses 4x8 micro-tiles: 8 accumulators + 2 B vectors + broadcasts and mul
//   temporaries (in the plain build each product needs a temporary register).
// - Matrix-vector kernels are memory-bound: they keep 8 weight rows in flight at once
//   with one accumulator each (see the notes above gemv).

// ---------------------------------------------------------------------------------
// Read bandwidth: sum of n floats at p (8 independent accumulators, 256 B / iteration).
// This is the ceiling the matrix-vector kernels are measured against, so it is the
// best plain stream we found (dev/gemv/05: 4 and 8 accumulators read the same).
export function readSum(p: usize, n: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
  let i = 0;
  for (; i + 64 <= n; i += 64) {
    a0 = f32x4.add(a0, v128.load(p, 0));
    a1 = f32x4.add(a1, v128.load(p, 16));
    a2 = f32x4.add(a2, v128.load(p, 32));
    a3 = f32x4.add(a3, v128.load(p, 48));
    a4 = f32x4.add(a4, v128.load(p, 64));
    a5 = f32x4.add(a5, v128.load(p, 80));
    a6 = f32x4.add(a6, v128.load(p, 96));
    a7 = f32x4.add(a7, v128.load(p, 112));
    a0 = f32x4.add(a0, v128.load(p, 128));
    a1 = f32x4.add(a1, v128.load(p, 144));
    a2 = f32x4.add(a2, v128.load(p, 160));
    a3 = f32x4.add(a3, v128.load(p, 176));
    a4 = f32x4.add(a4, v128.load(p, 192));
    a5 = f32x4.add(a5, v128.load(p, 208));
    a6 = f32x4.add(a6, v128.load(p, 224));
    a7 = f32x4.add(a7, v128.load(p, 240));
    p += 256;
  }
  for (; i + 4 <= n; i += 4) { a0 = f32x4.add(a0, v128.load(p)); p += 16; }
  const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)));
  let r = hsum(s);
  for (; i < n; i++) { r += load<f32>(p); p += 4; }
  return r;
}

// ---------------------------------------------------------------------------------
// Matrix-vector kernels. Memory-bound: the aim is to stream the weights at the read
// rate. Measured (dev/gemv/05, 06): 8 rows in flight with one 4-float accumulator each
// (x loaded once per 8 weight vectors) streams fastest; 4 rows x 2 vectors, 12 rows
// (register spills) and column tiles that keep x in L1 are all slower.
@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// Lanes 0-1 and 2-3 of four floats as float64x2 (exact), and the sum of a float64x2's lanes.
@inline function lo64(v: v128): v128 { return f64x2.promote_low_f32x4(v); }
@inline function hi64(v: v128): v128 { return f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 2, 3)); }
@inline function hsum64(v: v128): f64 { return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1); }

// acc + a·b on 4 lanes: every vector multiply-accumulate of every kernel goes through
// here, so the one source compiles to both builds. ASC_FEATURE_RELAXED_SIMD is a
// compile-time constant (`--enable relaxed-simd`), so the dead branch is never emitted:
// the relaxed build is one f32x4.relaxed_madd (vfmadd on x64 with FMA3: one instruction,
// one rounding, no temporary register), the plain build the mul + add it always was.
// relaxed_madd may also round twice on hardware without FMA; either way the error
// bound of a K-term dot product, gamma(K) · Σ|a·b|, holds (test/kernels-simd.test.ts).
@inline function madd(a: v128, b: v128, acc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, acc);
  return f32x4.add(acc, f32x4.mul(a, b));
}

// Stores the dot products of 8 rows (byte pointers w0..w7, `cols` floats each) with x
// as 8 consecutive floats at pY.
@inline function dot8(w0: usize, w1: usize, w2: usize, w3: usize, w4: usize, w5: usize, w6: usize, w7: usize,
  pX: usize, cols: i32, pY: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
  const end4 = cols & ~3;
  const oe: usize = <usize>end4 << 2;
  for (let o: usize = 0; o < oe; o += 16) {
    const x = v128.load(pX + o);
    a0 = madd(v128.load(w0 + o), x, a0);
    a1 = madd(v128.load(w1 + o), x, a1);
    a2 = madd(v128.load(w2 + o), x, a2);
    a3 = madd(v128.load(w3 + o), x, a3);
    a4 = madd(v128.load(w4 + o), x, a4);
    a5 = madd(v128.load(w5 + o), x, a5);
    a6 = madd(v128.load(w6 + o), x, a6);
    a7 = madd(v128.load(w7 + o), x, a7);
  }
  let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
  let s4 = hsum(a4), s5 = hsum(a5), s6 = hsum(a6), s7 = hsum(a7);
  for (let c = end4; c < cols; c++) {
    const off: usize = <usize>c << 2;
    const x = load<f32>(pX + off);
    s0 += load<f32>(w0 + off) * x; s1 += load<f32>(w1 + off) * x;
    s2 += load<f32>(w2 + off) * x; s3 += load<f32>(w3 + off) * x;
    s4 += load<f32>(w4 + off) * x; s5 += load<f32>(w5 + off) * x;
    s6 += load<f32>(w6 + off) * x; s7 += load<f32>(w7 + off) * x;
  }
  store<f32>(pY, s0); store<f32>(pY, s1, 4); store<f32>(pY, s2, 8); store<f32>(pY, s3, 12);
  store<f32>(pY, s4, 16); store<f32>(pY, s5, 20); store<f32>(pY, s6, 24); store<f32>(pY, s7, 28);
}

@inline function dot1(w0: usize, pX: usize, cols: i32): f32 {
  let a0 = f32x4.splat(0), b0 = f32x4.splat(0);
  const end8 = cols & ~7;
  let o: usize = 0;
  const oe: usize = <usize>end8 << 2;
  for (; o < oe; o += 32) {
    a0 = madd(v128.load(w0 + o), v128.load(pX + o), a0);
    b0 = madd(v128.load(w0 + o, 16), v128.load(pX + o, 16), b0);
  }
  let s = hsum(f32x4.add(a0, b0));
  for (let c = end8; c < cols; c++) {
    const off: usize = <usize>c << 2;
    s += load<f32>(w0 + off) * load<f32>(pX + off);
  }
  return s;
}

// y[r] = W[r, :] · x for r in [r0, r1).  W: [rows, cols] at pW; x: [cols]; y: [rows].
export function gemv(pW: usize, cols: i32, pX: usize, pY: usize, r0: i32, r1: i32): void {
  const rb: usize = <usize>cols << 2;
  let r = r0;
  for (; r + 8 <= r1; r += 8) {
    const w0 = pW + <usize>r * rb;
    const w4 = w0 + 4 * rb;
    dot8(w0, w0 + rb, w0 + 2 * rb, w0 + 3 * rb, w4, w4 + rb, w4 + 2 * rb, w4 + 3 * rb, pX, cols, pY + (<usize>r << 2));
  }
  for (; r < r1; r++) store<f32>(pY + (<usize>r << 2), dot1(pW + <usize>r * rb, pX, cols));
}

// Y[t, r] = W[r, :] · X[t, :] for t < T and the rows r < rows of panels [g0, g1). W is
// stored in panels of 8 rows, in the order this loop reads them: float32
// [ceil(rows/8)][ceil(cols/4)][8 rows][4 columns], zero-padded (toPanels in kernels.ts);
// X's rows are ldx floats apart, Y's ldy. A matrix read once per token is then one
// contiguous stream instead of eight short ones per pass (which the hardware prefetcher
// picks up late), and x is loaded once per 8 rows: this streams the dense decoder's
// weights faster than OpenBLAS's sgemv does (dev/gemv/15_dense_panels_lab.mjs). With
// T > 1 (prefill) each panel comes from memory once and from cache for X's other rows.
export function gemvPanels(pW: usize, rows: i32, cols: i32, pX: usize, ldx: i32, T: i32, pY: usize, ldy: i32, g0: i32, g1: i32): void {
  const groups = (cols + 3) >> 2, tail = cols & 3;
  const pb: usize = <usize>groups << 7; // bytes per panel: 8 rows of groups·4 floats
  const oe: usize = <usize>(cols - tail) << 2; // bytes of x in whole groups
  for (let g = g0; g < g1; g++) {
    const wp = pW + <usize>g * pb;
    const live = min(8, rows - (g << 3));
    for (let t = 0; t < T; t++) {
      const px = pX + ((<usize>t * <usize>ldx) << 2);
      let w = wp;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
      for (let o: usize = 0; o < oe; o += 16) {
        const x = v128.load(px + o);
        a0 = madd(v128.load(w), x, a0); a1 = madd(v128.load(w, 16), x, a1);
        a2 = madd(v128.load(w, 32), x, a2); a3 = madd(v128.load(w, 48), x, a3);
        a4 = madd(v128.load(w, 64), x, a4); a5 = madd(v128.load(w, 80), x, a5);
        a6 = madd(v128.load(w, 96), x, a6); a7 = madd(v128.load(w, 112), x, a7);
        w += 128;
      }
      if (tail !== 0) {
        // The last group: W is zero past `cols`; x is not read there (it may hold anything).
        const xe = px + oe;
        let x = f32x4.replace_lane(f32x4.splat(0), 0, load<f32>(xe));
        if (tail > 1) x = f32x4.replace_lane(x, 1, load<f32>(xe, 4));
        if (tail > 2) x = f32x4.replace_lane(x, 2, load<f32>(xe, 8));
        a0 = madd(v128.load(w), x, a0); a1 = madd(v128.load(w, 16), x, a1);
        a2 = madd(v128.load(w, 32), x, a2); a3 = madd(v128.load(w, 48), x, a3);
        a4 = madd(v128.load(w, 64), x, a4); a5 = madd(v128.load(w, 80), x, a5);
        a6 = madd(v128.load(w, 96), x, a6); a7 = madd(v128.load(w, 112), x, a7);
      }
      const y = pY + ((<usize>t * <usize>ldy + (<usize>g << 3)) << 2);
      if (live === 8) {
        store<f32>(y, hsum(a0)); store<f32>(y, hsum(a1), 4); store<f32>(y, hsum(a2), 8); store<f32>(y, hsum(a3), 12);
        store<f32>(y, hsum(a4), 16); store<f32>(y, hsum(a5), 20); store<f32>(y, hsum(a6), 24); store<f32>(y, hsum(a7), 28);
      } else {
        // The last panel of a matrix whose rows are not a multiple of 8: only its live rows.
        store<f32>(y, hsum(a0));
        if (live > 1) store<f32>(y, hsum(a1), 4);
        if (live > 2) store<f32>(y, hsum(a2), 8);
        if (live > 3) store<f32>(y, hsum(a3), 12);
        if (live > 4) store<f32>(y, hsum(a4), 16);
        if (live > 5) store<f32>(y, hsum(a5), 20);
        if (live > 6) store<f32>(y, hsum(a6), 24);
      }
    }
  }
}

// out[c, r - r0] = W[r, c] for r in [r0, r1) (r0 a multiple of 8) and c < cols: a slice of
// W, stored in gemvPanels' panels, back as input-major [cols, r1 - r0] (rows ldo floats
// apart), the layout OpenBLAS's unpacked small-matrix sgemm runs fastest on (~60 GFLOP/s
// here with 16 rows of X, against ~20 for [rows, cols] transposed). For the decoder's
// prefill, where a chunk of tokens is worth OpenBLAS's products. Each group of 8 rows × 4
// columns is transposed in registers into 4 rows of out, 8 floats each.
export function unpanel(pW: usize, cols: i32, r0: i32, r1: i32, pOut: usize, ldo: i32): void {
  const groups = (cols + 3) >> 2, full = cols >> 2;
  const pb: usize = <usize>groups << 7;
  const ob: usize = <usize>ldo << 2; // bytes per output row
  for (let r = r0; r < r1; r += 8) {
    const live = min(8, r1 - r);
    const wp = pW + <usize>(r >> 3) * pb;
    const o = pOut + (<usize>(r - r0) << 2);
    if (live < 8) {
      // The last panel of a matrix whose rows are not a multiple of 8.
      for (let k = 0; k < live; k++) {
        for (let c = 0; c < cols; c++) {
          store<f32>(o + <usize>c * ob + (<usize>k << 2), load<f32>(wp + (<usize>(c >> 2) << 7) + (<usize>k << 4) + (<usize>(c & 3) << 2)));
        }
      }
      continue;
    }
    let w = wp;
    for (let q = 0; q < groups; q++) {
      const v0 = v128.load(w), v1 = v128.load(w, 16), v2 = v128.load(w, 32), v3 = v128.load(w, 48);
      const v4 = v128.load(w, 64), v5 = v128.load(w, 80), v6 = v128.load(w, 96), v7 = v128.load(w, 112);
      // 4×4 transposes of rows 0-3 (s) and rows 4-7 (t).
      const s0 = i32x4.shuffle(v0, v1, 0, 4, 1, 5), s1 = i32x4.shuffle(v2, v3, 0, 4, 1, 5);
      const s2 = i32x4.shuffle(v0, v1, 2, 6, 3, 7), s3 = i32x4.shuffle(v2, v3, 2, 6, 3, 7);
      const t0 = i32x4.shuffle(v4, v5, 0, 4, 1, 5), t1 = i32x4.shuffle(v6, v7, 0, 4, 1, 5);
      const t2 = i32x4.shuffle(v4, v5, 2, 6, 3, 7), t3 = i32x4.shuffle(v6, v7, 2, 6, 3, 7);
      const dst = o + (<usize>q << 2) * ob;
      v128.store(dst, i32x4.shuffle(s0, s1, 0, 1, 4, 5)); v128.store(dst, i32x4.shuffle(t0, t1, 0, 1, 4, 5), 16);
      if (q < full || (cols & 3) > 1) { v128.store(dst + ob, i32x4.shuffle(s0, s1, 2, 3, 6, 7)); v128.store(dst + ob, i32x4.shuffle(t0, t1, 2, 3, 6, 7), 16); }
      if (q < full || (cols & 3) > 2) { v128.store(dst + 2 * ob, i32x4.shuffle(s2, s3, 0, 1, 4, 5)); v128.store(dst + 2 * ob, i32x4.shuffle(t2, t3, 0, 1, 4, 5), 16); }
      if (q < full) { v128.store(dst + 3 * ob, i32x4.shuffle(s2, s3, 2, 3, 6, 7)); v128.store(dst + 3 * ob, i32x4.shuffle(t2, t3, 2, 3, 6, 7), 16); }
      w += 128;
    }
  }
}

// y[i] = W[idx[i], :] · x for i in [i0, i1).  W: rows of cols floats, ld floats apart;
// idx: int32 [n] at pIdx; y: [n]. Eight selected rows in flight.
export function gemvRows(pW: usize, cols: i32, ld: i32, pIdx: usize, pX: usize, pY: usize, i0: i32, i1: i32): void {
  const rb: usize = <usize>ld << 2;
  let i = i0;
  for (; i + 8 <= i1; i += 8) {
    const q = pIdx + (<usize>i << 2);
    dot8(pW + <usize>load<u32>(q) * rb, pW + <usize>load<u32>(q, 4) * rb,
      pW + <usize>load<u32>(q, 8) * rb, pW + <usize>load<u32>(q, 12) * rb,
      pW + <usize>load<u32>(q, 16) * rb, pW + <usize>load<u32>(q, 20) * rb,
      pW + <usize>load<u32>(q, 24) * rb, pW + <usize>load<u32>(q, 28) * rb, pX, cols, pY + (<usize>i << 2));
  }
  for (; i < i1; i++) {
    store<f32>(pY + (<usize>i << 2), dot1(pW + <usize>load<u32>(pIdx + (<usize>i << 2)) * rb, pX, cols));
  }
}

// y[c] += Σ_i coef[i] · W[idx[i], c] for every column c, i in [i0, i1); W's rows ld floats
// apart. idx: int32 [n]; coef: float32 [n]; y: [cols].  Threads split the index list, each
// into its own y (the JS side adds the partial ys), so every row is one whole stream.
// Eight rows per pass over y (y is read and written once per 8 weight vectors).
export function axpyRows(pW: usize, cols: i32, ld: i32, pIdx: usize, pCoef: usize, pY: usize, i0: i32, i1: i32): void {
  const rb: usize = <usize>ld << 2;
  const len = cols;
  const end4 = len & ~3;
  const oe: usize = <usize>end4 << 2;
  const yb = pY;
  let i = i0;
  for (; i + 8 <= i1; i += 8) {
    const q = pIdx + (<usize>i << 2);
    const k = pCoef + (<usize>i << 2);
    const w0 = pW + <usize>load<u32>(q) * rb;
    const w1 = pW + <usize>load<u32>(q, 4) * rb;
    const w2 = pW + <usize>load<u32>(q, 8) * rb;
    const w3 = pW + <usize>load<u32>(q, 12) * rb;
    const w4 = pW + <usize>load<u32>(q, 16) * rb;
    const w5 = pW + <usize>load<u32>(q, 20) * rb;
    const w6 = pW + <usize>load<u32>(q, 24) * rb;
    const w7 = pW + <usize>load<u32>(q, 28) * rb;
    const k0 = v128.load32_splat(k), k1 = v128.load32_splat(k, 4);
    const k2 = v128.load32_splat(k, 8), k3 = v128.load32_splat(k, 12);
    const k4 = v128.load32_splat(k, 16), k5 = v128.load32_splat(k, 20);
    const k6 = v128.load32_splat(k, 24), k7 = v128.load32_splat(k, 28);
    for (let o: usize = 0; o < oe; o += 16) {
      const s01 = madd(v128.load(w1 + o), k1, f32x4.mul(v128.load(w0 + o), k0));
      const s23 = madd(v128.load(w3 + o), k3, f32x4.mul(v128.load(w2 + o), k2));
      const s45 = madd(v128.load(w5 + o), k5, f32x4.mul(v128.load(w4 + o), k4));
      const s67 = madd(v128.load(w7 + o), k7, f32x4.mul(v128.load(w6 + o), k6));
      v128.store(yb + o, f32x4.add(v128.load(yb + o), f32x4.add(f32x4.add(s01, s23), f32x4.add(s45, s67))));
    }
    for (let c = end4; c < len; c++) {
      const off: usize = <usize>c << 2;
      const t = ((load<f32>(k) * load<f32>(w0 + off) + load<f32>(k, 4) * load<f32>(w1 + off)) +
        (load<f32>(k, 8) * load<f32>(w2 + off) + load<f32>(k, 12) * load<f32>(w3 + off))) +
        ((load<f32>(k, 16) * load<f32>(w4 + off) + load<f32>(k, 20) * load<f32>(w5 + off)) +
        (load<f32>(k, 24) * load<f32>(w6 + off) + load<f32>(k, 28) * load<f32>(w7 + off)));
      store<f32>(yb + off, load<f32>(yb + off) + t);
    }
  }
  for (; i < i1; i++) {
    const w0 = pW + <usize>load<u32>(pIdx + (<usize>i << 2)) * rb;
    const s0 = load<f32>(pCoef + (<usize>i << 2));
    const k0 = f32x4.splat(s0);
    for (let o: usize = 0; o < oe; o += 16) {
      v128.store(yb + o, madd(v128.load(w0 + o), k0, v128.load(yb + o)));
    }
    for (let c = end4; c < len; c++) {
      const off: usize = <usize>c << 2;
      store<f32>(yb + off, load<f32>(yb + off) + s0 * load<f32>(w0 + off));
    }
  }
}

// y[0..n) = 0 and y[0..n) += p[0..n): the partial ys of a multi-threaded axpyRows.
export function zero(pY: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(pY + (<usize>i << 2), f32x4.splat(0));
  for (; i < n; i++) store<f32>(pY + (<usize>i << 2), 0);
}

export function addTo(pY: usize, p: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o: usize = <usize>i << 2;
    v128.store(pY + o, f32x4.add(v128.load(pY + o), v128.load(p + o)));
  }
  for (; i < n; i++) {
    const o: usize = <usize>i << 2;
    store<f32>(pY + o, load<f32>(pY + o) + load<f32>(p + o));
  }
}

// ---------------------------------------------------------------------------------
// GEMM: C[i0:i1, j0:j1] (+)= op(A)[i0:i1, :] · op(B)[:, j0:j1], Goto/BLIS loop order.
// op(A)[i, k] = transA ? A[k*lda + i] : A[i*lda + k]; op(B)[k, j] = transB ? B[j*ldb + k] : B[k*ldb + j].
// scratch (per thread, bytes): packed A block MC*KC floats, packed B block KC*NC floats,
// then an MR*NR edge tile.  See GEMM_SCRATCH_BYTES.
const MR = 4;
const NR = 8;
const MC = 96;   // A block 96x256 floats = 96 KiB: lives in L2 (1 MiB on Zen 4)
const KC = 256;  // B micro-panel 256x8 floats = 8 KiB: lives in L1 (32 KiB)
const NC = 2048; // B block 256x2048 floats = 2 MiB: L3

export function gemmScratchBytes(): i32 {
  return (MC * KC + KC * NC + MR * NR) * 4;
}

// Pack op(A)[i .. i+mc, p .. p+kc] into MR-row panels: panel q holds, for each k,
// MR consecutive floats (rows i+q*MR .. +MR), zero-padded past mc.
function packA(transA: bool, pA: usize, lda: i32, i: i32, p: i32, mc: i32, kc: i32, dst: usize): void {
  const ldab: usize = <usize>lda << 2;
  for (let q = 0; q < mc; q += MR) {
    const mr = min(MR, mc - q);
    const panel = dst + (<usize>(q * kc) << 2);
    if (!transA) {
      for (let r = 0; r < MR; r++) {
        if (r < mr) {
          let src = pA + <usize>(i + q + r) * ldab + (<usize>p << 2);
          let d = panel + (<usize>r << 2);
          for (let k = 0; k < kc; k++) { store<f32>(d, load<f32>(src)); src += 4; d += MR * 4; }
        } else {
          let d = panel + (<usize>r << 2);
          for (let k = 0; k < kc; k++) { store<f32>(d, 0); d += MR * 4; }
        }
      }
    } else {
      let src = pA + <usize>p * ldab + (<usize>(i + q) << 2);
      let d = panel;
      if (mr == MR) {
        for (let k = 0; k < kc; k++) {
          v128.store(d, v128.load(src));
          src += ldab; d += MR * 4;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          for (let r = 0; r < MR; r++) store<f32>(d + (<usize>r << 2), r < mr ? load<f32>(src + (<usize>r << 2)) : 0);
          src += ldab; d += MR * 4;
        }
      }
    }
  }
}

// Pack op(B)[p .. p+kc, j .. j+nc] into NR-column panels: panel q holds, for each k,
// NR consecutive floats (columns j+q*NR .. +NR), zero-padded past nc.
function packB(transB: bool, pB: usize, ldb: i32, p: i32, j: i32, kc: i32, nc: i32, dst: usize): void {
  const ldbb: usize = <usize>ldb << 2;
  for (let q = 0; q < nc; q += NR) {
    const nr = min(NR, nc - q);
    const panel = dst + (<usize>(q * kc) << 2);
    if (!transB) {
      let src = pB + <usize>p * ldbb + (<usize>(j + q) << 2);
      let d = panel;
      if (nr == NR) {
        for (let k = 0; k < kc; k++) {
          v128.store(d, v128.load(src));
          v128.store(d, v128.load(src, 16), 16);
          src += ldbb; d += NR * 4;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          for (let c = 0; c < NR; c++) store<f32>(d + (<usize>c << 2), c < nr ? load<f32>(src + (<usize>c << 2)) : 0);
          src += ldbb; d += NR * 4;
        }
      }
    } else {
      for (let c = 0; c < NR; c++) {
        let d = panel + (<usize>c << 2);
        if (c < nr) {
          let src = pB + <usize>(j + q + c) * ldbb + (<usize>p << 2);
          for (let k = 0; k < kc; k++) { store<f32>(d, load<f32>(src)); src += 4; d += NR * 4; }
        } else {
          for (let k = 0; k < kc; k++) { store<f32>(d, 0); d += NR * 4; }
        }
      }
    }
  }
}

// 4x8 micro-kernel: C[4, 8] tile (row stride ldcb bytes) (+)= sum_k a[k, 0..4] (x) b[k, 0..8]
// where a is an A panel (4 floats per k) and b a B panel (8 floats per k).
// 8 accumulators + 2 B vectors + 4 broadcasts/temporaries fit V8's 15 xmm registers
// without spills (checked with --print-wasm-code); 6x8 needs 16 and spills (dev/gemm).
function micro4x8(kc: i32, pa: usize, pb: usize, pc: usize, ldcb: usize, add: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = madd(a, b0, c00); c01 = madd(a, b1, c01);
    a = v128.load32_splat(pa, 4);
    c10 = madd(a, b0, c10); c11 = madd(a, b1, c11);
    a = v128.load32_splat(pa, 8);
    c20 = madd(a, b0, c20); c21 = madd(a, b1, c21);
    a = v128.load32_splat(pa, 12);
    c30 = madd(a, b0, c30); c31 = madd(a, b1, c31);
    pa += 16; pb += 32;
  }
  if (add) {
    v128.store(pc, f32x4.add(c00, v128.load(pc))); v128.store(pc, f32x4.add(c01, v128.load(pc, 16)), 16); pc += ldcb;
    v128.store(pc, f32x4.add(c10, v128.load(pc))); v128.store(pc, f32x4.add(c11, v128.load(pc, 16)), 16); pc += ldcb;
    v128.store(pc, f32x4.add(c20, v128.load(pc))); v128.store(pc, f32x4.add(c21, v128.load(pc, 16)), 16); pc += ldcb;
    v128.store(pc, f32x4.add(c30, v128.load(pc))); v128.store(pc, f32x4.add(c31, v128.load(pc, 16)), 16);
  } else {
    v128.store(pc, c00); v128.store(pc, c01, 16); pc += ldcb;
    v128.store(pc, c10); v128.store(pc, c11, 16); pc += ldcb;
    v128.store(pc, c20); v128.store(pc, c21, 16); pc += ldcb;
    v128.store(pc, c30); v128.store(pc, c31, 16);
  }
}

export function gemm(transA: bool, transB: bool, K: i32, pA: usize, lda: i32, pB: usize, ldb: i32,
  pC: usize, ldc: i32, accumulate: bool, i0: i32, i1: i32, j0: i32, j1: i32, scratch: usize): void {
  const packedA = scratch;
  const packedB = scratch + <usize>(MC * KC * 4);
  const tile = packedB + <usize>(KC * NC * 4);
  const ldcb: usize = <usize>ldc << 2;
  if (K == 0) {
    // C = 0 · ... : overwrite with zeros unless accumulating.
    if (!accumulate) for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) store<f32>(pC + <usize>i * ldcb + (<usize>j << 2), 0);
    return;
  }
  for (let jc = j0; jc < j1; jc += NC) {
    const nc = min(NC, j1 - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      const add = accumulate || pc > 0;
      packB(transB, pB, ldb, pc, jc, kc, nc, packedB);
      for (let ic = i0; ic < i1; ic += MC) {
        const mc = min(MC, i1 - ic);
        packA(transA, pA, lda, ic, pc, mc, kc, packedA);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = min(NR, nc - jr);
          const pb = packedB + (<usize>(jr * kc) << 2);
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = min(MR, mc - ir);
            const pa = packedA + (<usize>(ir * kc) << 2);
            const pc0 = pC + <usize>(ic + ir) * ldcb + (<usize>(jc + jr) << 2);
            if (mr == MR && nr == NR) {
              micro4x8(kc, pa, pb, pc0, ldcb, add);
            } else {
              micro4x8(kc, pa, pb, tile, NR * 4, false);
              for (let r = 0; r < mr; r++) {
                const crow = pc0 + <usize>r * ldcb;
                const trow = tile + (<usize>(r * NR) << 2);
                for (let c = 0; c < nr; c++) {
                  const off: usize = <usize>c << 2;
                  const v = load<f32>(trow + off);
                  store<f32>(crow + off, add ? load<f32>(crow + off) + v : v);
                }
              }
            }
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------
// Small-M GEMM without packing: C[i, j] = Σ_k A[i, k] · B[k, j] for i < M, j in [j0, j1).
// A [M, K], C [M, N] contiguous (lda = K, ldc = N); C is overwritten. B [K, N] row-major
// (ldb = N), or with `panels` in column panels [N/16][K][16], each 16 columns one
// contiguous run (toColumnPanels; N must then be a multiple of 16, which kernels.ts
// checks: the scalar loop over a last partial panel reads B row-major).
// For the decoder's factored layers (M = modules, 4..16 rows, against E [d, M_out]) and
// its im2col convolutions: B is read with no copy, in blocks of kb rows; within a
// block, panel by panel of 16 columns (one cache line per B row), once per pair of A
// rows. The first block writes C, the others add to it. Why blocks of 8 rows: the
// second pair of A rows re-reads the panel, which must still be in L1. A panel's rows
// lie a whole B row apart (32 KB for the sparse loss layer's E), so they all fall in
// the same L1 set, and a set holds 12 lines on Zen 4 (8 on older cores). The panel of
// all K rows that this kernel used to walk was re-read from L2 or memory. Measured for
// the loss layer's [4, 1024]·[1024, 8000], 1 thread, B cold: rows per block 8-12
// 1.9-2.0 ms, 4 rows 2.8, 16 rows 2.7, 32-64 rows 4.0-4.3, all 1024 rows 2.7-2.9
// (dev/gemv/loss-layer.mjs). On two threads of this machine, blocks were slower than one
// walk down all K rows (kb = K): the two vCPUs appear to share L1 (SMT siblings on the
// host), so the caller picks kb. Threads split the columns (j0, j1 multiples of 16
// except at N).
export function gemmSmallM(pA: usize, pB: usize, pC: usize, M: i32, N: i32, K: i32, j0: i32, j1: i32, kb: i32, panels: bool): void {
  if (kb < 1) kb = K;
  for (let k0 = 0; k0 < K; k0 += kb) {
    const k1 = min(K, k0 + kb);
    gemmSmallMRows(pA, pB, pC, M, N, K, j0, j1, k0, k1, k0 > 0, panels);
  }
  if (K === 0) {
    for (let i = 0; i < M; i++) for (let j = j0; j < j1; j++) store<f32>(pC + ((<usize>i * <usize>N + <usize>j) << 2), 0);
  }
}

// gemmSmallM over B rows [k0, k1): C (+)= A[:, k0:k1] · B[k0:k1, j0:j1].
@inline
function gemmSmallMRows(pA: usize, pB: usize, pC: usize, M: i32, N: i32, K: i32, j0: i32, j1: i32, k0: i32, k1: i32, add: bool, panels: bool): void {
  const rb: usize = <usize>N << 2; // C's row stride, and B's when row-major
  const ab: usize = <usize>K << 2;
  // B's row stride and where the panel of columns [j, j + 16) starts at row k0: row-major
  // [K, N], or column panels [N/16][K][16] (N a multiple of 16, each panel contiguous).
  const bs: usize = panels ? 64 : rb;
  const bk: usize = pB + <usize>k0 * bs;
  let j = j0;
  for (; j + 16 <= j1; j += 16) {
    const bj = bk + (panels ? (<usize>j >> 4) * (<usize>K << 6) : <usize>j << 2);
    let i = 0;
    for (; i + 2 <= M; i += 2) {
      const a0 = pA + <usize>i * ab, a1 = a0 + ab;
      const q0 = pC + <usize>i * rb + (<usize>j << 2), q1 = q0 + rb;
      let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
      let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
      if (add) {
        c00 = v128.load(q0); c01 = v128.load(q0, 16); c02 = v128.load(q0, 32); c03 = v128.load(q0, 48);
        c10 = v128.load(q1); c11 = v128.load(q1, 16); c12 = v128.load(q1, 32); c13 = v128.load(q1, 48);
      }
      let bp = bj;
      for (let k = k0; k < k1; k++) {
        const off: usize = <usize>k << 2;
        const x0 = v128.load32_splat(a0 + off), x1 = v128.load32_splat(a1 + off);
        const b0 = v128.load(bp), b1 = v128.load(bp, 16);
        c00 = madd(b0, x0, c00); c10 = madd(b0, x1, c10);
        c01 = madd(b1, x0, c01); c11 = madd(b1, x1, c11);
        const b2 = v128.load(bp, 32), b3 = v128.load(bp, 48);
        c02 = madd(b2, x0, c02); c12 = madd(b2, x1, c12);
        c03 = madd(b3, x0, c03); c13 = madd(b3, x1, c13);
        bp += bs;
      }
      v128.store(q0, c00); v128.store(q0, c01, 16); v128.store(q0, c02, 32); v128.store(q0, c03, 48);
      v128.store(q1, c10); v128.store(q1, c11, 16); v128.store(q1, c12, 32); v128.store(q1, c13, 48);
    }
    if (i < M) {
      const a0 = pA + <usize>i * ab;
      const q0 = pC + <usize>i * rb + (<usize>j << 2);
      let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
      if (add) { c00 = v128.load(q0); c01 = v128.load(q0, 16); c02 = v128.load(q0, 32); c03 = v128.load(q0, 48); }
      let bp = bj;
      for (let k = k0; k < k1; k++) {
        const x0 = v128.load32_splat(a0 + (<usize>k << 2));
        c00 = madd(v128.load(bp), x0, c00);
        c01 = madd(v128.load(bp, 16), x0, c01);
        c02 = madd(v128.load(bp, 32), x0, c02);
        c03 = madd(v128.load(bp, 48), x0, c03);
        bp += bs;
      }
      v128.store(q0, c00); v128.store(q0, c01, 16); v128.store(q0, c02, 32); v128.store(q0, c03, 48);
    }
  }
  for (; j < j1; j++) {
    for (let i = 0; i < M; i++) {
      const a0 = pA + <usize>i * ab;
      const q: usize = pC + <usize>i * rb + (<usize>j << 2);
      let s: f32 = add ? load<f32>(q) : 0;
      let bp = bk + (<usize>j << 2);
      for (let k = k0; k < k1; k++) {
        s += load<f32>(a0 + (<usize>k << 2)) * load<f32>(bp);
        bp += bs;
      }
      store<f32>(q, s);
    }
  }
}

// exp(x) on four float32 lanes, for softmax's shifted scores (x ≤ 0), within EXPF4_ULPS
// units in the last place (kernels.ts; test/kernels-simd.test.ts measures it): x = k·ln2 + r with k =
// nearest(x·log2 e) and r = (x - k·LN2_HI) - k·LN2_LO (Cody and Waite: LN2_HI has nine
// trailing zero bits, so k·LN2_HI is exact for |k| < 512), |r| ≤ ln2/2; e^r by its
// Taylor polynomial of degree 7 (truncation error below 2^-27); times 2^k built in the
// exponent bits. Below -87.336544 (where e^x < 2^-126, the smallest normal float) the
// result is 0; a NaN stays NaN. Not for x > 88.
@inline function expf4(x: v128): v128 {
  const kf = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504)));
  const r = madd(kf, f32x4.splat(-1.428606765330187e-6), madd(kf, f32x4.splat(-0.693145751953125), x));
  let p = madd(f32x4.splat(1.9841270e-4), r, f32x4.splat(1.3888889e-3));
  p = madd(p, r, f32x4.splat(8.3333333e-3));
  p = madd(p, r, f32x4.splat(4.1666667e-2));
  p = madd(p, r, f32x4.splat(1.6666667e-1));
  p = madd(p, r, f32x4.splat(0.5));
  p = madd(p, r, f32x4.splat(1));
  p = madd(p, r, f32x4.splat(1));
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(kf), i32x4.splat(127)), 23);
  return v128.andnot(f32x4.mul(p, scale), f32x4.lt(x, f32x4.splat(-87.336544)));
}

// exp of n floats at pX into pY with expf4 (what attention's softmax computes; for tests).
export function expArray(pX: usize, pY: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(pY + (<usize>i << 2), expf4(v128.load(pX + (<usize>i << 2))));
  for (; i < n; i++) store<f32>(pY + (<usize>i << 2), f32x4.extract_lane(expf4(f32x4.splat(load<f32>(pX + (<usize>i << 2)))), 0));
}

// ---------------------------------------------------------------------------------
// Batch-1 causal attention of one query over T cached positions, all heads in one call
// (the decoder's per-token attention: short rows, so one call instead of a gemv, a
// softmax and an axpyRows per head). For head h < H, kv head g = h / group:
//   s[t] = (Q[h] · K[g, t]) · scale, p = softmax(s) (float32 max and exp (expf4), float64 sum),
//   out[h] = Σ_t p[t] · V[g, t].
// Q: [H, hd] at pQ; K, V: position t of kv head g at (g·kvStride + t·ld) floats; out:
// [H, hd]; pS: H·T floats of scratch (left holding p, head by head).
// Positions are the outer loop, four at a time, heads the inner one: with the decoder's
// position-major cache ([ctx, Hkv·hd]: kvStride = hd, ld = Hkv·hd) the keys, then the
// values, are read as one contiguous stream (cold, 2 streams of 104 KB read 3-6x faster
// than 32 of 6.5 KB here: docs/decode.md). Every score and every output element is
// formed in the same order as one head at a time would form it.
export function attention(pQ: usize, pK: usize, pV: usize, pOut: usize, pS: usize,
  H: i32, group: i32, T: i32, hd: i32, kvStride: i32, ld: i32, scale: f32): void {
  const qb: usize = <usize>hd << 2;
  const rb: usize = <usize>ld << 2;
  const hs: usize = <usize>kvStride << 2;
  const sb: usize = <usize>T << 2; // bytes of one head's scores
  const end4 = hd & ~3;
  const oe: usize = <usize>end4 << 2;
  const T4 = T & ~3;
  // Scores, four keys at a time (each key's sum in the same order as dot1's).
  let t = 0;
  for (; t < T4; t += 4) {
    const kt = pK + <usize>t * rb, st = pS + (<usize>t << 2);
    for (let h = 0; h < H; h++) dot4(kt + <usize>(h / group) * hs, rb, pQ + <usize>h * qb, hd, scale, st + <usize>h * sb);
  }
  for (; t < T; t++) {
    const kt = pK + <usize>t * rb, st = pS + (<usize>t << 2);
    for (let h = 0; h < H; h++) store<f32>(st + <usize>h * sb, dot1(kt + <usize>(h / group) * hs, pQ + <usize>h * qb, hd) * scale);
  }
  // Softmax per head: p[t] = exp(s[t] - max)·(1/sum), four positions at a time (expf4:
  // a scalar float64 exp per score was two thirds of this kernel's time), the sum in
  // float64.
  for (let h = 0; h < H; h++) {
    const sh = pS + <usize>h * sb;
    // The maximum skips NaNs (pmax keeps the accumulator when the new lane is NaN); a NaN
    // score still makes every p NaN, through the sum.
    let m = f32x4.splat(-Infinity);
    for (t = 0; t < T4; t += 4) m = f32x4.pmax(m, v128.load(sh + (<usize>t << 2)));
    let mx: f32 = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    for (t = T4; t < T; t++) { const v = load<f32>(sh + (<usize>t << 2)); if (v > mx) mx = v; }
    const mv = f32x4.splat(mx);
    let s0 = f64x2.splat(0), s1 = f64x2.splat(0);
    for (t = 0; t < T4; t += 4) {
      const a = sh + (<usize>t << 2);
      const e = expf4(f32x4.sub(v128.load(a), mv));
      v128.store(a, e);
      s0 = f64x2.add(s0, lo64(e));
      s1 = f64x2.add(s1, hi64(e));
    }
    let sum = hsum64(f64x2.add(s0, s1));
    for (t = T4; t < T; t++) {
      const a = sh + (<usize>t << 2);
      const e = f32x4.extract_lane(expf4(f32x4.splat(load<f32>(a) - mx)), 0);
      store<f32>(a, e);
      sum += <f64>e;
    }
    const inv = f32x4.splat(<f32>(1 / sum));
    for (t = 0; t < T4; t += 4) { const a = sh + (<usize>t << 2); v128.store(a, f32x4.mul(v128.load(a), inv)); }
    for (t = T4; t < T; t++) { const a = sh + (<usize>t << 2); store<f32>(a, load<f32>(a) * f32x4.extract_lane(inv, 0)); }
    const out = pOut + <usize>h * qb;
    for (let o: usize = 0; o < oe; o += 16) v128.store(out + o, f32x4.splat(0));
    for (let c = end4; c < hd; c++) store<f32>(out + (<usize>c << 2), 0);
  }
  // out += p[t]·V[t], four positions per pass over each head's out (each element adds its
  // terms in order of t, as one position at a time would).
  for (t = 0; t < T4; t += 4) {
    const vt = pV + <usize>t * rb;
    for (let h = 0; h < H; h++) {
      const a = pS + <usize>h * sb + (<usize>t << 2);
      const p0 = load<f32>(a), p1 = load<f32>(a, 4), p2 = load<f32>(a, 8), p3 = load<f32>(a, 12);
      const k0 = f32x4.splat(p0), k1 = f32x4.splat(p1), k2 = f32x4.splat(p2), k3 = f32x4.splat(p3);
      const w0 = vt + <usize>(h / group) * hs, w1 = w0 + rb, w2 = w1 + rb, w3 = w2 + rb;
      const out = pOut + <usize>h * qb;
      for (let o: usize = 0; o < oe; o += 16) {
        let acc = madd(v128.load(w0 + o), k0, v128.load(out + o));
        acc = madd(v128.load(w1 + o), k1, acc);
        acc = madd(v128.load(w2 + o), k2, acc);
        v128.store(out + o, madd(v128.load(w3 + o), k3, acc));
      }
      for (let c = end4; c < hd; c++) {
        const off: usize = <usize>c << 2;
        let x = load<f32>(out + off) + p0 * load<f32>(w0 + off);
        x = x + p1 * load<f32>(w1 + off);
        x = x + p2 * load<f32>(w2 + off);
        store<f32>(out + off, x + p3 * load<f32>(w3 + off));
      }
    }
  }
  for (; t < T; t++) {
    const vt = pV + <usize>t * rb;
    for (let h = 0; h < H; h++) {
      const p = load<f32>(pS + <usize>h * sb + (<usize>t << 2));
      const k = f32x4.splat(p);
      const w = vt + <usize>(h / group) * hs;
      const out = pOut + <usize>h * qb;
      for (let o: usize = 0; o < oe; o += 16) v128.store(out + o, madd(v128.load(w + o), k, v128.load(out + o)));
      for (let c = end4; c < hd; c++) {
        const off: usize = <usize>c << 2;
        store<f32>(out + off, load<f32>(out + off) + p * load<f32>(w + off));
      }
    }
  }
}

// Stores (K[i] · q) · scale for the four rows K[0..3] (rb bytes apart, from w0) at
// pS[0..3]; each row's sum is formed exactly as dot1 forms it, so the scores do not
// depend on how many keys are done at once.
@inline function dot4(w0: usize, rb: usize, pX: usize, cols: i32, scale: f32, pS: usize): void {
  const w1 = w0 + rb, w2 = w1 + rb, w3 = w2 + rb;
  let a0 = f32x4.splat(0), b0 = f32x4.splat(0), a1 = f32x4.splat(0), b1 = f32x4.splat(0);
  let a2 = f32x4.splat(0), b2 = f32x4.splat(0), a3 = f32x4.splat(0), b3 = f32x4.splat(0);
  const end8 = cols & ~7;
  const oe: usize = <usize>end8 << 2;
  for (let o: usize = 0; o < oe; o += 32) {
    const xa = v128.load(pX + o), xb = v128.load(pX + o, 16);
    a0 = madd(v128.load(w0 + o), xa, a0); b0 = madd(v128.load(w0 + o, 16), xb, b0);
    a1 = madd(v128.load(w1 + o), xa, a1); b1 = madd(v128.load(w1 + o, 16), xb, b1);
    a2 = madd(v128.load(w2 + o), xa, a2); b2 = madd(v128.load(w2 + o, 16), xb, b2);
    a3 = madd(v128.load(w3 + o), xa, a3); b3 = madd(v128.load(w3 + o, 16), xb, b3);
  }
  let s0 = hsum(f32x4.add(a0, b0)), s1 = hsum(f32x4.add(a1, b1)), s2 = hsum(f32x4.add(a2, b2)), s3 = hsum(f32x4.add(a3, b3));
  for (let c = end8; c < cols; c++) {
    const off: usize = <usize>c << 2;
    const x = load<f32>(pX + off);
    s0 += load<f32>(w0 + off) * x; s1 += load<f32>(w1 + off) * x;
    s2 += load<f32>(w2 + off) * x; s3 += load<f32>(w3 + off) * x;
  }
  store<f32>(pS, s0 * scale); store<f32>(pS, s1 * scale, 4); store<f32>(pS, s2 * scale, 8); store<f32>(pS, s3 * scale, 12);
}

// ---------------------------------------------------------------------------------
// Row-broadcast elementwise helpers for the decoder (O(d) per call, main thread only):
// mulRows: out[r, i] = x[i] · D[r, i]; addRows: y[r, i] += b[i]; for r < rows, i < n.
export function mulRows(pX: usize, pD: usize, pOut: usize, rows: i32, n: i32): void {
  const end4 = n & ~3;
  const oe: usize = <usize>end4 << 2;
  const rb: usize = <usize>n << 2;
  for (let r = 0; r < rows; r++) {
    const d = pD + <usize>r * rb, o = pOut + <usize>r * rb;
    for (let k: usize = 0; k < oe; k += 16) v128.store(o + k, f32x4.mul(v128.load(pX + k), v128.load(d + k)));
    for (let c = end4; c < n; c++) {
      const k: usize = <usize>c << 2;
      store<f32>(o + k, load<f32>(pX + k) * load<f32>(d + k));
    }
  }
}

export function addRows(pY: usize, pB: usize, rows: i32, n: i32): void {
  const end4 = n & ~3;
  const oe: usize = <usize>end4 << 2;
  const rb: usize = <usize>n << 2;
  for (let r = 0; r < rows; r++) {
    const y = pY + <usize>r * rb;
    for (let k: usize = 0; k < oe; k += 16) v128.store(y + k, f32x4.add(v128.load(y + k), v128.load(pB + k)));
    for (let c = end4; c < n; c++) {
      const k: usize = <usize>c << 2;
      store<f32>(y + k, load<f32>(y + k) + load<f32>(pB + k));
    }
  }
}


// Causal im2col for the decoder's Sparse QKV convolutions over (length, modules), one
// token: col[s, (i·Fw + j)·M + c] = row_i[(s + j - half)·M + c] (0 outside the S modules),
// half = (Fw - 1) / 2, row_i = state[i] (rows of d floats) for i < Fl-1 and cur for i = Fl-1.
export function im2col(pState: usize, pCur: usize, pCol: usize, S: i32, M: i32, Fl: i32, Fw: i32, d: i32): void {
  const half = (Fw - 1) / 2;
  const mb: usize = <usize>M << 2;
  const width: usize = <usize>(Fl * Fw) * mb;
  for (let s = 0; s < S; s++) {
    for (let i = 0; i < Fl; i++) {
      const src: usize = i < Fl - 1 ? pState + <usize>i * (<usize>d << 2) : pCur;
      for (let j = 0; j < Fw; j++) {
        const dst = pCol + <usize>s * width + <usize>(i * Fw + j) * mb;
        const sm = s + j - half;
        if (sm < 0 || sm >= S) memory.fill(dst, 0, mb);
        else memory.copy(dst, src + <usize>sm * mb, mb);
      }
    }
  }
}

// idx[b] = the index u in [b·N, (b+1)·N) with the largest l[u], ties to the lower index
// (Sparse FF's per-block choice), for b < nb. idx: int32 [nb]. A block's maximum is
// found four lanes at a time, then the first index holding it; a block whose values
// include a NaN (no lane equals the maximum) falls back to the scalar scan, which
// skips NaNs as `v > best` does.
export function blockArgmax(pL: usize, pIdx: usize, nb: i32, N: i32): void {
  const n4 = N & ~3;
  for (let b = 0; b < nb; b++) {
    const o = b * N;
    const p = pL + (<usize>o << 2);
    let best = -1;
    if (n4 >= 4) {
      let m = v128.load(p);
      // pmax is one maxps (wasm's max spells out NaN and -0 rules in several): a NaN in
      // m's first load stays and one later is skipped; either way the checks below find
      // the scalar scan's answer.
      for (let u = 4; u < n4; u += 4) m = f32x4.pmax(m, v128.load(p + (<usize>u << 2)));
      let bv = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
      for (let u = n4; u < N; u++) bv = max(bv, load<f32>(p + (<usize>u << 2)));
      const bvv = f32x4.splat(bv);
      for (let u = 0; u < n4; u += 4) {
        const mask = i32x4.bitmask(f32x4.eq(v128.load(p + (<usize>u << 2)), bvv));
        if (mask != 0) { best = o + u + ctz(mask); break; }
      }
      if (best < 0) for (let u = n4; u < N; u++) if (load<f32>(p + (<usize>u << 2)) == bv) { best = o + u; break; }
    }
    if (best < 0) {
      best = o;
      let v0 = load<f32>(p);
      for (let u = o + 1; u < o + N; u++) {
        const v = load<f32>(pL + (<usize>u << 2));
        if (v > v0) { v0 = v; best = u; }
      }
    }
    store<i32>(pIdx + (<usize>b << 2), best);
  }
}

// ---------------------------------------------------------------------------------
// The Sparse FF controller's screened argmax (docs/decode.md, "The controller's screen").
// The controller logits l = c + u·C2 (u = C1ᵀ·x: r floats; C2 [r, d_ff]) only serve an
// argmax per block of N, so C2 is streamed as 16-bit integers (half the bytes), the
// products are integer dot products, and only the neurons that the quantization could
// have reordered are recomputed exactly from C2ᵀ's float32 rows.
// Quantized C2: word P[p, j] (uint32 [ceil(r/2), d_ff]) holds cq[2p, j] in its low and
// cq[2p+1, j] in its high 16 bits, C2[i, j] ≈ colScale[j]·cq[i, j] with |cq| ≤ qmax, and
// qmax²·r < 2^31 so that no integer sum can overflow. u is quantized the same way per
// token (uScale·uq), its pairs packed into one uint32 each, so i32x4.dot_i16x8_s of a
// word vector with a splatted pair gives four columns' worth of two rows.

// Quantize u (float32 [r]) for pairDotI16: uq pairs into pUq (uint32 [ceil(r/2)], row 2p
// low), and into pInfo (float64 [4]): uScale, ‖u‖₂, ‖u - uScale·uq‖₂, uScale·‖uq‖₂, the
// norms rounded up. A non-finite u gives uq = 0 and a non-finite ‖u‖ (screenArgmax then
// recomputes every neuron).
export function screenQuantize(pU: usize, r: i32, qmax: i32, pUq: usize, pInfo: usize): void {
  let m: f64 = 0, uu: f64 = 0;
  for (let i = 0; i < r; i++) { const v = <f64>load<f32>(pU + (<usize>i << 2)); m = max(m, abs(v)); uu += v * v; }
  const finite = isFinite(uu);
  // uScale rounded up to a float32, so |u_i| / uScale ≤ qmax.
  let sc = <f32>(m / <f64>qmax);
  if (<f64>sc < m / <f64>qmax) sc = reinterpret<f32>(reinterpret<u32>(sc) + 1);
  let dd: f64 = 0, qq: f64 = 0;
  for (let p = 0; p < (r + 1) >> 1; p++) {
    let word: u32 = 0;
    for (let h = 0; h < 2; h++) {
      const i = 2 * p + h;
      let q: f64 = 0;
      if (i < r && finite && sc > 0) {
        const v = <f64>load<f32>(pU + (<usize>i << 2));
        q = min(<f64>qmax, max(-<f64>qmax, nearest(v / <f64>sc)));
        const dv = v - <f64>sc * q;
        dd += dv * dv; qq += q * q;
      }
      word |= (<u32>(<i32>q) & 0xffff) << (<u32>h << 4);
    }
    store<u32>(pUq + (<usize>p << 2), word);
  }
  // ×(1 + 2^-20): the float64 sums' rounding, with room to spare.
  const up: f64 = 1 + 0.00000095367431640625;
  store<f64>(pInfo, <f64>sc);
  store<f64>(pInfo, finite ? Math.sqrt(uu) * up : Infinity, 8);
  store<f64>(pInfo, Math.sqrt(dd) * up, 16);
  store<f64>(pInfo, <f64>sc * Math.sqrt(qq) * up, 24);
}

// Columns per tile of pairDotI16's panels (kernels.ts SCREEN_TILE: the same number).
const SCREEN_TILE: i32 = 256;

// acc[j] = Σ_p dot(P[p, j], uq pair p) (int32) for j in [c0, c1): the integer part of the
// screened logits. P is stored in the order this loop reads it, so that the whole matrix
// is one contiguous stream (four separate row streams read 25% slower cold,
// dev/gemv/11_screen_lab.mjs), and so is any run of whole tiles, which is what a thread
// takes: tiles of SCREEN_TILE columns (the last one narrower), each uint32
// [groups][w/4][4 pairs][4 columns] for its w columns; pairs padded with zeros to
// 4·groups, cols a multiple of 4, c0 a multiple of SCREEN_TILE and c1 one or cols. A
// tile's sums (1 KB) stay in L1 over its groups. uq: uint32 [4·groups]; acc: int32 [cols].
export function pairDotI16(pP: usize, groups: i32, cols: i32, pUq: usize, pAcc: usize, c0: i32, c1: i32): void {
  for (let t0 = c0; t0 < c1; t0 += SCREEN_TILE) {
    const w = min(SCREEN_TILE, cols - t0);
    const tile = pP + ((<usize>t0 * <usize>groups) << 4);
    const a0 = pAcc + (<usize>t0 << 2), ae = a0 + (<usize>w << 2);
    const gb: usize = <usize>w << 4; // bytes per group of the tile: 4 pairs of w words
    for (let o = a0; o < ae; o += 16) v128.store(o, i32x4.splat(0));
    for (let g = 0; g < groups; g++) {
      const u = pUq + (<usize>g << 4);
      const k0 = v128.load32_splat(u), k1 = v128.load32_splat(u, 4), k2 = v128.load32_splat(u, 8), k3 = v128.load32_splat(u, 12);
      let p = tile + <usize>g * gb;
      for (let o = a0; o < ae; o += 16) {
        const a = i32x4.add(i32x4.dot_i16x8_s(v128.load(p), k0), i32x4.dot_i16x8_s(v128.load(p, 16), k1));
        const b = i32x4.add(i32x4.dot_i16x8_s(v128.load(p, 32), k2), i32x4.dot_i16x8_s(v128.load(p, 48), k3));
        v128.store(o, i32x4.add(v128.load(o), i32x4.add(a, b)));
        p += 64;
      }
    }
  }
}

// The scalar twin of one dot_i16x8_s lane: two int16 products of packed pairs, summed.
@inline function dotPair(w: u32, k: u32): i32 {
  return <i32>(<i16>w) * <i32>(<i16>k) + <i32>(<i16>(w >> 16)) * <i32>(<i16>(k >> 16));
}

// Σ_i u[i]·row[i] + bias in float64 (r floats at pRow and pU): a neuron's exact logit.
@inline function exactLogit(pRow: usize, pU: usize, r: i32, bias: f32): f64 {
  let a = f64x2.splat(0), b = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= r; i += 4) {
    const o: usize = <usize>i << 2;
    const w = v128.load(pRow + o), x = v128.load(pU + o);
    a = f64x2.add(a, f64x2.mul(lo64(w), lo64(x)));
    b = f64x2.add(b, f64x2.mul(hi64(w), hi64(x)));
  }
  let t = hsum64(f64x2.add(a, b));
  for (; i < r; i++) t += <f64>load<f32>(pRow + (<usize>i << 2)) * <f64>load<f32>(pU + (<usize>i << 2));
  return t + <f64>bias;
}

// idx[b] = the argmax over block b (neurons b·N .. b·N+N-1) of the controller logits
// l[j] = bias[j] + Σ_i u[i]·C2ᵀ[j, i] (ties to the lower index), for b < nb.
// Screened logits: s[j] = colScale[j]·acc[j]·uScale + bias[j] (acc from pairDotI16),
// written to pS (float32 [nb·N]). Their error bound (docs/decode.md derives it): for
// every j of block b, |s[j] - l[j]| ≤ e_b = (‖u‖·A_b + ‖du‖·B_b + 2^-21·(C_b +
// uScale‖uq‖·B_b))·(1 + 2^-10) + 10^-30 (underflow), with margin (float64 [3·nb], built
// at load) holding
// A_b = max ‖C2[:, j] - colScale[j]·cq[:, j]‖, B_b = max colScale[j]·‖cq[:, j]‖ and
// C_b = max |bias[j]|, and info from screenQuantize. So only j with s[j] ≥ max s - 2e_b
// can be the argmax; when that leaves one candidate, it is; otherwise each candidate's
// logit is recomputed in float64 from its row of C2ᵀ (float32 [nb·N, r]) and the
// largest wins. Every block when ‖u‖ is not finite (u has a NaN or an infinity), and a
// block whose screened logits overflow, recomputes all its neurons and scans them as
// blockArgmax's scalar path does (NaNs skipped). Returns the number of neurons recomputed.
export function screenArgmax(pAcc: usize, pColScale: usize, pBias: usize, pS: usize, pIdx: usize, nb: i32, N: i32,
  pMargin: usize, pInfo: usize, pC2t: usize, r: i32, pU: usize): i32 {
  const uScale = load<f64>(pInfo), unorm = load<f64>(pInfo, 8), dnorm = load<f64>(pInfo, 16), qnorm = load<f64>(pInfo, 24);
  const allExact = !isFinite(unorm);
  const us = f32x4.splat(<f32>uScale);
  const n4 = N & ~3;
  const rowBytes: usize = <usize>r << 2;
  let recomputed = 0;
  for (let b = 0; b < nb; b++) {
    const o = b * N;
    const p = pS + (<usize>o << 2);
    let exact = allExact;
    let count = 0, first = -1;
    let thrF: f32 = 0;
    if (!exact) {
      // No s can be NaN (acc is an integer; scales and biases are finite, checked at
      // load; u is, or allExact); an overflow to infinity makes thr below non-finite.
      let m = f32x4.splat(-Infinity);
      for (let u = 0; u < n4; u += 4) {
        const q: usize = <usize>(o + u) << 2;
        const v = madd(f32x4.mul(v128.load(pColScale + q), f32x4.convert_i32x4_s(v128.load(pAcc + q))), us, v128.load(pBias + q));
        v128.store(pS + q, v);
        m = f32x4.pmax(m, v);
      }
      let mx: f32 = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
      for (let u = n4; u < N; u++) {
        const q: usize = <usize>(o + u) << 2;
        const v = load<f32>(pColScale + q) * <f32>load<i32>(pAcc + q) * <f32>uScale + load<f32>(pBias + q);
        store<f32>(pS + q, v);
        mx = max(mx, v);
      }
      const g = pMargin + <usize>b * 24;
      const e = (unorm * load<f64>(g) + dnorm * load<f64>(g, 8) + 4.76837158203125e-7 * (load<f64>(g, 16) + qnorm * load<f64>(g, 8))) * (1 + 0.0009765625) + 1e-30;
      const thr: f64 = <f64>mx - 2 * e;
      // The float32 threshold, rounded down so that no candidate is lost.
      thrF = <f32>thr;
      if (<f64>thrF > thr) thrF = thrF > 0 ? reinterpret<f32>(reinterpret<u32>(thrF) - 1) : thrF < 0 ? reinterpret<f32>(reinterpret<u32>(thrF) + 1) : -1.4e-45;
      if (!isFinite(thr)) exact = true;
    }
    if (!exact) {
      const tv = f32x4.splat(thrF);
      for (let u = 0; u < n4; u += 4) {
        const mask = i32x4.bitmask(f32x4.ge(v128.load(p + (<usize>u << 2)), tv));
        if (mask != 0) { if (first < 0) first = o + u + ctz(mask); count += popcnt(mask); }
      }
      for (let u = n4; u < N; u++) if (load<f32>(p + (<usize>u << 2)) >= thrF) { if (first < 0) first = o + u; count++; }
    }
    let best = first;
    if (exact) {
      // Every neuron of the block, exactly; `v > bv` skips NaNs as blockArgmax does.
      best = o;
      let bv = exactLogit(pC2t + <usize>o * rowBytes, pU, r, load<f32>(pBias + (<usize>o << 2)));
      for (let j = o + 1; j < o + N; j++) {
        const v = exactLogit(pC2t + <usize>j * rowBytes, pU, r, load<f32>(pBias + (<usize>j << 2)));
        if (v > bv) { bv = v; best = j; }
      }
      recomputed += N;
    } else if (count > 1) {
      // The candidates, in index order: a later one wins only if strictly larger.
      let bv: f64 = 0;
      for (let j = first; j < o + N; j++) {
        if (load<f32>(pS + (<usize>j << 2)) < thrF) continue;
        const v = exactLogit(pC2t + <usize>j * rowBytes, pU, r, load<f32>(pBias + (<usize>j << 2)));
        if (j == first || v > bv) { bv = v; best = j; }
      }
      recomputed += count;
    }
    store<i32>(pIdx + (<usize>b << 2), best);
  }
  return recomputed;
}

// ---------------------------------------------------------------------------------
// Per-token glue of the decoder, moved out of JS loops (O(d) per call, calling thread).

// out = norm(x) over n floats: layernorm ((x - mean)/sqrt(var + eps)·w + b, hasBias) or
// rmsnorm (rms = 1: x/sqrt(mean(x²) + eps)·w). Mean and variance are accumulated in
// float64 and each output is computed in float64 and rounded once, as the training
// graph's reference does.
export function norm(pX: usize, pW: usize, pB: usize, hasBias: i32, pOut: usize, n: i32, eps: f64, rms: i32): void {
  const inv_n: f64 = 1.0 / <f64>n;
  const n8 = n & ~7;
  // Pass 1 (layernorm): the mean, four float64x2 accumulators over 8 floats a step.
  let mean: f64 = 0;
  if (!rms) {
    let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
    for (let i = 0; i < n8; i += 8) {
      const p = pX + (<usize>i << 2);
      const u = v128.load(p), v = v128.load(p, 16);
      a0 = f64x2.add(a0, lo64(u)); a1 = f64x2.add(a1, hi64(u));
      a2 = f64x2.add(a2, lo64(v)); a3 = f64x2.add(a3, hi64(v));
    }
    let s = hsum64(f64x2.add(f64x2.add(a0, a1), f64x2.add(a2, a3)));
    for (let i = n8; i < n; i++) s += <f64>load<f32>(pX + (<usize>i << 2));
    mean = s * inv_n;
  }
  // Pass 2: Σ (x - mean)² (mean = 0 for rmsnorm: Σ x²).
  const mv = f64x2.splat(mean);
  let b0 = f64x2.splat(0), b1 = f64x2.splat(0), b2 = f64x2.splat(0), b3 = f64x2.splat(0);
  for (let i = 0; i < n8; i += 8) {
    const p = pX + (<usize>i << 2);
    const u = v128.load(p), v = v128.load(p, 16);
    const c0 = f64x2.sub(lo64(u), mv), c1 = f64x2.sub(hi64(u), mv), c2 = f64x2.sub(lo64(v), mv), c3 = f64x2.sub(hi64(v), mv);
    b0 = f64x2.add(b0, f64x2.mul(c0, c0)); b1 = f64x2.add(b1, f64x2.mul(c1, c1));
    b2 = f64x2.add(b2, f64x2.mul(c2, c2)); b3 = f64x2.add(b3, f64x2.mul(c3, c3));
  }
  let ss = hsum64(f64x2.add(f64x2.add(b0, b1), f64x2.add(b2, b3)));
  for (let i = n8; i < n; i++) { const c = <f64>load<f32>(pX + (<usize>i << 2)) - mean; ss += c * c; }
  const inv = 1.0 / Math.sqrt(ss * inv_n + eps);
  // Pass 3: each output in float64, rounded once.
  const iv = f64x2.splat(inv);
  const bias = !rms && hasBias != 0;
  const n4 = n & ~3;
  for (let j = 0; j < n4; j += 4) {
    const o: usize = <usize>j << 2;
    const x = v128.load(pX + o), w = v128.load(pW + o);
    let ylo = f64x2.mul(f64x2.mul(f64x2.sub(lo64(x), mv), iv), lo64(w));
    let yhi = f64x2.mul(f64x2.mul(f64x2.sub(hi64(x), mv), iv), hi64(w));
    if (bias) { const b = v128.load(pB + o); ylo = f64x2.add(ylo, lo64(b)); yhi = f64x2.add(yhi, hi64(b)); }
    v128.store(pOut + o, v128.shuffle<f32>(f32x4.demote_f64x2_zero(ylo), f32x4.demote_f64x2_zero(yhi), 0, 1, 4, 5));
  }
  for (let j = n4; j < n; j++) {
    const o: usize = <usize>j << 2;
    const y = (<f64>load<f32>(pX + o) - mean) * inv * <f64>load<f32>(pW + o);
    store<f32>(pOut + o, <f32>(bias ? y + <f64>load<f32>(pB + o) : y));
  }
}

// RoPE (the llama.cpp NORM form: adjacent pairs) on nHeads rows of hd floats at pV, in
// place: (v[2i], v[2i+1]) rotated by the angle whose cosine and sine are cs[i], sn[i]
// (float64 tables of hd/2 at pCos and pSin, for the current position), in float64.
export function rope(pV: usize, nHeads: i32, hd: i32, pCos: usize, pSin: usize): void {
  const half = hd >> 1;
  for (let h = 0; h < nHeads; h++) {
    const row = pV + ((<usize>h * <usize>hd) << 2);
    for (let i = 0; i < half; i++) {
      const cs = load<f64>(pCos + (<usize>i << 3)), sn = load<f64>(pSin + (<usize>i << 3));
      const p = row + (<usize>i << 3);
      const x0 = <f64>load<f32>(p), x1 = <f64>load<f32>(p, 4);
      store<f32>(p, <f32>(x0 * cs - x1 * sn));
      store<f32>(p, <f32>(x0 * sn + x1 * cs), 4);
    }
  }
}

// dst row r = src row r for r < rows, n floats each, rows dstStride / srcStride floats
// apart (the decoder's writes into the KV cache, one row per kv head).
export function copyRows(pDst: usize, dstStride: i32, pSrc: usize, srcStride: i32, rows: i32, n: i32): void {
  const bytes: usize = <usize>n << 2;
  for (let r = 0; r < rows; r++) {
    memory.copy(pDst + ((<usize>r * <usize>dstStride) << 2), pSrc + ((<usize>r * <usize>srcStride) << 2), bytes);
  }
}

// SwiGLU's activation: out[u] = silu(h[u]) · h[n + u] = h[u] / (1 + exp(-h[u])) · h[n + u]
// for u < n, in float64 and rounded once (as the training graph's reference computes
// it). out may be h itself (each u reads its inputs before writing out[u]).
export function swiglu(pH: usize, pOut: usize, n: i32): void {
  const up: usize = pH + (<usize>n << 2);
  for (let u = 0; u < n; u++) {
    const o: usize = <usize>u << 2;
    const g = <f64>load<f32>(pH + o);
    store<f32>(pOut + o, <f32>((g / (1.0 + Math.exp(-g))) * <f64>load<f32>(up + o)));
  }
}

// ---------------------------------------------------------------------------------
// Round-trip probe (exec.ts PingPong): two threads pass one int32 word back and forth.
// pingTrips: for k in [k0, k1] store 2k-1, then wait for 2k. pongTrips: for k in [k0, k1]
// wait for 2k-1, then store 2k. Each returns 0, or the k it gave up at after `patience`
// polls without the value it waited for. In wasm rather than JS so that the loop runs
// compiled from the first trip (a cold JS loop measured 2-3x the warm round trip).
export function pingTrips(pWord: usize, k0: i32, k1: i32, patience: i32): i32 {
  for (let k = k0; k <= k1; k++) {
    atomic.store<i32>(pWord, 2 * k - 1);
    let n = 0;
    while (atomic.load<i32>(pWord) != 2 * k) {
      if (++n >= patience) return k;
    }
  }
  return 0;
}

export function pongTrips(pWord: usize, k0: i32, k1: i32, patience: i32): i32 {
  for (let k = k0; k <= k1; k++) {
    let n = 0;
    while (atomic.load<i32>(pWord) != 2 * k - 1) {
      if (++n >= patience) return k;
    }
    atomic.store<i32>(pWord, 2 * k);
  }
  return 0;
}
