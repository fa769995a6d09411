/**
 * `sparselm report runs/x [runs/y ...] --out report/`: figures of the Lazy
 * Neuron measurements (nonzero FF activations per layer over training, final
 * train and validation sparsity, loss curves, and, when a run directory has
 * them, firing-frequency histograms, sweeps and calibration) as a
 * self-contained HTML page, SVG and PNG files, and report.json.
 */

import { Command } from 'commander';
import { writeReport } from '../report/report.js';

export function addReportCommand(program: Command): void {
  program
    .command('report')
    .description('plot runs (sparsity per layer over training, final sparsity, loss) as an HTML page, SVG/PNG figures and report.json')
    .argument('<runs...>', 'run directories (each with metrics.jsonl), or sweep directories of `sparselm sweep` (their runs and the depth x width figures)')
    .requiredOption('--out <dir>', 'output directory (created; index.html, <figure>.svg/.png, report.json are replaced)')
    .action(async (runs: string[], o: { out: string }) => {
      const r = await writeReport(runs, o.out);
      for (const f of r.report.figures) process.stdout.write(`figure ${f.id}: ${f.rows.length} values\n`);
      for (const m of r.report.omitted) process.stdout.write(`omitted ${m.id}: needs ${m.needs}\n`);
      process.stdout.write(`wrote ${r.html} (${r.files.length} files in ${r.outDir})\n`);
    });
}
