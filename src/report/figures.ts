/**
 * The report's figures as Vega-Lite specifications, each with the rows it
 * plots (report.json stores those rows, so every plotted number can be read
 * back). A figure whose data is absent from every run is not drawn; it is
 * returned as an Omission naming the input that would add it.
 *
 * Not a renderer (render.ts turns specs into SVG and PNG) and not a reader
 * (runs.ts, extras.ts). Invariants: every data row becomes exactly one point
 * or bar mark, so a test can count marks against rows; layers are ordered by
 * block index; runs keep the order given on the command line.
 */

import type { TopLevelSpec } from 'vega-lite';
import { sortLayers, type RunData, type SweepData } from './runs.js';
import { findCalibration, findFiringHistograms, findSweep } from './extras.js';

export type Row = Record<string, string | number | null>;

export interface Figure {
  /** File stem: `<id>.svg`, `<id>.png`. */
  id: string;
  title: string;
  caption: string;
  spec: TopLevelSpec;
  rows: Row[];
}

export interface Omission {
  id: string;
  title: string;
  /** What input would add the figure, written for the page. */
  needs: string;
}

/** Most points per training curve; longer runs are thinned evenly (first and last kept). */
export const MAX_POINTS_PER_CURVE = 200;

export function thin<T>(xs: T[], max = MAX_POINTS_PER_CURVE): T[] {
  if (xs.length <= max) return xs;
  const out: T[] = [];
  for (let i = 0; i < max; i++) out.push(xs[Math.round((i * (xs.length - 1)) / (max - 1))]);
  return out;
}

const pct = (f: number) => Math.round(f * 1e6) / 1e4; // fraction → percent, 4 decimals
const PANEL = { width: 280, height: 200 };
const point = { type: 'point', filled: true, size: 30, opacity: 0.9 } as const;

function sparsityOverSteps(runs: RunData[]): Figure | null {
  const rows: Row[] = [];
  for (const r of runs) {
    for (const p of thin(r.train.filter((t) => Object.keys(t.sparsity).length > 0))) {
      for (const layer of sortLayers(Object.keys(p.sparsity))) rows.push({ run: r.name, layer, step: p.step, pct_nonzero: pct(p.sparsity[layer]) });
    }
  }
  if (rows.length === 0) return null;
  const layers = sortLayers(rows.map((x) => String(x.layer)));
  const withData = runs.filter((r) => rows.some((x) => x.run === r.name)).map((r) => r.name);
  return {
    id: 'sparsity-over-steps',
    title: 'Nonzero FF activations per layer during training',
    caption: 'Percentage of nonzero entries of the FF activation per token (training batches, from metrics.jsonl "sparsity"), one panel per run, one line per layer: the layout of Figure 1 of the Lazy Neuron paper.',
    rows,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'Nonzero FF activations per layer during training',
      data: { values: rows },
      facet: { field: 'run', type: 'nominal', sort: withData, title: null },
      columns: Math.min(withData.length, 3),
      resolve: { scale: { y: 'independent' } },
      spec: {
        ...PANEL,
        encoding: {
          x: { field: 'step', type: 'quantitative', title: 'training step' },
          y: { field: 'pct_nonzero', type: 'quantitative', title: '% nonzero entries' },
          color: { field: 'layer', type: 'nominal', sort: layers, title: 'layer', scale: { scheme: 'viridis' } },
        },
        layer: [{ mark: { type: 'line', strokeWidth: 1.5 } }, { mark: point }],
      },
    },
  };
}

function finalSparsity(runs: RunData[]): Figure | null {
  const rows: Row[] = [];
  for (const r of runs) {
    const lastTrain = [...r.train].reverse().find((t) => Object.keys(t.sparsity).length > 0);
    const lastEval = [...r.evals].reverse().find((e) => Object.keys(e.sparsity).length > 0);
    for (const [split, p] of [['train', lastTrain], ['validation', lastEval]] as const) {
      if (!p) continue;
      for (const layer of sortLayers(Object.keys(p.sparsity))) rows.push({ run: r.name, layer, split, step: p.step, pct_nonzero: pct(p.sparsity[layer]) });
    }
  }
  if (rows.length === 0) return null;
  const layers = sortLayers(rows.map((x) => String(x.layer)));
  const withData = runs.filter((r) => rows.some((x) => x.run === r.name)).map((r) => r.name);
  return {
    id: 'final-sparsity',
    title: 'Final nonzero FF activations per layer, train and validation',
    caption: 'Percentage of nonzero FF activations per layer at the last logged training step ("sparsity", one training batch) and at the last validation pass ("val_sparsity"); report.json gives the step of each bar.',
    rows,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'Final nonzero FF activations per layer, train and validation',
      data: { values: rows },
      facet: { field: 'run', type: 'nominal', sort: withData, title: null },
      columns: Math.min(withData.length, 3),
      spec: {
        ...PANEL,
        mark: { type: 'bar' },
        encoding: {
          x: { field: 'layer', type: 'nominal', sort: layers, title: 'layer', axis: { labelAngle: 0 } },
          xOffset: { field: 'split', type: 'nominal', sort: ['train', 'validation'] },
          y: { field: 'pct_nonzero', type: 'quantitative', title: '% nonzero entries' },
          color: { field: 'split', type: 'nominal', sort: ['train', 'validation'], title: 'data', scale: { range: ['#4c78a8', '#f58518'] } },
          tooltip: [{ field: 'run' }, { field: 'layer' }, { field: 'split' }, { field: 'step', type: 'quantitative' }, { field: 'pct_nonzero', type: 'quantitative' }],
        },
      },
    },
  };
}

function lossCurves(runs: RunData[]): Figure | null {
  const rows: Row[] = [];
  for (const r of runs) {
    for (const p of thin(r.train.filter((t) => t.loss !== null))) rows.push({ run: r.name, split: 'train', step: p.step, loss: p.loss });
    for (const e of r.evals) if (e.valLoss !== null) rows.push({ run: r.name, split: 'validation', step: e.step, loss: e.valLoss });
  }
  if (rows.length === 0) return null;
  return {
    id: 'loss',
    title: 'Training and validation loss',
    caption: 'Cross-entropy loss (nats per token) of every run on shared axes: training loss per logged step (solid) and validation loss per evaluation (dashed).',
    rows,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'Training and validation loss',
      width: 560,
      height: 300,
      data: { values: rows },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'training step' },
        y: { field: 'loss', type: 'quantitative', title: 'loss (nats/token)', scale: { zero: false } },
        color: { field: 'run', type: 'nominal', sort: runs.map((r) => r.name), title: 'run' },
      },
      // strokeDash only on the lines, so one 'data' legend shows solid and dashed strokes.
      layer: [
        { mark: { type: 'line', strokeWidth: 1.5 }, encoding: { strokeDash: { field: 'split', type: 'nominal', sort: ['train', 'validation'], title: 'data' } } },
        { mark: point, encoding: { detail: { field: 'split', type: 'nominal' } } },
      ],
    },
  };
}

function firingFrequency(runs: RunData[]): Figure | null {
  const rows: Row[] = [];
  for (const r of runs) {
    for (const h of findFiringHistograms(r.analysis) ?? []) {
      h.counts.forEach((count, i) => rows.push({ run: r.name, layer: h.layer, freq_lo: h.edges[i], freq_hi: h.edges[i + 1], neurons: count }));
    }
  }
  if (rows.length === 0) return null;
  const layers = sortLayers(rows.map((x) => String(x.layer)));
  return {
    id: 'firing-frequency',
    title: 'Neuron firing frequency',
    caption: 'How many FF neurons fire (are nonzero) on a given fraction of tokens, per layer, from analysis.json. Lazy neurons sit near 0; a spike at 0 would be dead neurons.',
    rows,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'Neuron firing frequency',
      data: { values: rows },
      facet: { row: { field: 'run', type: 'nominal', sort: runs.map((r) => r.name), title: null }, column: { field: 'layer', type: 'nominal', sort: layers, title: null } },
      resolve: { scale: { y: 'independent' } },
      spec: {
        width: 180,
        height: 140,
        // A rect from 0 to the count over each bin's [lo, hi): with x and x2 ranged, a 'bar' would be read as horizontal.
        mark: { type: 'rect', stroke: 'white', strokeWidth: 0.5 },
        encoding: {
          x: { field: 'freq_lo', type: 'quantitative', title: 'fraction of tokens firing', scale: { domain: [0, 1] } },
          x2: { field: 'freq_hi' },
          y: { field: 'neurons', type: 'quantitative', title: 'neurons', scale: { zero: true } },
          y2: { datum: 0 },
        },
      },
    },
  };
}

function sweeps(runs: RunData[]): Figure | null {
  const rows: Row[] = [];
  let xName = '';
  for (const r of runs) {
    const s = findSweep(r.sweep);
    if (!s) continue;
    if (xName === '') xName = s.x;
    if (s.x !== xName) continue; // one x axis per figure; runs sweeping another setting are left out
    for (const row of s.rows) for (const m of s.metrics) rows.push({ run: r.name, metric: m, x: row[s.x], value: row[m] });
  }
  if (rows.length === 0) return null;
  return {
    id: 'sweep',
    title: `Sweep over ${xName}`,
    caption: `Metrics from sweep.json against the swept setting "${xName}", one panel per metric.`,
    rows,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `Sweep over ${xName}`,
      data: { values: rows },
      facet: { field: 'metric', type: 'nominal', title: null },
      columns: 3,
      resolve: { scale: { y: 'independent' } },
      spec: {
        ...PANEL,
        encoding: {
          x: { field: 'x', type: 'quantitative', title: xName },
          y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
          color: { field: 'run', type: 'nominal', sort: runs.map((r) => r.name), title: 'run' },
        },
        layer: [{ mark: { type: 'line', strokeWidth: 1.5 } }, { mark: point }],
      },
    },
  };
}

function calibration(runs: RunData[]): Figure | null {
  const rows: Row[] = [];
  const eces: string[] = [];
  for (const r of runs) {
    const c = findCalibration(r.calibration) ?? findCalibration(r.analysis);
    if (!c) continue;
    if (c.ece !== null) eces.push(`${r.name}: ECE ${c.ece.toFixed(4)}`);
    for (const b of c.bins) rows.push({ run: r.name, confidence: b.confidence, accuracy: b.accuracy, count: b.count });
  }
  if (rows.length === 0) return null;
  return {
    id: 'calibration',
    title: 'Calibration (reliability diagram)',
    caption: `Accuracy against mean confidence per confidence bin; the dashed diagonal is perfect calibration.${eces.length > 0 ? ' ' + eces.join('; ') + '.' : ''}`,
    rows,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'Calibration (reliability diagram)',
      width: 300,
      height: 300,
      layer: [
        {
          data: { values: [{ d: 0 }, { d: 1 }] },
          mark: { type: 'line', strokeDash: [4, 4], color: '#999' },
          encoding: { x: { field: 'd', type: 'quantitative' }, y: { field: 'd', type: 'quantitative' } },
        },
        {
          data: { values: rows },
          encoding: {
            x: { field: 'confidence', type: 'quantitative', title: 'confidence', scale: { domain: [0, 1] } },
            y: { field: 'accuracy', type: 'quantitative', title: 'accuracy', scale: { domain: [0, 1] } },
            color: { field: 'run', type: 'nominal', sort: runs.map((r) => r.name), title: 'run' },
          },
          layer: [{ mark: { type: 'line', strokeWidth: 1.5 } }, { mark: point }],
        },
      ],
    },
  };
}

const MEAN_PANEL = 'mean over layers';

/** Validation and training rows of one config: the mean over layers and each layer. */
function depthWidthRows(sweeps: SweepData[], panelsOf: (c: SweepData['configs'][number], split: SweepData['configs'][number]['splits'][number]) => [string, number][]): Row[] {
  const rows: Row[] = [];
  for (const s of sweeps) {
    for (const c of s.configs) {
      for (const sp of c.splits) {
        for (const [panel, f] of panelsOf(c, sp)) {
          rows.push({ sweep: s.name, panel: sweeps.length > 1 ? `${s.name}: ${panel}` : panel, config: c.name, n_layers: c.n_layers, d_ff: c.d_ff, split: sp.split, pct_nonzero: pct(f) });
        }
      }
    }
  }
  return rows;
}

/** The panels in order: per sweep, the summary panels first, then layers by index. */
function panelOrder(rows: Row[], first: string[]): string[] {
  const names = [...new Set(rows.map((r) => String(r.panel)))];
  const rank = (p: string) => { const i = first.findIndex((f) => p.endsWith(f)); return i >= 0 ? i : first.length; };
  const layerOrder = sortLayers(names);
  return names.sort((a, b) => rank(a) - rank(b) || layerOrder.indexOf(a) - layerOrder.indexOf(b));
}

/** Lines of % nonzero per split (solid validation, dashed train), one point per row. */
function sweepSpec(title: string, rows: Row[], panels: string[], x: { field: string; title: string }, series: { field: string; title: string }): TopLevelSpec {
  const seriesValues = [...new Set(rows.map((r) => Number(r[series.field])))].sort((a, b) => a - b);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values: rows },
    facet: { field: 'panel', type: 'nominal', sort: panels, title: null },
    columns: Math.min(panels.length, 3),
    spec: {
      width: 240,
      height: 180,
      encoding: {
        x: { field: x.field, type: 'quantitative', title: x.title, scale: { type: 'log', base: 2 }, axis: { values: [...new Set(rows.map((r) => Number(r[x.field])))].sort((a, b) => a - b), format: 'd' } },
        y: { field: 'pct_nonzero', type: 'quantitative', title: '% nonzero entries', scale: { zero: true } },
        // viridis without its pale yellow end, which is hard to see on white.
        color: { field: series.field, type: 'ordinal', sort: seriesValues, title: series.title, scale: { scheme: { name: 'viridis', extent: [0, 0.8] } } },
        tooltip: [{ field: 'config' }, { field: 'split' }, { field: 'panel' }, { field: 'pct_nonzero', type: 'quantitative' }],
      },
      layer: [
        { mark: { type: 'line', strokeWidth: 1.5 }, encoding: { strokeDash: { field: 'split', type: 'nominal', sort: ['validation', 'train'], title: 'data' } } },
        { mark: point, encoding: { detail: { field: 'split', type: 'nominal' } } },
      ],
    },
  };
}

function sweepWidth(sweeps: SweepData[]): Figure | null {
  const rows = depthWidthRows(sweeps, (_, sp) => [[MEAN_PANEL, sp.mean], ...sp.layers.map((l): [string, number] => [l.layer, l.mean])]);
  if (rows.length === 0) return null;
  const title = 'Nonzero FF activations against width, one line per depth';
  return {
    id: 'sweep-width',
    title,
    caption: 'Depth × width sweep (sweep.json of `sparselm sweep`): mean percentage of nonzero FF activations per token against d_ff, one line per number of layers; the first panel is the mean over layers, then one panel per layer (a layer index exists only in models at least that deep). Solid: validation text; dashed: training text. The Lazy Neuron paper finds wider models sparser.',
    rows,
    spec: sweepSpec(title, rows, panelOrder(rows, [MEAN_PANEL]), { field: 'd_ff', title: 'd_ff (FF width)' }, { field: 'n_layers', title: 'layers' }),
  };
}

function sweepDepth(sweeps: SweepData[]): Figure | null {
  const FIRST = 'first layer (blk.0)';
  const LAST = 'last layer';
  const rows = depthWidthRows(sweeps, (_, sp) => [[MEAN_PANEL, sp.mean], [FIRST, sp.layers[0].mean], [LAST, sp.layers[sp.layers.length - 1].mean]]);
  if (rows.length === 0) return null;
  const title = 'Nonzero FF activations against depth, one line per width';
  return {
    id: 'sweep-depth',
    title,
    caption: 'Depth × width sweep: mean percentage of nonzero FF activations per token against the number of layers, one line per d_ff: mean over layers, first layer, last layer. Solid: validation text; dashed: training text. The Lazy Neuron paper finds deeper models sparser, and every layer but the first under 10% nonzero in T5.',
    rows,
    spec: sweepSpec(title, rows, panelOrder(rows, [MEAN_PANEL, FIRST, LAST]), { field: 'n_layers', title: 'layers' }, { field: 'd_ff', title: 'd_ff' }),
  };
}

/** Every figure the runs and sweeps have data for, in page order, and the ones they lack. */
export function buildFigures(runs: RunData[], depthWidth: SweepData[] = []): { figures: Figure[]; omitted: Omission[] } {
  const sweepNeeds = 'a sweep directory written by `sparselm sweep` (its sweep.json, kind "depth-width") given to `sparselm report`';
  const makers: [string, string, (r: RunData[]) => Figure | null, string][] = [
    ['sparsity-over-steps', 'Nonzero FF activations per layer during training', sparsityOverSteps, 'training lines in metrics.jsonl with a "sparsity" object (logged by `sparselm train` for models with FF activation observers)'],
    ['final-sparsity', 'Final nonzero FF activations per layer', finalSparsity, 'a "sparsity" or "val_sparsity" object in metrics.jsonl'],
    ['loss', 'Training and validation loss', lossCurves, '"loss" or "val_loss" lines in metrics.jsonl'],
    ['firing-frequency', 'Neuron firing frequency', firingFrequency, 'an analysis.json in the run directory (`sparselm analyze --save` writes it: layers[i].firing.histogram), or per-neuron firing frequencies, e.g. {"firing_frequency": {"blk.0": [0.01, 0.3, ...]}}'],
    ['sweep', 'Sweep', sweeps, 'a sweep.json in the run directory: an array of rows such as [{"k": 32, "val_loss": 2.1}, ...]'],
    ['sweep-width', 'Nonzero FF activations against width, one line per depth', () => sweepWidth(depthWidth), sweepNeeds],
    ['sweep-depth', 'Nonzero FF activations against depth, one line per width', () => sweepDepth(depthWidth), sweepNeeds],
    ['calibration', 'Calibration (reliability diagram)', calibration, 'a calibration.json in the run directory (`sparselm analyze --calibration --save` writes it) or a "calibration" field in analysis.json: {"bins": [{"confidence": 0.55, "accuracy": 0.5, "count": 120}, ...], "ece": 0.03}'],
  ];
  const figures: Figure[] = [];
  const omitted: Omission[] = [];
  for (const [id, title, make, needs] of makers) {
    const f = make(runs);
    if (f) figures.push(f);
    else omitted.push({ id, title, needs });
  }
  return { figures, omitted };
}
