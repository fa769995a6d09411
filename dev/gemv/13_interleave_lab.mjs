// Lab 13: Sparse FF's gathers at the 800m shape (96 of 6144 neurons, one per block of 64;
// rows of 1024 floats), cold (24 layers' worth): W1ᵀ and W2 as two matrices (gemvRows,
// then axpyRows over the ~half that are active) against one matrix with each neuron's
// two rows side by side ([d_ff][2][d]: an active neuron is 8 KB in a row).
//   node dev/gemv/13_interleave_lab.mjs [reps]
import { createKernels } from '../../build/src/backends/cpu/kernels.js';
const reps = Number(process.argv[2] ?? 9), d = 1024, dff = 6144, N = 64, nb = dff / N, L = 24;
const k = createKernels({ threads: 1 });
const mat = dff * d * 4;
const sep = k.heap.alloc(L * 2 * mat, 4096), il = k.heap.alloc(L * 2 * mat, 4096);
k.heap.f32(sep, L * 2 * mat / 4).fill(0.01); k.heap.f32(il, L * 2 * mat / 4).fill(0.01);
k.readBandwidth(sep, L * 2 * mat); k.readBandwidth(il, L * 2 * mat);
const x = k.heap.alloc(d * 4), y = k.heap.alloc(d * 4), h = k.heap.alloc(nb * 4), idx = k.heap.alloc(nb * 4), idx2 = k.heap.alloc(nb * 4), act = k.heap.alloc(nb * 4), act2 = k.heap.alloc(nb * 4);
k.heap.f32(x, d).fill(1);
const iv = k.heap.i32(idx, nb), iv2 = k.heap.i32(idx2, nb), av = k.heap.i32(act, nb), av2 = k.heap.i32(act2, nb);
let seed = 3;
const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
const med = (a) => { const s = [...a].sort((p, q) => p - q); return s[s.length >> 1]; };
const ev = k.heap.alloc(256 << 20); k.heap.f32(ev, 64 << 20).fill(1);
const t = { separate: [], interleaved: [] };
for (let rep = 0; rep < reps; rep++) {
  for (const name of Object.keys(t)) {
    k.readBandwidth(ev, 256 << 20);
    const t0 = performance.now();
    for (let l = 0; l < L; l++) {
      for (let b = 0; b < nb; b++) { const n = b * N + Math.floor(rnd() * N); iv[b] = n; iv2[b] = 2 * n; }
      let na = 0;
      for (let b = 0; b < nb; b++) if (rnd() < 0.5) { av[na] = iv[b]; av2[na] = 2 * iv[b] + 1; na++; }
      if (name === 'separate') {
        const w1 = sep + l * 2 * mat, w2 = w1 + mat;
        k.gemvRows(w1, d, idx, nb, x, h);
        k.axpyRows(w2, d, act, h, na, y);
      } else {
        const w = il + l * 2 * mat;
        k.gemvRows(w, d, idx2, nb, x, h);
        k.axpyRows(w, d, act2, h, na, y);
      }
    }
    t[name].push((performance.now() - t0) * 1000 / L);
  }
}
for (const key in t) console.log(`${key.padEnd(12)} ${med(t[key]).toFixed(1)} µs per layer [${t[key].map((v) => v.toFixed(0)).join(' ')}]`);
k.dispose();
