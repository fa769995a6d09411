/**
 * Learning-rate schedules: pure functions of the step, each described by a
 * small JSON config `{ kind, ... }` (what a checkpoint or preset stores) and
 * built by `makeSchedule`. A schedule holds no state, so resuming a run needs
 * only the optimizer's step.
 *
 * Step convention: `step` is the 1-based number of the update about to be
 * taken, i.e. `opt.update(schedule(opt.step + 1))`. Step 0 is allowed (it
 * gives 0 for schedules with warmup, lr for cosine without).
 *
 *   constant   lr(s) = lr
 *   cosine     lr(s) = lr·s/W                                  s <= W (linear warmup from 0)
 *                      minLr + (lr-minLr)·(1 + cos(π·p))/2      p = min(1, (s-W)/(N-W)), s > W
 *              so lr(W) = lr, lr(N) = minLr, and minLr after N. W = warmupSteps (0: none),
 *              N = totalSteps > W.
 *   rsqrt      lr(s) = lr · min(1, s/W) / √max(s, W)            W = warmupSteps >= 1
 *              trax's 'constant * linear_warmup * rsqrt_decay', the Scaling Transformers
 *              schedule: linear warmup to lr/√W at s = W, then lr/√s. With lr = 1 and
 *              W = 10⁴ it peaks at 1e-2 and then equals the Adafactor paper's relative
 *              step min(1e-2, 1/√s).
 */

import { check, SparselmError } from '../tensor/errors.js';

export type ScheduleConfig =
  | { kind: 'constant'; lr: number }
  | { kind: 'cosine'; lr: number; warmupSteps: number; totalSteps: number; minLr: number }
  | { kind: 'rsqrt'; lr: number; warmupSteps: number };

export type Schedule = (step: number) => number;

function num(op: string, cfg: object, key: string, ok: (x: number) => boolean, what: string): number {
  const x = (cfg as Record<string, unknown>)[key];
  check(typeof x === 'number' && Number.isFinite(x) && ok(x), op, () => `${key} must be ${what}, got ${JSON.stringify(x)}`);
  return x;
}

const nonNegative = (x: number): boolean => x >= 0;
const countFrom = (lo: number) => (x: number): boolean => Number.isInteger(x) && x >= lo;

/** The schedule a config describes. Configs are usually parsed JSON, so every field is checked here. */
export function makeSchedule(config: ScheduleConfig): Schedule {
  const op = 'makeSchedule';
  check(typeof config === 'object' && config !== null, op, () => 'config must be an object');
  const lr = num(op, config, 'lr', nonNegative, 'a finite number >= 0');
  const checkStep = (s: number): void => {
    check(Number.isFinite(s) && s >= 0, 'schedule', () => `step must be a finite number >= 0, got ${s}`);
  };
  switch (config.kind) {
    case 'constant':
      return (s) => { checkStep(s); return lr; };
    case 'cosine': {
      const W = num(op, config, 'warmupSteps', countFrom(0), 'an integer >= 0');
      const N = num(op, config, 'totalSteps', countFrom(W + 1), `an integer > warmupSteps (${W})`);
      const minLr = num(op, config, 'minLr', (x) => x >= 0 && x <= lr, `in [0, lr = ${lr}]`);
      return (s) => {
        checkStep(s);
        if (W > 0 && s <= W) return (lr * s) / W;
        const p = Math.min(1, (s - W) / (N - W));
        return minLr + ((lr - minLr) * (1 + Math.cos(Math.PI * p))) / 2;
      };
    }
    case 'rsqrt': {
      const W = num(op, config, 'warmupSteps', countFrom(1), 'an integer >= 1');
      return (s) => {
        checkStep(s);
        return (lr * Math.min(1, s / W)) / Math.sqrt(Math.max(s, W));
      };
    }
    default: {
      const bad: never = config;
      throw new SparselmError(`${op}: unknown schedule kind ${JSON.stringify((bad as { kind?: unknown }).kind)} (constant, cosine, rsqrt)`);
    }
  }
}
