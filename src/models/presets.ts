/**
 * Presets: named model shapes kept as data files in presets/*.json. A preset
 * holds config fields, optional field changes that apply when Sparse QKV is
 * on (the paper raises d_ff then so parameter counts match), and default
 * training settings. Fields given on the command line override the preset.
 */

import { readFileSync, readdirSync } from 'node:fs';
import { SparselmError } from '../tensor/errors.js';

export interface Preset {
  name: string;
  description: string;
  config: Record<string, unknown>;
  with_sparse_qkv?: Record<string, unknown>;
  train?: Record<string, unknown>;
}

const DIR = new URL('../../../presets/', import.meta.url);

export function presetNames(): string[] {
  return readdirSync(DIR).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
}

export function loadPreset(name: string): Preset {
  const names = presetNames();
  if (!names.includes(name)) throw new SparselmError(`preset: unknown preset '${name}' (known: ${names.join(', ')})`);
  const raw = JSON.parse(readFileSync(new URL(`${name}.json`, DIR), 'utf8')) as Omit<Preset, 'name'>;
  return { name, ...raw };
}

/** The preset's config fields for the chosen attention kind, then `overrides` on top. */
export function presetConfig(preset: Preset, overrides: Record<string, unknown>): Record<string, unknown> {
  const sparseQkv = (overrides.attn ?? preset.config.attn) === 'sparse';
  return { ...preset.config, ...(sparseQkv ? preset.with_sparse_qkv ?? {} : {}), ...overrides };
}
