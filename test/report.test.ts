/**
 * `sparselm report`: renders a report from small synthetic run directories
 * and checks it as a reader would: each SVG has its title, its axes and one
 * mark per data row carrying the row's values, points sit where their values
 * say, the PNG is the SVG at twice the size, and figures whose inputs are
 * missing are named on the page instead of drawn; a depth × width sweep
 * directory (`sparselm sweep`) expands into its runs and draws % nonzero
 * against width and depth with each point where its value says. The browser test opens
 * index.html in headless Chromium (skipped when /usr/bin/chromium is absent),
 * checks every figure drew with no network request, and saves a screenshot.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeReport, type ReportJson } from '../src/report/report.js';
import { findCalibration, findDepthWidthSweep, findFiringHistograms, findSweep, histogram } from '../src/report/extras.js';
import { thin } from '../src/report/figures.js';

const MAIN = new URL('../src/cli/main.js', import.meta.url).pathname;
/** Debian's Chromium; SPARSELM_CHROMIUM points elsewhere (or at nothing, to check the skip). */
const CHROMIUM = process.env.SPARSELM_CHROMIUM ?? '/usr/bin/chromium';

/** A run dir with `layers` FF layers, training lines every 10 steps up to `steps`, evals every 50. */
function makeRun(root: string, name: string, o: { layers: number; steps: number; torn?: boolean; extras?: Record<string, unknown> }): string {
  const dir = join(root, name);
  mkdirSync(join(dir, 'checkpoints', `step-${String(o.steps).padStart(6, '0')}`), { recursive: true });
  const lines: string[] = [];
  for (let step = 10; step <= o.steps; step += 10) {
    const sparsity = Object.fromEntries(Array.from({ length: o.layers }, (_, l) => [`blk.${l}`, 0.5 * Math.exp(-step / (100 * (l + 1)))]));
    lines.push(JSON.stringify({ step, loss: 5 - step / 100, lr: 1e-3, grad_norm: 1, tokens: step * 100, tokens_per_s: 1000, epoch: 0, sparsity }));
    if (step % 50 === 0) {
      const val_sparsity = Object.fromEntries(Array.from({ length: o.layers }, (_, l) => [`blk.${l}`, 0.4 * Math.exp(-step / (100 * (l + 1)))]));
      lines.push(JSON.stringify({ step, val_loss: 5.2 - step / 100, val_bits_per_byte: 3, val_tokens: 1000, val_sparsity }));
    }
  }
  writeFileSync(join(dir, 'metrics.jsonl'), lines.join('\n') + (o.torn ? '\n{"step":999,"lo' : '\n'));
  writeFileSync(join(dir, 'checkpoints', `step-${String(o.steps).padStart(6, '0')}`, 'config.json'), JSON.stringify({ ffn: 'dense', n_layers: o.layers, d_ff: 64 }));
  for (const [file, v] of Object.entries(o.extras ?? {})) writeFileSync(join(dir, file), JSON.stringify(v));
  return dir;
}

/** The `<path>` marks of every `<g class="mark-<kind> role-mark ...">` group, as their aria-labels. */
function marks(svg: string, kind: 'symbol' | 'rect' | 'line'): string[] {
  const out: string[] = [];
  for (const g of svg.matchAll(new RegExp(`<g class="mark-${kind} role-mark[^"]*"[^>]*>(.*?)</g>`, 'g'))) {
    for (const p of g[1].matchAll(/<path([^>]*)\/>/g)) out.push(/aria-label="([^"]*)"/.exec(p[1])?.[1] ?? '');
  }
  return out;
}

const count = (s: string, sub: string) => s.split(sub).length - 1;
/** Texts of the chart title and of the facet panel titles. */
const titles = (svg: string) => [...svg.matchAll(/<g class="mark-text role-title-text"[^>]*><text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);

/** Synthetic % nonzero of a sweep config: falls with depth, width and layer index (so the figures' order is known). */
const sweepFraction = (L: number, F: number, layer: number, split: string) => (0.4 / L) * (64 / F) * (1 / (1 + layer)) * (split === 'train' ? 1.1 : 1);

/** A `sparselm sweep` directory over layers × widths; config run dirs (with metrics.jsonl) only when `withRuns`. */
function makeSweep(root: string, name: string, layers: number[], widths: number[], withRuns: boolean): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const split = (L: number, F: number, s: string) => {
    const ls = Array.from({ length: L }, (_, i) => ({ layer: `blk.${i}`, mean: sweepFraction(L, F, i, s), median: sweepFraction(L, F, i, s) * 0.9, std: 0.01 }));
    return { data: ['x'], tokens: 256, layers: ls, mean: ls.reduce((a, l) => a + l.mean, 0) / L, notes: [] };
  };
  const configs = layers.flatMap((L) => widths.map((F) => ({
    name: `L${L}-ff${F}`, dir: `L${L}-ff${F}`, n_layers: L, d_ff: F, d_model: 32, ffn: 'dense', activation: 'relu', params: 1000 * L + F, steps: 30,
    tokens_trained: 3000, final_val_loss: 3 - L / 10 - F / 1000, tokens_per_s: 1000, validation: split(L, F, 'validation'), train: split(L, F, 'train'),
  })));
  if (withRuns) for (const c of configs) makeRun(dir, c.name, { layers: c.n_layers, steps: 30 });
  writeFileSync(join(dir, 'sweep.json'), JSON.stringify({ version: 1, kind: 'depth-width', train_args: [], analysis_tokens: 256, layers, d_ff: widths, configs }));
  return dir;
}

function fixture() {
  const root = mkdtempSync(join(tmpdir(), 'sparselm-report-'));
  const freq = { 'blk.0': Array.from({ length: 64 }, (_, i) => (i % 16) / 16), 'blk.1': Array.from({ length: 64 }, (_, i) => (i % 4) / 40) };
  const a = makeRun(root, 'alpha', { layers: 2, steps: 100, extras: { 'analysis.json': { model: 'x', firing_frequency: freq } } });
  const b = makeRun(root, 'beta', {
    layers: 2,
    steps: 60,
    torn: true,
    extras: {
      'sweep.json': [{ k: 8, val_loss: 2.5, ece: 0.05 }, { k: 32, val_loss: 2.2, ece: 0.03 }, { k: 16, val_loss: 2.3, ece: 0.04 }],
      'calibration.json': { bins: [{ confidence: 0.3, accuracy: 0.25, count: 10 }, { confidence: 0.7, accuracy: 0.72, count: 20 }], ece: 0.031 },
    },
  });
  const plain = makeRun(root, 'plain', { layers: 3, steps: 30 });
  // Only sweep.json: adds the two sweep figures and no runs, so the other figures' counts stay those of alpha and beta.
  const sw = makeSweep(root, 'grid', [1, 2], [16, 32], false);
  return { root, a, b, plain, sw };
}

describe('report', () => {
  it('draws every figure from synthetic runs, one mark per plotted value', async () => {
    const { root, a, b, sw } = fixture();
    const out = join(root, 'out');
    const r = await writeReport([a, b, sw], out, { now: new Date('2026-01-01T00:00:00Z') });
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as ReportJson;
    assert.deepEqual(report.figures.map((f) => f.id), ['sparsity-over-steps', 'final-sparsity', 'loss', 'firing-frequency', 'sweep', 'sweep-width', 'sweep-depth', 'calibration']);
    assert.deepEqual(report.omitted, []);
    assert.deepEqual(report.runs.map((x) => x.name), ['alpha', 'beta'], 'a sweep directory without config runs adds no run');
    assert.equal(r.files.length, 8 * 2 + 2);
    const svgOf = (id: string) => readFileSync(join(out, `${id}.svg`), 'utf8');

    // (1) alpha: 10 steps × 2 layers, beta: 6 steps × 2 layers (the torn last line is skipped).
    const f1 = report.figures[0];
    assert.equal(f1.rows.length, 10 * 2 + 6 * 2);
    const s1 = svgOf('sparsity-over-steps');
    assert.deepEqual(titles(s1).sort(), ['Nonzero FF activations per layer during training', 'alpha', 'beta'], 'chart title and one panel per run');
    assert.equal(marks(s1, 'symbol').length, f1.rows.length);
    assert.equal(marks(s1, 'line').length, 2 * 2, 'one line per layer per run');
    assert.ok(count(s1, 'class="mark-group role-axis"') >= 4, 'x and y axes in both panels');
    assert.ok(s1.includes('>training step</text>') && s1.includes('>% nonzero entries</text>'));
    // Values: alpha blk.1 at step 100 is 50·exp(-0.5) %.
    const want = Math.round(50 * Math.exp(-0.5) * 1e4) / 1e4;
    assert.ok(f1.rows.some((x) => x.run === 'alpha' && x.layer === 'blk.1' && x.step === 100 && x.pct_nonzero === want));
    assert.ok(marks(s1, 'symbol').some((l) => l.includes('training step: 100;') && l.includes(`% nonzero entries: ${want}`) && l.includes('layer: blk.1')));

    // (2) last train and validation per layer: alpha has both, beta's last eval is step 50.
    const f2 = report.figures[1];
    assert.equal(f2.rows.length, 2 * 2 + 2 * 2);
    assert.equal(marks(svgOf('final-sparsity'), 'rect').length, f2.rows.length);
    assert.ok(f2.rows.some((x) => x.run === 'beta' && x.split === 'validation' && x.step === 50));
    assert.ok(f2.rows.some((x) => x.run === 'beta' && x.split === 'train' && x.step === 60));

    // (3) loss on shared axes: a lower loss is drawn lower on the page (larger SVG y) at every point.
    const f3 = report.figures[2];
    assert.equal(f3.rows.length, 10 + 2 + 6 + 1);
    const s3 = svgOf('loss');
    const pts = [...s3.matchAll(/aria-label="training step: ([\d.]+); loss \(nats\/token\): ([\d.]+);[^"]*"[^>]*transform="translate\(([\d.-]+),([\d.-]+)\)"/g)].map((m) => ({ loss: Number(m[2]), y: Number(m[4]) }));
    assert.equal(pts.length, f3.rows.length);
    for (const p of pts) for (const q of pts) if (p.loss < q.loss - 1e-9) assert.ok(p.y > q.y, `loss ${p.loss} drawn above loss ${q.loss}`);

    // (4) optional inputs.
    assert.equal(report.figures[3].rows.length, 2 * 20, 'two layers × 20 frequency bins');
    assert.equal(marks(svgOf('firing-frequency'), 'rect').length, 40);
    assert.equal(report.figures[3].rows.reduce((s, x) => s + Number(x.neurons), 0), 128, 'every neuron counted once');
    assert.ok(titles(svgOf('sweep')).includes('Sweep over k'));
    assert.deepEqual(titles(s3), ['Training and validation loss']);
    assert.equal(marks(svgOf('sweep'), 'symbol').length, 3 * 2);
    assert.equal(marks(svgOf('calibration'), 'symbol').length, 2);

    // PNG: a real PNG at twice the SVG's size.
    const png = readFileSync(join(out, 'loss.png'));
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
    const w = Number(/^<svg[^>]* width="(\d+)"/.exec(s3)?.[1]);
    assert.equal(png.readUInt32BE(16), 2 * w);

    // The page: self-contained, every figure inline, no scripts or remote resources.
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    assert.equal(count(html, '<svg '), 8);
    assert.ok(!/<script|<link|src="http|href="http/.test(html));
    assert.ok(html.includes('1 unreadable line'), 'the torn line is reported');
  });

  it('omits figures without data and names the inputs that would add them', async () => {
    const { root, plain } = fixture();
    const out = join(root, 'out-plain');
    const r = await writeReport([plain], out);
    assert.deepEqual(r.report.figures.map((f) => f.id), ['sparsity-over-steps', 'final-sparsity', 'loss']);
    assert.deepEqual(r.report.omitted.map((o) => o.id), ['firing-frequency', 'sweep', 'sweep-width', 'sweep-depth', 'calibration']);
    const html = readFileSync(r.html, 'utf8');
    assert.ok(html.includes('Figures not drawn') && html.includes('analysis.json') && html.includes('sweep.json') && html.includes('calibration.json'));
    assert.ok(!existsSync(join(out, 'sweep.svg')));
  });

  it('draws a depth × width sweep directory: its runs, % nonzero against width and depth, the numbers in report.json', async () => {
    const root = mkdtempSync(join(tmpdir(), 'sparselm-report-sweep-'));
    const sw = makeSweep(root, 'grid', [1, 2, 4], [16, 32], true);
    const out = join(root, 'out');
    const r = await writeReport([sw], out);
    const rep = r.report;
    assert.deepEqual(rep.runs.map((x) => x.name), ['L1-ff16', 'L1-ff32', 'L2-ff16', 'L2-ff32', 'L4-ff16', 'L4-ff32'], 'the configurations are the runs');
    assert.equal(rep.sweeps.length, 1);
    const c = rep.sweeps[0].configs.find((x) => x.name === 'L2-ff32');
    assert.ok(c);
    assert.equal(c.splits[0].split, 'validation');
    assert.equal(c.splits[0].layers[1].pct_nonzero_mean, 100 * sweepFraction(2, 32, 1, 'validation'));
    assert.equal(c.final_val_loss, 3 - 0.2 - 0.032);

    // Width figure: per split, each config gives a mean panel plus one per layer; depth figure: mean, first, last.
    const rowsPerSplit = [1, 2, 4].reduce((s, L) => s + 2 * (1 + L), 0);
    const width = rep.figures.find((f) => f.id === 'sweep-width');
    const depth = rep.figures.find((f) => f.id === 'sweep-depth');
    assert.ok(width && depth);
    assert.equal(width.rows.length, 2 * rowsPerSplit);
    assert.equal(depth.rows.length, 2 * 6 * 3);
    const ws = readFileSync(join(out, 'sweep-width.svg'), 'utf8');
    const ds = readFileSync(join(out, 'sweep-depth.svg'), 'utf8');
    assert.equal(marks(ws, 'symbol').length, width.rows.length, 'one point per row');
    assert.equal(marks(ds, 'symbol').length, depth.rows.length);
    assert.deepEqual(titles(ws).sort(), ['Nonzero FF activations against width, one line per depth', 'blk.0', 'blk.1', 'blk.2', 'blk.3', 'mean over layers'].sort());
    assert.deepEqual(titles(ds).sort(), ['Nonzero FF activations against depth, one line per width', 'first layer (blk.0)', 'last layer', 'mean over layers'].sort());
    assert.ok(ws.includes('>d_ff (FF width)</text>') && ds.includes('>layers</text>'));
    const mean = width.rows.find((x) => x.panel === 'mean over layers' && x.config === 'L4-ff16' && x.split === 'train');
    const want = Math.round(1e4 * 100 * [0, 1, 2, 3].reduce((s, i) => s + sweepFraction(4, 16, i, 'train'), 0) / 4) / 1e4;
    assert.equal(mean?.pct_nonzero, want);
    // Within one panel a larger % nonzero is drawn higher (smaller SVG y): points sit where their values say.
    const pts = [...ds.matchAll(/aria-label="layers: (\d+); % nonzero entries: ([\d.]+);[^"]*"[^>]*transform="translate\(([\d.-]+),([\d.-]+)\)"/g)].map((m) => ({ L: Number(m[1]), v: Number(m[2]), x: Number(m[3]), y: Number(m[4]) }));
    assert.equal(pts.length, depth.rows.length);
    const first = pts.slice(0, 12); // the first panel's 12 points (3 depths x 2 widths x 2 splits)
    for (const p of first) for (const q of first) {
      if (p.v < q.v - 1e-9) assert.ok(p.y > q.y, `${p.v}% drawn above ${q.v}%`);
      if (p.L < q.L) assert.ok(p.x < q.x, `depth ${p.L} drawn right of ${q.L}`);
    }
    const html = readFileSync(r.html, 'utf8');
    assert.ok(html.includes('Depth × width sweep grid') && html.includes('<td>L4-ff32</td>'), 'the sweep table');
  });

  it('detects firing frequencies, sweeps and calibration in several shapes and skips unknown ones', () => {
    assert.deepEqual(histogram([0, 0.5, 1], 2), { edges: [0, 0.5, 1], counts: [1, 2] });
    const layered = findFiringHistograms({ layers: [{ name: 'blk.0', firing_frequency: [0.1, 0.2] }, { name: 'blk.1', fire_freq: { edges: [0, 0.5, 1], counts: [3, 4] } }] });
    assert.deepEqual(layered?.map((h) => h.layer), ['blk.0', 'blk.1']);
    assert.deepEqual(layered?.[1].counts, [3, 4]);
    assert.deepEqual(findFiringHistograms({ 'blk.3': { firing_rate: [0.5] } })?.map((h) => h.layer), ['blk.3']);
    // `sparselm analyze --save`: neuron counts per 1/bins of frequency at layers[i].firing.histogram.
    assert.deepEqual(findFiringHistograms({ layers: [{ layer: 'blk.0', firing: { dff: 4, histogram: [3, 0, 1] } }] }), [{ layer: 'blk.0', edges: [0, 1 / 3, 2 / 3, 1], counts: [3, 0, 1] }]);
    assert.equal(findFiringHistograms({ layers: [{ layer: 'blk.0', firing: { histogram: [0.5, 1.5] } }] }), null, 'not counts');
    assert.equal(findFiringHistograms({ dead_neurons: 3, sparsity: { 'blk.0': 0.1 } }), null);
    assert.equal(findFiringHistograms({ firing_frequency: [2, 3] }), null, 'not frequencies in [0, 1]');
    assert.equal(findFiringHistograms(null), null);
    assert.deepEqual(findSweep({ results: [{ threshold: 0.2, loss: 2 }, { threshold: 0.1, loss: 3 }] }), { x: 'threshold', metrics: ['loss'], rows: [{ threshold: 0.1, loss: 3 }, { threshold: 0.2, loss: 2 }] });
    assert.equal(findSweep([{ k: 1 }]), null);
    assert.equal(findCalibration({ confidence: [0.5], accuracy: [0.4], ece: 0.1 })?.ece, 0.1);
    assert.equal(findCalibration({ calibration: { bins: [{ conf: 0.9, acc: 0.8 }] } })?.bins[0].accuracy, 0.8);
    assert.equal(findCalibration({ bins: 'x' }), null);
    assert.deepEqual(thin([1, 2, 3, 4, 5], 3), [1, 3, 5]);
    assert.equal(findDepthWidthSweep({ kind: 'other', configs: [] }), null);
    assert.equal(findDepthWidthSweep([{ k: 1, loss: 2 }, { k: 2, loss: 1 }]), null);
    const dw = findDepthWidthSweep({ kind: 'depth-width', configs: [
      { n_layers: 2, d_ff: 8, validation: { layers: [{ layer: 'blk.0', mean: 0.5 }, { layer: 'blk.1', mean: 0.25 }] } },
      { n_layers: 1, d_ff: 8, validation: { layers: [{ layer: 'blk.0', mean: 'x' }] } },
    ] });
    assert.deepEqual(dw?.configs.map((x) => [x.name, x.splits[0].mean]), [['L2-ff8', 0.375]], 'mean computed when absent; unreadable configs skipped');
  });

  it('runs from the command line and names a missing run directory', () => {
    const { root, plain } = fixture();
    const ok = spawnSync(process.execPath, [MAIN, 'report', plain, '--out', join(root, 'cli')], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /figure sparsity-over-steps: 9 values/);
    assert.ok(existsSync(join(root, 'cli', 'index.html')));
    const bad = spawnSync(process.execPath, [MAIN, 'report', join(root, 'nope'), '--out', join(root, 'cli2')], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^sparselm: report: '.*nope' is not a run directory\n$/);
  });

  it('draws every figure in headless Chromium', async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`${CHROMIUM} is absent (apt-get install -y chromium)`);
      return;
    }
    const { chromium } = await import('playwright-core');
    const { root, a, b, sw } = fixture();
    const out = join(root, 'out');
    await writeReport([a, b, sw], out);
    const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'sparselm-chromium-profile-')), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    try {
      const page = await context.newPage();
      const requests: string[] = [];
      page.on('request', (req) => requests.push(req.url()));
      await page.goto(pathToFileURL(join(out, 'index.html')).href, { waitUntil: 'load' });
      assert.deepEqual(requests.filter((u) => !u.startsWith('file://')), [], 'the page needs no network');
      const figures = page.locator('figure.figure');
      assert.equal(await figures.count(), 8);
      const ids: (string | null)[] = [];
      for (let i = 0; i < 8; i++) {
        const fig = figures.nth(i);
        const id = await fig.getAttribute('id');
        ids.push(id);
        const svg = fig.locator('div.plot > svg');
        const box = await svg.boundingBox();
        assert.ok(box && box.width > 100 && box.height > 100, `${id}: svg has a size`);
        assert.ok((await svg.locator('g.role-axis').count()) >= 2, `${id}: axes`);
        assert.ok((await svg.locator('g.role-axis-label text').count()) > 0, `${id}: tick labels`);
        const dataMarks = svg.locator('g.role-mark > path');
        const n = await dataMarks.count();
        assert.ok(n > 0, `${id}: data marks`);
        for (const k of [0, n - 1]) {
          const mb = await dataMarks.nth(k).boundingBox();
          assert.ok(mb && mb.width > 0 && mb.height > 0 && mb.x >= box.x - 1 && mb.x + mb.width <= box.x + box.width + 1, `${id}: mark ${k} drawn inside its figure`);
        }
        // Nonblank: the element's pixels are not all background.
        const shot = (await svg.screenshot()).toString('base64');
        const inked = await page.evaluate(`(async () => {
          const img = new Image(); img.src = 'data:image/png;base64,${shot}'; await img.decode();
          const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
          const g = c.getContext('2d'); g.drawImage(img, 0, 0);
          const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200) n++;
          return n / (c.width * c.height);
        })()`);
        assert.ok(typeof inked === 'number' && inked > 0.01, `${id}: ${String(inked)} of pixels inked`);
      }
      assert.ok(ids.includes('fig-sweep-width') && ids.includes('fig-sweep-depth'), 'the sweep figures were checked');
      const dir = mkdtempSync(join(tmpdir(), 'sparselm-report-screenshot-'));
      const shotPath = join(dir, 'report.png');
      await page.screenshot({ path: shotPath, fullPage: true });
      t.diagnostic(`screenshot: ${shotPath}`);
      console.log(`report screenshot: ${shotPath}`);
    } finally {
      await context.close();
    }
  });
});
