/**
 * Crash-safe writes: a file or a directory appears under its final name
 * complete, or not at all. docs/format.md, "Save protocol", is the contract.
 *
 * How: everything is written under a temporary name in the same directory
 * (`<final>.tmp-<pid>-<hex>`), fsynced, then renamed. rename(2) within one
 * directory is atomic on POSIX file systems, and fsyncing the parent
 * directory afterwards makes the new name durable, so a power cut leaves
 * either the old entry or the new one. Deleting goes the other way: rename
 * to `<final>.old-<pid>-<hex>` first, then remove, so a half-deleted
 * directory never sits under a name that looks finished.
 *
 * Not here: locking. One writer per directory is assumed (one trainer per run
 * directory); `cleanStaleTemps` leaves alone the temporary entries of other
 * live processes, so a second writer is not sabotaged, only not coordinated.
 *
 * Synchronous on purpose: a checkpoint is a barrier in a training loop, and
 * with no interleaving the ordering argument above is the whole story.
 */

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { SparselmError } from '../tensor/errors.js';

/** `<final>.tmp-<pid>-<hex>` (being written) or `<final>.old-<pid>-<hex>` (being deleted). */
export const TEMP_NAME = /^(.+)\.(tmp|old)-(\d+)-([0-9a-f]+)$/;

/** Temporary paths some call in this process is still using: never "stale". */
const active = new Set<string>();

export function isTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/** A fresh temporary path beside `finalPath`. */
export function tempPath(finalPath: string, kind: 'tmp' | 'old' = 'tmp'): string {
  return resolve(`${finalPath}.${kind}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** A Node fs error as a SparselmError naming the operation and the path (other errors pass through unchanged). */
export function ioError(op: string, path: string, e: unknown): Error {
  if (e instanceof SparselmError) return e;
  const err = e as NodeJS.ErrnoException;
  if (e instanceof Error && !err.code) return e;
  return new SparselmError(`${op}: ${path}: ${err.message}`);
}

/** Writes all of `bytes` at the file position (writeSync may write less than asked; large views go in pieces). */
export function writeAll(fd: number, bytes: Uint8Array): void {
  const CHUNK = 1 << 28;
  let off = 0;
  while (off < bytes.byteLength) {
    off += writeSync(fd, bytes, off, Math.min(CHUNK, bytes.byteLength - off));
  }
}

/**
 * fsync of a directory makes the names in it (creations, renames) durable.
 * Some platforms (Windows) cannot open a directory for that; there the rename
 * is as durable as the OS makes it and we carry on.
 */
export function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch (e) {
    if (['EISDIR', 'EPERM', 'EACCES', 'EINVAL'].includes((e as NodeJS.ErrnoException).code ?? '')) return;
    throw ioError('fsyncDir', dir, e);
  }
  try {
    fsyncSync(fd);
  } catch (e) {
    if (!['EINVAL', 'ENOTSUP', 'EPERM', 'EBADF'].includes((e as NodeJS.ErrnoException).code ?? '')) throw ioError('fsyncDir', dir, e);
  } finally {
    closeSync(fd);
  }
}

/** Writes a new file (it must not exist) and fsyncs it: for files inside a directory that is published as a whole. */
export function writeFileDurable(path: string, data: string | Uint8Array): void {
  const fd = openSync(path, 'wx', 0o644);
  try {
    writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Streams a file into place atomically: `write(fd)` fills a temporary file
 * beside `path`; it is fsynced and renamed over `path`. If `write` throws, the
 * temporary file is removed and `path` is untouched.
 */
export function writeFileAtomicWith(path: string, write: (fd: number) => void): void {
  const tmp = tempPath(path);
  active.add(tmp);
  try {
    let fd: number;
    try {
      fd = openSync(tmp, 'wx', 0o644);
    } catch (e) {
      throw ioError('writeFileAtomic', path, e);
    }
    try {
      write(fd);
      fsyncSync(fd);
    } catch (e) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw ioError('writeFileAtomic', path, e);
    }
    closeSync(fd);
    try {
      renameSync(tmp, path);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw ioError('writeFileAtomic', path, e);
    }
    fsyncDir(dirname(resolve(path)));
  } finally {
    active.delete(tmp);
  }
}

/** `writeFileAtomicWith` for data already in memory (small files: JSON, pointer files). */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  writeFileAtomicWith(path, (fd) => writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data));
}

/**
 * Publishes a directory atomically: `fill(tmpDir)` writes its contents into a
 * fresh temporary directory beside `finalDir` (each file fsynced, e.g. with
 * writeFileDurable), which is then fsynced and renamed to `finalDir`. If
 * `fill` throws, the temporary directory is removed and nothing else changes.
 *
 * An existing `finalDir` is an error unless `replace`; then it is renamed
 * aside (an `.old-` name) just before the new one takes its place, and
 * deleted after. Between those two renames `finalDir` is briefly absent, so
 * callers must not replace a directory that a pointer currently names.
 */
export function publishDirAtomic(finalDir: string, fill: (tmpDir: string) => void, opts: { replace?: boolean } = {}): void {
  const parent = dirname(resolve(finalDir));
  if (existsSync(finalDir) && !opts.replace) throw new SparselmError(`publishDir: ${finalDir} already exists`);
  const tmp = tempPath(finalDir);
  active.add(tmp);
  try {
    try {
      mkdirSync(tmp);
      fill(tmp);
      fsyncDir(tmp);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw ioError('publishDir', finalDir, e);
    }
    let aside: string | null = null;
    try {
      if (existsSync(finalDir)) {
        aside = tempPath(finalDir, 'old');
        renameSync(finalDir, aside);
      }
      renameSync(tmp, finalDir);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw ioError('publishDir', finalDir, e);
    }
    fsyncDir(parent);
    if (aside) rmSync(aside, { recursive: true, force: true });
  } finally {
    active.delete(tmp);
  }
}

/** Deletes a directory without ever leaving a partial one under its name: rename aside, then remove. */
export function removeDirAtomic(dir: string): void {
  const aside = tempPath(dir, 'old');
  try {
    renameSync(dir, aside);
  } catch (e) {
    throw ioError('removeDir', dir, e);
  }
  fsyncDir(dirname(resolve(dir)));
  rmSync(aside, { recursive: true, force: true });
}

function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temporary entries in `dir` left by saves that can no longer finish:
 * those of processes that are gone, and those of this process that no call
 * is still using (a save that threw). Returns the names removed.
 */
export function cleanStaleTemps(dir: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return removed;
    throw ioError('cleanStaleTemps', dir, e);
  }
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const full = resolve(join(dir, name));
    const pid = Number(m[3]);
    const stale = pid === process.pid ? !active.has(full) : !processAlive(pid);
    if (!stale) continue;
    rmSync(full, { recursive: true, force: true });
    removed.push(basename(full));
  }
  return removed;
}
