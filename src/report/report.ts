/**
 * `sparselm report` without the command line: reads run directories, builds
 * the figures, and writes into the output directory
 *   index.html          the page, figures inline (self-contained)
 *   <figure>.svg/.png   each figure as a file
 *   report.json         every plotted number, the runs, the depth × width
 *                       sweeps (every configuration's numbers), the figures omitted
 * Files are replaced atomically; other files in the output directory are left
 * alone. Reads run directories only, so it may run while they still train.
 */

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { readInputs } from './runs.js';
import { buildFigures, type Omission, type Row } from './figures.js';
import { prefixIds, specToSvg, svgToPng } from './render.js';
import { renderPage } from './html.js';

export const REPORT_JSON_VERSION = 1;

export interface ReportJson {
  version: number;
  generated: string;
  runs: { name: string; dir: string; train_points: number; eval_points: number; config: Record<string, unknown> | null; inputs: { analysis: boolean; sweep: boolean; calibration: boolean } }[];
  figures: { id: string; title: string; svg: string; png: string; rows: Row[] }[];
  /** Depth × width sweeps: per configuration its size, final validation loss and % nonzero per layer and split. */
  sweeps: {
    name: string;
    dir: string;
    configs: { name: string; n_layers: number; d_ff: number; params: number | null; final_val_loss: number | null; splits: { split: string; pct_nonzero_mean: number; layers: { layer: string; pct_nonzero_mean: number; pct_nonzero_median: number | null }[] }[] }[];
  }[];
  omitted: Omission[];
}

export interface ReportResult {
  outDir: string;
  html: string;
  files: string[];
  report: ReportJson;
}

export async function writeReport(runDirs: string[], outDirArg: string, opts: { now?: Date } = {}): Promise<ReportResult> {
  const { runs, sweeps } = readInputs(runDirs);
  const { figures, omitted } = buildFigures(runs, sweeps);
  const outDir = resolve(outDirArg);
  mkdirSync(outDir, { recursive: true });
  const generated = (opts.now ?? new Date()).toISOString();
  const files: string[] = [];
  const rendered: { figure: (typeof figures)[number]; svg: string }[] = [];
  for (const figure of figures) {
    const svg = await specToSvg(figure.spec);
    const svgPath = join(outDir, `${figure.id}.svg`);
    const pngPath = join(outDir, `${figure.id}.png`);
    writeFileAtomic(svgPath, svg);
    writeFileAtomic(pngPath, svgToPng(svg));
    files.push(svgPath, pngPath);
    rendered.push({ figure, svg: prefixIds(svg, figure.id) });
  }
  const report: ReportJson = {
    version: REPORT_JSON_VERSION,
    generated,
    runs: runs.map((r) => ({
      name: r.name,
      dir: r.dir,
      train_points: r.train.length,
      eval_points: r.evals.length,
      config: r.config,
      inputs: { analysis: r.analysis !== null, sweep: r.sweep !== null, calibration: r.calibration !== null },
    })),
    figures: figures.map((f) => ({ id: f.id, title: f.title, svg: `${f.id}.svg`, png: `${f.id}.png`, rows: f.rows })),
    sweeps: sweeps.map((sw) => ({
      name: sw.name,
      dir: sw.dir,
      configs: sw.configs.map((c) => ({
        name: c.name, n_layers: c.n_layers, d_ff: c.d_ff, params: c.params, final_val_loss: c.final_val_loss,
        splits: c.splits.map((sp) => ({
          split: sp.split,
          pct_nonzero_mean: 100 * sp.mean,
          layers: sp.layers.map((l) => ({ layer: l.layer, pct_nonzero_mean: 100 * l.mean, pct_nonzero_median: l.median === null ? null : 100 * l.median })),
        })),
      })),
    })),
    omitted,
  };
  const jsonPath = join(outDir, 'report.json');
  writeFileAtomic(jsonPath, JSON.stringify(report, null, 1) + '\n');
  const html = join(outDir, 'index.html');
  writeFileAtomic(html, renderPage({ runs, sweeps, figures: rendered, omitted, generated }));
  files.push(jsonPath, html);
  return { outDir, html, files, report };
}
