/**
 * Progress for long work: a live bar on a terminal, and a plain line every
 * tenth of the way otherwise (logs, CI), both with the fields the caller
 * gives (loss, tokens/s, ...) and the time left.
 */

import { SingleBar } from 'cli-progress';

export interface Progress {
  update(done: number, fields: Record<string, string>): void;
  stop(): void;
}

export function progress(label: string, total: number, start = 0, log: (line: string) => void = (l) => process.stderr.write(l + '\n')): Progress {
  const t0 = performance.now();
  const tty = process.stderr.isTTY === true;
  let fieldNames: string[] = [];
  let bar: SingleBar | null = null;
  let lastLogged = start;
  const every = Math.max(1, Math.floor((total - start) / 10));
  return {
    update(done, fields) {
      if (tty) {
        if (!bar) {
          fieldNames = Object.keys(fields);
          const extra = fieldNames.map((f) => `${f} {${f}}`).join(' | ');
          bar = new SingleBar({ format: `${label} [{bar}] {value}/{total} | ${extra} | {eta_formatted} left`, hideCursor: true, stream: process.stderr, etaBuffer: 20 });
          bar.start(total, start, fields);
        }
        bar.update(done, fields);
        return;
      }
      if (done - lastLogged >= every || done === total) {
        lastLogged = done;
        const elapsed = (performance.now() - t0) / 1000;
        const left = done > start ? (elapsed / (done - start)) * (total - done) : NaN;
        const extra = Object.entries(fields).map(([k, v]) => `${k} ${v}`).join(' | ');
        log(`${label} ${done}/${total} | ${extra} | ${Number.isFinite(left) ? `${left.toFixed(0)} s left` : ''}`);
      }
    },
    stop() {
      bar?.stop();
    },
  };
}
