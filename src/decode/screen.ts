/**
 * The Sparse FF controller's screen, built at load (docs/decode.md, "The controller's
 * screen"): C2 [r, d_ff] as 16-bit integers for the per-token integer product, and what
 * bounds that product's error, so that the decoder's argmax per block is exactly the
 * float32 controller's while it streams half of C2's bytes.
 *
 * Per neuron j (a column of C2): colScale[j] = max_i |C2[i, j]| / qmax (rounded up to a
 * float32) and cq[i, j] = round(C2[i, j] / colScale[j]), so |cq| ≤ qmax, with qmax the
 * largest integer such that r·qmax² < 2^31: no sum of r int16 products can overflow an
 * int32. Per block b of N neurons, the float64 margins the kernel's bound needs
 * (assembly/kernels.ts, screenArgmax), each a maximum over the block's neurons, rounded up:
 *   A_b = ‖C2[:, j] - colScale[j]·cq[:, j]‖₂ (the weights' quantization error),
 *   B_b = colScale[j]·‖cq[:, j]‖₂ (what u's quantization error multiplies),
 *   C_b = |c[j]| (the bias, for the float32 rounding term).
 *
 * Invariants: panels hold cq in the order CpuKernels.pairDotI16 reads them: tiles of
 * SCREEN_TILE columns (the last one narrower), each uint32 [groups][w/4][4 pairs][4
 * columns] for its w columns, word = cq[2p, j] (low 16 bits) | cq[2p+1, j] (high); rows
 * past r and columns past d_ff are zeros (cols = d_ff rounded up to 4).
 * c2t is C2ᵀ [d_ff, r] float32, the exact weights a recomputed neuron reads.
 */

import { SCREEN_TILE } from '../backends/cpu/kernels.js';
import { SparselmError } from '../tensor/errors.js';

export interface ControllerScreen {
  /** Rows r of C2 and the quantization bound. */
  r: number; qmax: number;
  /** Panels of 4 pairs of rows (8 rows of C2) each, and the columns they hold (d_ff rounded up to 4). */
  groups: number; cols: number;
  panels: Uint32Array;
  /** [cols] float32 (zero past d_ff). */
  colScale: Float32Array;
  /** C2ᵀ [d_ff, r]. */
  c2t: Float32Array;
  /** [3·nb] float64: A_b, B_b, C_b per block. */
  margin: Float64Array;
}

/** The largest q with r·q² < 2^31 (and at most 32767, an int16). */
export function screenQmax(r: number): number {
  let q = Math.min(32767, Math.floor(Math.sqrt((2 ** 31 - 1) / r)));
  while (r * q * q >= 2 ** 31) q--;
  return q;
}

/** Round a positive float64 up to a float32 (so that x / result ≤ the intended bound). */
function f32Up(x: number): number {
  const f = Math.fround(x);
  if (f >= x) return f;
  const b = new Float32Array([f]);
  new Uint32Array(b.buffer)[0]++;
  return b[0];
}

/**
 * Build the screen of one Sparse FF layer from its controller's C2 [r, d_ff] (row-major,
 * as in the checkpoint) and bias c [d_ff], for blocks of N neurons; null when a weight is
 * not finite or too large to scale (the decoder then reads C2 in float32 as before).
 */
export function buildScreen(c2: Float32Array, c: Float32Array, r: number, dff: number, N: number): ControllerScreen | null {
  if (c2.length !== r * dff || c.length !== dff || N < 1 || dff % N !== 0) {
    throw new SparselmError(`decode: the controller's shapes (${c2.length} and ${c.length} values) do not match r ${r}, d_ff ${dff}, blocks of ${N}`);
  }
  const qmax = screenQmax(r);
  const groups = Math.ceil(r / 8), cols = Math.ceil(dff / 4) * 4, nb = dff / N;
  const panels = new Uint32Array(groups * cols * 4);
  const colScale = new Float32Array(cols);
  const c2t = new Float32Array(dff * r);
  const margin = new Float64Array(3 * nb);
  // ×(1 + 2^-30): the float64 norms' rounding.
  const up = 1 + 2 ** -30;
  for (let j = 0; j < dff; j++) {
    const t0 = j - (j % SCREEN_TILE), tw = Math.min(SCREEN_TILE, cols - t0), jj = j - t0;
    let mx = 0;
    for (let i = 0; i < r; i++) {
      const v = c2[i * dff + j];
      if (!Number.isFinite(v)) return null;
      mx = Math.max(mx, Math.abs(v));
      c2t[j * r + i] = v;
    }
    const scale = mx === 0 ? 0 : f32Up(mx / qmax);
    if (!Number.isFinite(scale)) return null;
    colScale[j] = scale;
    let err2 = 0, q2 = 0;
    for (let i = 0; i < r; i++) {
      const v = c2[i * dff + j];
      const q = scale === 0 ? 0 : Math.max(-qmax, Math.min(qmax, Math.round(v / scale)));
      const e = v - scale * q;
      err2 += e * e; q2 += q * q;
      // Pair p = i >> 1 in group g = p >> 2, slot p & 3; column j in the tile from t0 (w
      // columns wide) at jj = j - t0: column group jj >> 2, lane jj & 3.
      const p = i >> 1, g = p >> 2;
      const at = t0 * groups * 4 + g * tw * 4 + (jj >> 2) * 16 + (p & 3) * 4 + (jj & 3);
      panels[at] |= (q & 0xffff) << ((i & 1) * 16);
    }
    const b = Math.floor(j / N);
    margin[3 * b] = Math.max(margin[3 * b], Math.sqrt(err2) * up);
    margin[3 * b + 1] = Math.max(margin[3 * b + 1], scale * Math.sqrt(q2) * up);
    if (!Number.isFinite(c[j])) return null;
    margin[3 * b + 2] = Math.max(margin[3 * b + 2], Math.abs(c[j]));
  }
  return { r, qmax, groups, cols, panels, colScale, c2t, margin };
}
