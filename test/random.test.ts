/**
 * Seeded random draws: reproducible from (seed, position), different across
 * seeds and positions, and distributed as claimed. The distribution checks
 * compare sample moments with their standard errors (n = 200k draws, bounds
 * at 6 standard errors: a correct generator fails with probability ~1e-9).
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as S from '../src/index.js';

const N = 200_000;

function moments(data: ArrayLike<number>): { mean: number; variance: number; min: number; max: number } {
  let s = 0; let s2 = 0; let min = Infinity; let max = -Infinity;
  for (let i = 0; i < data.length; i++) { s += data[i]; s2 += data[i] * data[i]; min = Math.min(min, data[i]); max = Math.max(max, data[i]); }
  const mean = s / data.length;
  return { mean, variance: s2 / data.length - mean * mean, min, max };
}

describe('seeded random draws', () => {
  it('are reproducible and advance the generator', () => {
    const g1 = new S.Rng(42);
    const a = S.randn([100], g1).toArray();
    const b = S.randn([100], g1).toArray();
    const again = S.randn([200], new S.Rng(42)).toArray();
    assert.deepEqual(Array.from(again), [...a, ...b], 'two draws of 100 equal one draw of 200');
    assert.notDeepEqual(Array.from(S.randn([100], new S.Rng(43)).toArray()), Array.from(a), 'another seed differs');
    assert.equal(g1.position, 200);
  });

  it('uniform lies in (0, 1) with mean 1/2 and variance 1/12', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      const m = moments(S.rand([N], new S.Rng(1), { dtype }).toArray());
      assert.ok(m.min > 0 && m.max < 1, `${dtype} range ${m.min}..${m.max}`);
      assert.ok(Math.abs(m.mean - 0.5) < 6 * Math.sqrt(1 / 12 / N), `${dtype} mean ${m.mean}`);
      assert.ok(Math.abs(m.variance - 1 / 12) < 6 * Math.sqrt(1 / 180 / N), `${dtype} variance ${m.variance}`);
    }
  });

  it('normal has mean 0 and variance 1', () => {
    const m = moments(S.randn([N], new S.Rng(2), { dtype: 'float64' }).toArray());
    assert.ok(Math.abs(m.mean) < 6 / Math.sqrt(N), `mean ${m.mean}`);
    assert.ok(Math.abs(m.variance - 1) < 6 * Math.sqrt(2 / N), `variance ${m.variance}`);
  });

  it('Gumbel has mean γ and variance π²/6', () => {
    const m = moments(S.gumbel([N], new S.Rng(3), { dtype: 'float64' }).toArray());
    const gamma = 0.5772156649015329;
    const variance = Math.PI ** 2 / 6;
    assert.ok(Math.abs(m.mean - gamma) < 6 * Math.sqrt(variance / N), `mean ${m.mean}`);
    // The Gumbel's fourth central moment is 27/5·(π²/6)², so var(s²) ≈ (27/5 - 1)·σ⁴ / n.
    assert.ok(Math.abs(m.variance - variance) < 6 * Math.sqrt((27 / 5 - 1) * variance ** 2 / N), `variance ${m.variance}`);
  });
});
