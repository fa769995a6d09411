/**
 * safetensors files, written and read by hand: docs/format.md, section 3, is
 * the specification this follows byte for byte.
 *
 *   [N: u64 LE][header: N bytes of JSON, space-padded][data: tensors back to back]
 *
 * Writing streams: the header is computed from shapes alone, then each
 * tensor's bytes are produced and written one tensor at a time, so peak
 * memory is one tensor, not the whole model. The file appears atomically
 * (src/io/atomic.ts). Names are sorted, so equal inputs give equal bytes.
 *
 * Reading validates the whole header against the file size before reading
 * any data: truncation, overlapping or gapped offsets, sizes that disagree
 * with shape × dtype, unknown dtypes and malformed JSON are errors naming the
 * file and the tensor. Each tensor is read straight into its typed array
 * (no whole-file buffer). F16 and BF16, which other tools write, load as
 * float32.
 *
 * Not here: memory mapping (Node has none) and writing F16/BF16.
 */

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import type { Backend } from '../backends/backend.js';
import { tensor } from '../tensor/create.js';
import type { DataArray, DType } from '../tensor/dtype.js';
import { fmtShape, SparselmError } from '../tensor/errors.js';
import { numel, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { ioError, writeAll, writeFileAtomicWith } from './atomic.js';

/** The dtypes a file may hold. sparselm writes F32, F64 and I32; F16 and BF16 are read only. */
export type SafetensorsDtype = 'F32' | 'F64' | 'I32' | 'F16' | 'BF16';
export const SAFETENSORS_DTYPES: readonly SafetensorsDtype[] = ['F32', 'F64', 'I32', 'F16', 'BF16'];

const ITEM_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F64: 8, I32: 4, F16: 2, BF16: 2 };

/** The header is read whole into memory; the reference implementation's limit. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const LITTLE_ENDIAN_HOST = endianness() === 'LE';

export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) in bytes, relative to the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  path: string;
  fileSize: number;
  /** N, the header's length in bytes (padding included). */
  headerLength: number;
  /** Absolute file offset of the data section: 8 + N. */
  dataStart: number;
  /** Tensor entries in header order. */
  tensors: Record<string, TensorInfo>;
  metadata: Record<string, string>;
}

/** One tensor to write: its bytes are produced only when the writer reaches it. */
export interface TensorSource {
  dtype: 'F32' | 'F64' | 'I32';
  shape: Shape;
  /** The elements in row-major order, in the typed array of `dtype`. */
  data: () => DataArray;
}

const fail = (op: string, path: string, message: string): never => {
  throw new SparselmError(`${op}: ${path}: ${message}`);
};

const stDtypeOf = (d: DType): 'F32' | 'F64' | 'I32' => {
  switch (d) {
    case 'float32': return 'F32';
    case 'float64': return 'F64';
    case 'int32': return 'I32';
    default: return d satisfies never;
  }
};

/** Writes `tensors` (each in its own dtype) and optional string metadata to `path`, atomically. */
export function writeSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  const sources: Record<string, TensorSource> = {};
  for (const [name, t] of Object.entries(tensors)) {
    sources[name] = { dtype: stDtypeOf(t.dtype), shape: t.shape, data: () => t.toArray() };
  }
  writeSafetensorsFrom(path, sources, metadata);
}

/** The little-endian bytes of a typed array (a view on little-endian hosts, a swapped copy otherwise). */
function leBytes(a: DataArray): Uint8Array {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN_HOST) return bytes;
  const copy = Buffer.from(bytes);
  return a.BYTES_PER_ELEMENT === 8 ? copy.swap64() : copy.swap32();
}

/**
 * The streaming writer behind writeSafetensors: sources are sorted by name,
 * the header is written from their shapes, then each source's `data()` is
 * called and written in turn.
 */
export function writeSafetensorsFrom(path: string, tensors: Record<string, TensorSource>, metadata?: Record<string, string>): void {
  const op = 'writeSafetensors';
  const names = Object.keys(tensors).sort();
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const keys = Object.keys(metadata).sort();
    for (const k of keys) {
      if (typeof metadata[k] !== 'string') fail(op, path, `__metadata__ values must be strings; '${k}' is ${typeof metadata[k]}`);
    }
    parts.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') fail(op, path, `'__metadata__' cannot name a tensor`);
    const { dtype, shape } = tensors[name];
    if (!['F32', 'F64', 'I32'].includes(dtype)) fail(op, path, `tensor '${name}': cannot write dtype ${String(dtype)}`);
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(op, path, `tensor '${name}': bad shape ${fmtShape(shape)}`);
    const end = offset + numel(shape) * ITEM_BYTES[dtype];
    // Keys are serialised by hand, in this order: a JS object would move integer-like names ("0", "12") first.
    parts.push(`${JSON.stringify(name)}:{"dtype":"${dtype}","shape":[${shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  // Pad with spaces so that 8 + N is a multiple of 8: the data section starts 8-byte aligned.
  const n = json.length + ((8 - (json.length % 8)) % 8);
  const head = Buffer.alloc(8 + n, 0x20);
  head.writeBigUInt64LE(BigInt(n), 0);
  json.copy(head, 8);

  writeFileAtomicWith(path, (fd) => {
    writeAll(fd, head);
    for (const name of names) {
      const { dtype, shape, data } = tensors[name];
      const a = data();
      const want = dtype === 'F32' ? Float32Array : dtype === 'F64' ? Float64Array : Int32Array;
      if (!(a instanceof want)) fail(op, path, `tensor '${name}': data for ${dtype} must be a ${want.name}, got ${a.constructor.name}`);
      if (a.length !== numel(shape)) fail(op, path, `tensor '${name}': ${a.length} elements do not fill shape ${fmtShape(shape)}`);
      writeAll(fd, leBytes(a));
    }
  });
}

/** Reads exactly `dst.byteLength` bytes at `position` (in pieces: one read is limited to 2 GiB). */
function readExactly(fd: number, dst: Uint8Array, position: number): number {
  const CHUNK = 1 << 28;
  let got = 0;
  while (got < dst.byteLength) {
    const n = readSync(fd, dst, got, Math.min(CHUNK, dst.byteLength - got), position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

function describe(v: unknown): string {
  if (v === undefined) return 'no value';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseHeader(fd: number, path: string, op: string): SafetensorsHeader {
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8) fail(op, path, `truncated: the file has ${fileSize} bytes, fewer than the 8 of the header length`);
  const lenBuf = Buffer.alloc(8);
  readExactly(fd, lenBuf, 0);
  const n64 = lenBuf.readBigUInt64LE(0);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(op, path, `header length ${n64} exceeds the limit of ${MAX_HEADER_BYTES} bytes (not a safetensors file?)`);
  const headerLength = Number(n64);
  if (8 + headerLength > fileSize) fail(op, path, `truncated: header length ${headerLength} runs past the end of the file (${fileSize} bytes)`);
  const raw = Buffer.alloc(headerLength);
  readExactly(fd, raw, 8);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    return fail(op, path, 'header is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return fail(op, path, `invalid JSON header: ${(e as Error).message}`);
  }
  if (!isObject(parsed)) return fail(op, path, `header must be a JSON object, got ${describe(parsed)}`);

  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: Record<string, TensorInfo> = {};
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      if (!isObject(entry)) fail(op, path, `__metadata__ must be an object of strings, got ${describe(entry)}`);
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(op, path, `__metadata__ values must be strings; '${k}' is ${describe(v)}`);
        metadata[k] = v as string;
      }
      continue;
    }
    const where = `tensor '${name}'`;
    if (!isObject(entry)) return fail(op, path, `${where}: entry must be an object, got ${describe(entry)}`);
    const { dtype, shape, data_offsets: offs } = entry;
    if (typeof dtype !== 'string') fail(op, path, `${where}: dtype must be a string, got ${describe(dtype)}`);
    if (!SAFETENSORS_DTYPES.includes(dtype as SafetensorsDtype)) {
      fail(op, path, `${where}: unknown dtype '${String(dtype)}' (known: ${SAFETENSORS_DTYPES.join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      fail(op, path, `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      fail(op, path, `${where}: data_offsets must be two non-negative integers [begin, end], got ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    const dims = shape as number[];
    const st = dtype as SafetensorsDtype;
    if (end < begin) fail(op, path, `${where}: data_offsets [${begin},${end}] end before they begin`);
    const need = numel(dims) * ITEM_BYTES[st];
    if (end - begin !== need) {
      fail(op, path, `${where}: data_offsets [${begin},${end}] hold ${end - begin} bytes but ${st} ${fmtShape(dims)} needs ${need}`);
    }
    if (end > dataSize) {
      fail(op, path, `${where}: truncated: its data_offsets [${begin},${end}] run past the end of the data section (${dataSize} bytes; file size ${fileSize})`);
    }
    tensors[name] = { dtype: st, shape: dims, dataOffsets: [begin, end] };
  }

  // The tensors must tile the data section: sorted by offset, each begins where the previous ended.
  const order = Object.entries(tensors).sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  let prev = '';
  for (const [name, { dataOffsets: [begin, end] }] of order) {
    if (begin < cursor) fail(op, path, `tensor '${name}': data_offsets [${begin},${end}] overlap tensor '${prev}' (which ends at ${cursor})`);
    if (begin > cursor) fail(op, path, `tensor '${name}': data_offsets [${begin},${end}] leave a gap: bytes ${cursor}..${begin} belong to no tensor`);
    cursor = end;
    prev = name;
  }
  if (cursor !== dataSize) fail(op, path, `${dataSize - cursor} bytes after the last tensor (tensors end at ${cursor}, the data section is ${dataSize} bytes)`);
  return { path, fileSize, headerLength, dataStart, tensors, metadata };
}

function withFile<T>(path: string, op: string, body: (fd: number) => T): T {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw ioError(op, path, e);
  }
  try {
    return body(fd);
  } catch (e) {
    throw ioError(op, path, e);
  } finally {
    closeSync(fd);
  }
}

/** The header alone (names, dtypes, shapes, offsets, metadata), fully validated against the file size; no tensor data is read. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  return withFile(path, 'readSafetensorsHeader', (fd) => parseHeader(fd, path, 'readSafetensorsHeader'));
}

function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function decode(info: TensorInfo, bytes: Uint8Array): DataArray {
  // `bytes` is a fresh, exactly sized buffer: reinterpret it in place where we can.
  const { dtype } = info;
  if (!LITTLE_ENDIAN_HOST) {
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (ITEM_BYTES[dtype] === 8) b.swap64(); else if (ITEM_BYTES[dtype] === 4) b.swap32(); else b.swap16();
  }
  switch (dtype) {
    case 'F32': return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    case 'F64': return new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
    case 'I32': return new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    case 'F16': {
      const h = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = f16ToF32(h[i]);
      return out;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const h = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
      const out = new Float32Array(h.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < h.length; i++) bits[i] = h[i] << 16;
      return out;
    }
    default: return dtype satisfies never;
  }
}

export interface ReadOptions {
  device?: string | Backend;
  /** Read only these tensors (default: all). */
  names?: readonly string[];
}

/** Reads tensors and metadata. Tensors are float32, float64 or int32 (F16/BF16 become float32) on `device` (default 'cpu'). */
export function readSafetensors(path: string, opts: ReadOptions = {}): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const op = 'readSafetensors';
  return withFile(path, op, (fd) => {
    const header = parseHeader(fd, path, op);
    const names = opts.names ?? Object.keys(header.tensors).sort();
    const tensors: Record<string, Tensor> = {};
    for (const name of names) {
      const info = header.tensors[name];
      if (!info) fail(op, path, `no tensor '${name}' in the file (it has ${Object.keys(header.tensors).length}: ${Object.keys(header.tensors).slice(0, 8).join(', ')}${Object.keys(header.tensors).length > 8 ? ', ...' : ''})`);
      const [begin, end] = info.dataOffsets;
      const bytes = new Uint8Array(end - begin);
      const got = readExactly(fd, bytes, header.dataStart + begin);
      if (got !== bytes.byteLength) fail(op, path, `tensor '${name}': truncated: read ${got} of ${bytes.byteLength} bytes (file changed while reading?)`);
      tensors[name] = tensor(decode(info, bytes), info.shape, { device: opts.device });
    }
    return { tensors, metadata: header.metadata };
  });
}
