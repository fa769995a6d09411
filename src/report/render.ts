/**
 * Vega-Lite spec → SVG (Vega's headless View, renderer 'none', toSVG) → PNG
 * (resvg, a Rust SVG rasteriser shipped as prebuilt Node binaries).
 *
 * Nothing here draws by hand: the SVG is Vega's output; the only edit is
 * prefixing element ids so several SVGs can be inlined in one HTML page
 * without their clip paths or gradients colliding. Text in the PNG needs a
 * system font; DejaVu Sans is asked for (Debian's fonts-dejavu-core), and
 * resvg falls back to any installed sans-serif face.
 */

import { compile, type TopLevelSpec } from 'vega-lite';
import { parse, View } from 'vega';
import { Resvg } from '@resvg/resvg-js';

/** Shared look: white background (PNG has no transparency surprises), readable fonts. */
const CONFIG = {
  background: 'white',
  font: 'DejaVu Sans, Liberation Sans, Arial, sans-serif',
  title: { fontSize: 15, anchor: 'start' },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  header: { labelFontSize: 12, labelFontWeight: 'bold' },
} as const;

export async function specToSvg(spec: TopLevelSpec): Promise<string> {
  const vg = compile({ ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec).spec;
  const view = new View(parse(vg), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Makes the SVG's ids unique to `prefix` (ids and their `url(#id)` / `href="#id"` references). */
export function prefixIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${prefix}-${id})`)
    .replace(/href="#([^"]+)"/g, (_, id: string) => `href="#${prefix}-${id}"`);
}

/** Rasterises at `scale` times the SVG's size (2: crisp on high-density screens and in documents). */
export function svgToPng(svg: string, scale = 2): Buffer {
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return r.render().asPng();
}
