/**
 * Finds plottable data in the optional inputs other commands write into a run
 * directory, whose formats are not fixed yet: analysis.json (neuron firing
 * frequencies), sweep.json (a metric against a swept setting) and
 * calibration.json (a reliability diagram). Each detector walks the JSON
 * looking for a recognisable shape and returns null when it finds none, so an
 * unknown format is skipped silently rather than plotted wrongly. The one
 * fixed format read here is the depth × width sweep.json of `sparselm sweep`
 * (findDepthWidthSweep), recognised by its "kind".
 *
 * Invariant: every number returned is finite; histogram counts are integers.
 */

type Json = unknown;
const isObj = (v: Json): v is Record<string, Json> => v !== null && typeof v === 'object' && !Array.isArray(v);
const finite = (v: Json): v is number => typeof v === 'number' && Number.isFinite(v);
const numArray = (v: Json): v is number[] => Array.isArray(v) && v.length > 0 && v.every(finite);

/** One layer's firing-frequency histogram: `counts[i]` neurons fire with frequency in [edges[i], edges[i+1]). */
export interface FiringHistogram {
  layer: string;
  edges: number[];
  counts: number[];
}

const FREQ_KEY = /fir(e|ing)[_ -]?(freq|frequenc|rate)|^freq(uency|uencies)?$|activation[_ -]?freq/i;
const LABEL_KEYS = ['layer', 'name', 'block', 'id'];
export const FIRING_BINS = 20;

/** Bins per-neuron frequencies in [0, 1] into FIRING_BINS equal bins (1.0 falls in the last). */
export function histogram(values: number[], bins = FIRING_BINS): { edges: number[]; counts: number[] } {
  const edges = Array.from({ length: bins + 1 }, (_, i) => i / bins);
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.max(0, Math.floor(v * bins)))]++;
  return { edges, counts };
}

function asHistogram(v: Json): { edges: number[]; counts: number[] } | null {
  if (numArray(v)) return v.every((x) => x >= 0 && x <= 1) ? histogram(v) : null;
  if (isObj(v)) {
    const edges = v.edges ?? v.bin_edges ?? v.bins;
    const counts = v.counts ?? v.count ?? v.hist;
    if (numArray(edges) && numArray(counts) && edges.length === counts.length + 1) return { edges, counts };
  }
  return null;
}

/** Counts of neurons per equal frequency bin over [0, 1] (as `sparselm analyze` writes them), or null. */
function asCountHistogram(v: Json): { edges: number[]; counts: number[] } | null {
  if (!numArray(v) || !v.every((c) => Number.isInteger(c) && c >= 0)) return null;
  return { edges: Array.from({ length: v.length + 1 }, (_, i) => i / v.length), counts: v };
}

/**
 * Firing-frequency histograms per layer, from any of:
 *   { layers: [ { layer: "blk.0", firing: { histogram: number[] (neuron counts per 1/bins of frequency), ... } }, ... ] }
 *     (the output of `sparselm analyze --json`, written as analysis.json by `--save`)
 *   { <freq key>: { "blk.0": number[] | {edges, counts}, ... } }
 *   { layers: [ { name: "blk.0", <freq key>: number[] | {edges, counts} }, ... ] }
 *   { "blk.0": { <freq key>: ... }, ... }
 * where <freq key> matches e.g. firing_frequency, fire_freq, firing_rate, freq.
 */
export function findFiringHistograms(analysis: Json): FiringHistogram[] | null {
  const found: FiringHistogram[] = [];
  const walk = (v: Json, label: string | null, depth: number): void => {
    if (depth > 5) return;
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        const own = isObj(x) ? LABEL_KEYS.map((k) => x[k]).find((l) => typeof l === 'string' || finite(l)) : undefined;
        walk(x, own !== undefined ? String(own) : `${label ?? 'layer'} ${i}`, depth + 1);
      });
      return;
    }
    if (!isObj(v)) return;
    for (const [k, x] of Object.entries(v)) {
      // `sparselm analyze --json` / analysis.json: layers[i].firing.histogram holds neuron counts per 1/bins of frequency.
      if (k === 'firing' && isObj(x)) {
        const h = asCountHistogram(x.histogram);
        if (h) found.push({ layer: label ?? 'all layers', ...h });
        continue;
      }
      if (FREQ_KEY.test(k)) {
        const h = asHistogram(x);
        if (h) {
          found.push({ layer: label ?? 'all layers', ...h });
          continue;
        }
        if (isObj(x)) {
          for (const [layer, y] of Object.entries(x)) {
            const hy = asHistogram(y);
            if (hy) found.push({ layer, ...hy });
          }
          continue;
        }
      }
      walk(x, /^(layers|blocks|per_layer)$/i.test(k) ? label : k, depth + 1);
    }
  };
  walk(analysis, null, 0);
  return found.length > 0 ? found : null;
}

/** A sweep: rows of numbers, one x field and the metric fields plotted against it. */
export interface Sweep {
  x: string;
  metrics: string[];
  rows: Record<string, number>[];
}

const SWEEP_X = /^(k|topk_k|top_k|threshold|density|sparsity|keep|fraction|ratio|n|d_ff|steps?)$/i;
const SWEEP_Y = /loss|ppl|perplexity|bits|acc|ece|calib|speed|tokens_per_s|ms|time|latency|nonzero/i;

/** Finds an array of ≥2 objects with numeric fields (the file itself or under rows/results/points/runs/sweep). */
export function findSweep(sweep: Json): Sweep | null {
  let rows: Json = sweep;
  if (isObj(sweep)) rows = ['rows', 'results', 'points', 'runs', 'sweep', 'data'].map((k) => sweep[k]).find(Array.isArray);
  if (!Array.isArray(rows) || rows.length < 2 || !rows.every(isObj)) return null;
  const numeric = Object.keys(rows[0]).filter((k) => rows.every((r) => finite((r as Record<string, Json>)[k])));
  if (numeric.length < 2) return null;
  const x = numeric.find((k) => SWEEP_X.test(k)) ?? numeric[0];
  let metrics = numeric.filter((k) => k !== x && SWEEP_Y.test(k));
  if (metrics.length === 0) metrics = numeric.filter((k) => k !== x);
  const clean = rows.map((r) => Object.fromEntries([x, ...metrics].map((k) => [k, (r as Record<string, number>)[k]])));
  return { x, metrics, rows: clean.sort((a, b) => a[x] - b[x]) };
}

/** A reliability diagram: per confidence bin, mean confidence, accuracy and count. */
export interface CalibrationBin {
  confidence: number;
  accuracy: number;
  count: number | null;
}

export interface Calibration {
  bins: CalibrationBin[];
  ece: number | null;
}

/**
 * From { bins: [ {confidence, accuracy, count?}, ... ], ece? } or
 * { confidence: number[], accuracy: number[], count?: number[], ece? },
 * possibly nested under a `calibration` key (so analysis.json may carry it).
 */
export function findCalibration(v: Json): Calibration | null {
  if (!isObj(v)) return null;
  if (isObj(v.calibration)) return findCalibration(v.calibration);
  const ece = finite(v.ece) ? v.ece : finite(v.ECE) ? v.ECE : null;
  const conf = (o: Record<string, Json>) => o.confidence ?? o.conf ?? o.mean_confidence;
  const acc = (o: Record<string, Json>) => o.accuracy ?? o.acc;
  let bins: CalibrationBin[] = [];
  if (Array.isArray(v.bins) && v.bins.every(isObj)) {
    bins = v.bins.flatMap((b) => {
      const c = conf(b);
      const a = acc(b);
      const n = b.count ?? b.n;
      return finite(c) && finite(a) ? [{ confidence: c, accuracy: a, count: finite(n) ? n : null }] : [];
    });
  } else {
    const c = conf(v);
    const a = acc(v);
    const n = v.count ?? v.counts;
    if (numArray(c) && numArray(a) && c.length === a.length) {
      bins = c.map((ci, i) => ({ confidence: ci, accuracy: a[i], count: numArray(n) && n.length === c.length ? n[i] : null }));
    }
  }
  return bins.length > 0 ? { bins, ece } : null;
}

/** One configuration of a depth × width sweep (`sparselm sweep`'s sweep.json), as plotted. */
export interface DepthWidthConfig {
  name: string;
  n_layers: number;
  d_ff: number;
  params: number | null;
  final_val_loss: number | null;
  /** Per split ('validation', 'train'): per-layer mean nonzero fraction in layer order, and their mean. */
  splits: { split: string; layers: { layer: string; mean: number; median: number | null }[]; mean: number }[];
}

export interface DepthWidthSweep {
  configs: DepthWidthConfig[];
}

function asSplit(split: string, v: Json): DepthWidthConfig['splits'][number] | null {
  if (!isObj(v) || !Array.isArray(v.layers)) return null;
  const layers = v.layers.flatMap((l) => (isObj(l) && typeof l.layer === 'string' && finite(l.mean) ? [{ layer: l.layer, mean: l.mean, median: finite(l.median) ? l.median : null }] : []));
  if (layers.length === 0 || layers.length !== v.layers.length) return null;
  return { split, layers, mean: finite(v.mean) ? v.mean : layers.reduce((s, l) => s + l.mean, 0) / layers.length };
}

/**
 * The sweep.json of `sparselm sweep` ({ kind: "depth-width", configs: [{ name, n_layers, d_ff,
 * params, final_val_loss, validation: { layers: [{ layer, mean, median }], mean }, train: ... }] }),
 * or null for anything else. Configurations without a readable validation split are skipped.
 */
export function findDepthWidthSweep(v: Json): DepthWidthSweep | null {
  if (!isObj(v) || v.kind !== 'depth-width' || !Array.isArray(v.configs)) return null;
  const configs = v.configs.flatMap((c): DepthWidthConfig[] => {
    if (!isObj(c) || !finite(c.n_layers) || !finite(c.d_ff)) return [];
    const splits = (['validation', 'train'] as const).flatMap((s) => { const x = asSplit(s, c[s]); return x ? [x] : []; });
    if (splits[0]?.split !== 'validation') return [];
    return [{
      name: typeof c.name === 'string' ? c.name : `L${c.n_layers}-ff${c.d_ff}`,
      n_layers: c.n_layers, d_ff: c.d_ff,
      params: finite(c.params) ? c.params : null,
      final_val_loss: finite(c.final_val_loss) ? c.final_val_loss : null,
      splits,
    }];
  });
  if (configs.length === 0) return null;
  return { configs: configs.sort((a, b) => a.n_layers - b.n_layers || a.d_ff - b.d_ff) };
}
