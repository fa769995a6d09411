/**
 * The report page: one self-contained HTML file (inline CSS, inline SVG
 * figures, no scripts, no network), listing the runs, drawing each figure,
 * and naming the inputs that would add the figures not drawn. A depth × width
 * sweep also gets a table of its configurations.
 *
 * Every string from a run (names, paths, config values) is HTML-escaped; the
 * SVGs are Vega's output, inlined as they are apart from prefixed ids.
 */

import type { Figure, Omission } from './figures.js';
import type { RunData, SweepData } from './runs.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

/** Config fields that tell runs apart, in this order, when present. */
const CONFIG_FIELDS = ['ffn', 'attn', 'output', 'activation', 'n_layers', 'd_model', 'd_ff', 'topk_k', 'sparse_block'];

function runsTable(runs: RunData[]): string {
  const head = ['run', 'directory', 'last step', 'last val loss', ...CONFIG_FIELDS];
  const body = runs.map((r) => {
    const lastStep = Math.max(-Infinity, ...r.train.map((t) => t.step), ...r.evals.map((e) => e.step));
    const lastVal = [...r.evals].reverse().find((e) => e.valLoss !== null)?.valLoss;
    const cfg = CONFIG_FIELDS.map((f) => {
      const v = r.config?.[f];
      return v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
    });
    const cells = [r.name, r.dir, Number.isFinite(lastStep) ? String(lastStep) : '', lastVal !== undefined && lastVal !== null ? lastVal.toFixed(4) : '', ...cfg];
    return `<tr>${cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`;
  });
  return `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${body.join('')}</tbody></table>`;
}

/** One row per configuration: size, final validation loss, % nonzero (validation) mean over layers and per layer. */
function sweepTable(s: SweepData): string {
  const maxLayers = Math.max(0, ...s.configs.map((c) => c.splits[0].layers.length));
  const head = ['config', 'layers', 'd_ff', 'parameters', 'final val loss', '% nonzero (val, mean)', '% nonzero (train, mean)', ...Array.from({ length: maxLayers }, (_, i) => `blk.${i} (val)`)];
  const p = (f: number | undefined) => (f === undefined ? '' : (100 * f).toFixed(2));
  const body = s.configs.map((c) => {
    const val = c.splits.find((x) => x.split === 'validation');
    const train = c.splits.find((x) => x.split === 'train');
    const cells = [c.name, String(c.n_layers), String(c.d_ff), c.params === null ? '' : String(c.params), c.final_val_loss === null ? '' : c.final_val_loss.toFixed(4),
      p(val?.mean), p(train?.mean), ...Array.from({ length: maxLayers }, (_, i) => p(val?.layers[i]?.mean))];
    return `<tr>${cells.map((x) => `<td>${escapeHtml(x)}</td>`).join('')}</tr>`;
  });
  return `<h2>Depth × width sweep ${escapeHtml(s.name)}</h2>
<p>${escapeHtml(s.dir)}: ${s.configs.length} configuration(s); percentages of nonzero FF activations per token, mean over tokens.</p>
<table class="sweep"><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${body.join('')}</tbody></table>`;
}

export function renderPage(opts: { runs: RunData[]; sweeps?: SweepData[]; figures: { figure: Figure; svg: string }[]; omitted: Omission[]; generated: string }): string {
  const figs = opts.figures.map(({ figure, svg }) => `
<figure id="fig-${escapeHtml(figure.id)}" class="figure">
<div class="plot">${svg}</div>
<figcaption>${escapeHtml(figure.caption)} Files: <a href="${escapeHtml(figure.id)}.svg">${escapeHtml(figure.id)}.svg</a>, <a href="${escapeHtml(figure.id)}.png">${escapeHtml(figure.id)}.png</a>; ${figure.rows.length} plotted values in report.json.</figcaption>
</figure>`);
  const omitted = opts.omitted.length === 0 ? '' : `
<section id="omitted">
<h2>Figures not drawn</h2>
<p>These runs lack the inputs for the following figures; adding the input named to a run directory and re-running <code>sparselm report</code> adds the figure.</p>
<ul>${opts.omitted.map((o) => `<li><b>${escapeHtml(o.title)}</b>: needs ${escapeHtml(o.needs)}.</li>`).join('')}</ul>
</section>`;
  const notes = opts.runs.filter((r) => r.skippedLines > 0).map((r) => `<li>${escapeHtml(r.name)}: ${r.skippedLines} unreadable line(s) of metrics.jsonl skipped (a run still writing its last line?).</li>`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sparselm report</title>
<style>
body { font-family: 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; font-size: 0.85rem; margin-bottom: 1rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
figure { margin: 2rem 0; }
.plot { overflow-x: auto; }
.plot svg { max-width: none; }
figcaption { font-size: 0.9rem; color: #444; max-width: 60rem; }
</style>
</head>
<body>
<h1>sparselm report</h1>
<p>Generated ${escapeHtml(opts.generated)} from ${opts.runs.length} run(s). Every plotted number is in <a href="report.json">report.json</a>.</p>
${runsTable(opts.runs)}
${(opts.sweeps ?? []).map(sweepTable).join('\n')}
${notes.length > 0 ? `<ul class="notes">${notes.join('')}</ul>` : ''}
${figs.join('\n')}
${omitted}
</body>
</html>
`;
}
