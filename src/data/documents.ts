/**
 * Streaming documents from disk, one at a time, never a whole corpus in memory.
 *
 * Sources:
 * - C4 shards: gzip-compressed JSON Lines (`*.json.gz`, `*.jsonl.gz`) or the
 *   same uncompressed (`*.json`, `*.jsonl`), one document per line in the
 *   `text` field;
 * - plain text files (any other name): one document per file;
 * - directories: every file inside, recursively, in sorted path order.
 *
 * Bad lines (invalid JSON, no string `text`, empty text) are skipped and
 * counted, with a warning naming the file and line; an unreadable file or a
 * corrupt gzip stream is an error naming the file.
 */

import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import { SparselmError } from '../tensor/errors.js';

export interface Document {
  text: string;
  /** Where it came from: `file:line` for JSON Lines, the path for text files. */
  source: string;
}

export interface SkipReport { file: string; line: number; reason: string }

export interface ReadOptions {
  /** Called for each skipped line; the default warns on stderr. */
  onSkip?: (skip: SkipReport) => void;
}

const JSONL = /\.(json|jsonl)(\.gz)?$/;

/** The files under `path` in reading order: itself, or a directory's files recursively in sorted path order. */
export async function listFiles(path: string): Promise<string[]> {
  let info;
  try {
    info = await stat(path);
  } catch (e) {
    throw new SparselmError(`data: cannot read '${path}': ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (!info.isDirectory()) return [path];
  const entries = (await readdir(path)).sort();
  const nested = await Promise.all(entries.map((e) => listFiles(join(path, e))));
  return nested.flat();
}

function defaultSkip(s: SkipReport): void {
  process.stderr.write(`warning: skipped ${s.file}:${s.line}: ${s.reason}\n`);
}

async function* readJsonLines(file: string, onSkip: (s: SkipReport) => void): AsyncGenerator<Document> {
  const raw = createReadStream(file);
  const input = file.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
  let failure: Error | null = null;
  const fail = (e: Error): void => { failure ??= e; input.destroy(); };
  raw.on('error', fail);
  input.on('error', fail);
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const line of lines) {
      lineNo++;
      if (line.trim() === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        onSkip({ file, line: lineNo, reason: 'invalid JSON' });
        continue;
      }
      const text = (parsed as { text?: unknown } | null)?.text;
      if (typeof text !== 'string') { onSkip({ file, line: lineNo, reason: 'no string field "text"' }); continue; }
      if (text.length === 0) { onSkip({ file, line: lineNo, reason: 'empty document' }); continue; }
      yield { text, source: `${file}:${lineNo}` };
    }
  } catch (e) {
    failure ??= e as Error;
  }
  if (failure) {
    const code = (failure as NodeJS.ErrnoException).code;
    throw new SparselmError(`data: cannot read '${file}' after line ${lineNo}: ${code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR' ? 'corrupt gzip data' : failure.message}`);
  }
}

/** Documents from files and directories, in order. */
export async function* readDocuments(paths: readonly string[], opts: ReadOptions = {}): AsyncGenerator<Document> {
  const onSkip = opts.onSkip ?? defaultSkip;
  for (const path of paths) {
    for (const file of await listFiles(path)) {
      if (JSONL.test(file)) {
        yield* readJsonLines(file, onSkip);
      } else {
        let text: string;
        try {
          text = await readFile(file, 'utf8');
        } catch (e) {
          throw new SparselmError(`data: cannot read '${file}': ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
        }
        if (text.length === 0) onSkip({ file, line: 0, reason: 'empty document' });
        else yield { text, source: file };
      }
    }
  }
}

/** The bundled corpus sample (data/sample), resolved from the installed package. */
export function samplePath(split: 'train' | 'validation'): string {
  return new URL(`../../../data/sample/${split}.json.gz`, import.meta.url).pathname;
}
