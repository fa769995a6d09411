/**
 * `sparselm report` without the command line: reads run directories, builds
 * the figures, and writes into the output directory
 *   index.html          the page, figures inline (self-contained)
 *   <figure>.svg/.png   each figure as a file
 *   report.json         every plotted number, the runs, the figures omitted
 * Files are replaced atomically; other files in the output directory are left
 * alone. Reads run directories only, so it may run while they still train.
 */

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { readRuns } from './runs.js';
import { buildFigures, type Omission, type Row } from './figures.js';
import { prefixIds, specToSvg, svgToPng } from './render.js';
import { renderPage } from './html.js';

export const REPORT_JSON_VERSION = 1;

export interface ReportJson {
  version: number;
  generated: string;
  runs: { name: string; dir: string; train_points: number; eval_points: number; config: Record<string, unknown> | null; inputs: { analysis: boolean; sweep: boolean; calibration: boolean } }[];
  figures: { id: string; title: string; svg: string; png: string; rows: Row[] }[];
  omitted: Omission[];
}

export interface ReportResult {
  outDir: string;
  html: string;
  files: string[];
  report: ReportJson;
}

export async function writeReport(runDirs: string[], outDirArg: string, opts: { now?: Date } = {}): Promise<ReportResult> {
  const runs = readRuns(runDirs);
  const { figures, omitted } = buildFigures(runs);
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
    omitted,
  };
  const jsonPath = join(outDir, 'report.json');
  writeFileAtomic(jsonPath, JSON.stringify(report, null, 1) + '\n');
  const html = join(outDir, 'index.html');
  writeFileAtomic(html, renderPage({ runs, figures: rendered, omitted, generated }));
  files.push(jsonPath, html);
  return { outDir, html, files, report };
}
