/**
 * GGUF export: a dense llama-architecture sparselm model as a file that
 * llama.cpp loads (../shared/spec/gguf.md has the format facts; docs/gguf-export.md
 * what is exported and why).
 *
 * Only the dense llama form has a GGUF form: RMSNorm, RoPE (adjacent pairs,
 * llama.cpp's NORM type, which is what sparselm computes, so Q and K are not
 * permuted), dense (grouped-query) attention, SwiGLU feed-forward, dense
 * output layer, no biases. Any other config field value is refused with a
 * SparselmError naming the field.
 *
 * Layouts: sparselm stores a weight as [d_in, d_out] row-major (y = x·W);
 * GGUF wants PyTorch's Linear layout, d_out rows of d_in floats (ne[0] = d_in,
 * the contiguous dimension), so every matrix is written transposed. The token
 * embedding [V, d] is already V rows of d floats. Everything is float32.
 *
 * Tokenizers:
 * - byte: a SentencePiece-style byte vocabulary ("llama"): `<unk>` 0, `<s>` 1,
 *   `</s>` 2, `<0x00>`..`<0xFF>` 3..258, `▁` 259. sparselm byte b is GGUF id
 *   b + 3 and sparselm eos (256) is `</s>` (2), so embedding and output rows
 *   are permuted on export; `<unk>`, `<s>` and `▁` get zero rows (their logit
 *   is exactly 0). BOS is not added automatically.
 * - bpe (trained here) and gpt2: a GPT-2 style BPE vocabulary ("gpt2") with
 *   the same ids: token strings in GPT-2's byte-to-unicode alphabet and the
 *   merges in rank order; eos is `<|endoftext|>`.
 *
 * The file is written atomically (a temporary file renamed into place).
 */

import { closeSync, openSync, readSync } from 'node:fs';
import { SparselmError } from '../tensor/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelConfig } from '../models/config.js';
import { checkParameters } from '../models/transformer.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { BpeTokenizer, GPT2_PATTERN } from '../data/tokenizers/bpe.js';
import { ioError, writeAll, writeFileAtomicWith } from './atomic.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** GGUF metadata value types. */
export const GgufType = {
  U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12,
} as const;
export type GgufTypeId = (typeof GgufType)[keyof typeof GgufType];

/** GGML tensor types used here. */
export const GgmlType = { F32: 0, F16: 1 } as const;

/** llama.cpp token types. */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export type GgufScalar = number | bigint | boolean | string;
export type GgufValue =
  | { type: Exclude<GgufTypeId, 9>; value: GgufScalar }
  | { type: 9; elementType: Exclude<GgufTypeId, 9>; value: GgufScalar[] };

export interface GgufTensorInfo {
  name: string;
  /** ne: ne[0] is the contiguous dimension. */
  dims: number[];
  type: number;
  /** Relative to the start of the tensor data section. */
  offset: number;
}

export interface GgufHeader {
  version: number;
  kv: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file offset of the tensor data section. */
  dataOffset: number;
}

// ---------------------------------------------------------------- config check

const REQUIRED: [keyof ModelConfig, string, string][] = [
  ['norm', 'rmsnorm', 'llama uses RMSNorm'],
  ['positions', 'rope', 'llama uses RoPE positions'],
  ['attn', 'dense', 'llama.cpp has no Sparse QKV layer'],
  ['ffn', 'dense', 'llama.cpp has no Top-k or Sparse FF layer (its only sparse form is mixture-of-experts)'],
  ['activation', 'swiglu', 'llama uses a SwiGLU feed-forward'],
  ['output', 'dense', 'llama.cpp has no factored (sparse) output layer'],
];

/** Throws a SparselmError naming the first config field that has no llama-architecture GGUF form. */
export function checkExportable(config: ModelConfig): void {
  for (const [field, want, why] of REQUIRED) {
    if (config[field] !== want) {
      throw new SparselmError(`gguf export: config field '${field}' is '${String(config[field])}'; export needs ${field} = ${want} (${why})`);
    }
  }
}

// ---------------------------------------------------------------- tokenizer

interface GgufVocab {
  kv: [string, GgufValue][];
  /** GGUF id -> sparselm id (-1: no counterpart, a zero row). */
  toSparselm: Int32Array;
}

const strArr = (value: string[]): GgufValue => ({ type: GgufType.ARRAY, elementType: GgufType.STRING, value });
const f32Arr = (value: number[]): GgufValue => ({ type: GgufType.ARRAY, elementType: GgufType.F32, value });
const i32Arr = (value: number[]): GgufValue => ({ type: GgufType.ARRAY, elementType: GgufType.I32, value });
const u32 = (value: number): GgufValue => ({ type: GgufType.U32, value });
const f32 = (value: number): GgufValue => ({ type: GgufType.F32, value });
const str = (value: string): GgufValue => ({ type: GgufType.STRING, value });
const bool = (value: boolean): GgufValue => ({ type: GgufType.BOOL, value });

/** Number of GGUF vocabulary entries of the byte tokenizer's SentencePiece-style vocabulary. */
export const BYTE_VOCAB_SIZE = 260;

/** sparselm byte-tokenizer id -> GGUF id (byte b -> b + 3, eos 256 -> `</s>` 2). */
export function byteIdToGguf(id: number): number {
  return id === 256 ? 2 : id + 3;
}

/** GGUF id -> sparselm byte-tokenizer id, or -1 for `<unk>`, `<s>` and `▁`. */
export function ggufIdToByte(id: number): number {
  if (id === 2) return 256;
  if (id >= 3 && id < 259) return id - 3;
  return -1;
}

function byteVocab(): GgufVocab {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types: number[] = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TokenType.BYTE);
  }
  tokens.push('\u2581');
  types.push(TokenType.NORMAL);
  const toSparselm = new Int32Array(BYTE_VOCAB_SIZE);
  for (let g = 0; g < BYTE_VOCAB_SIZE; g++) toSparselm[g] = ggufIdToByte(g);
  return {
    toSparselm,
    kv: [
      ['tokenizer.ggml.model', str('llama')],
      ['tokenizer.ggml.tokens', strArr(tokens)],
      ['tokenizer.ggml.scores', f32Arr(tokens.map(() => 0))],
      ['tokenizer.ggml.token_type', i32Arr(types)],
      ['tokenizer.ggml.unknown_token_id', u32(0)],
      ['tokenizer.ggml.bos_token_id', u32(1)],
      ['tokenizer.ggml.eos_token_id', u32(2)],
      ['tokenizer.ggml.add_bos_token', bool(false)],
      ['tokenizer.ggml.add_eos_token', bool(false)],
      ['tokenizer.ggml.add_space_prefix', bool(false)],
    ],
  };
}

/** GPT-2's byte -> printable character map (bytes that print as themselves keep their code point; the rest go to 256 + n). */
function byteToUnicode(): string[] {
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCodePoint(printable ? b : 256 + n++);
  }
  return out;
}

/**
 * GPT-2's merges recovered from its ranks: for each token (rank >= 256), run
 * BPE over its bytes with only lower ranks until two parts are left; those
 * are the pair that makes it.
 */
function gpt2Merges(bytesOf: (id: number) => Uint8Array, n: number, rankOf: Map<string, number>): [number, number][] {
  const merges: [number, number][] = [];
  const key = (b: Uint8Array) => Buffer.from(b).toString('latin1');
  for (let id = 256; id < n; id++) {
    let parts: Uint8Array[] = Array.from(bytesOf(id), (b) => Uint8Array.of(b));
    while (parts.length > 2) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = rankOf.get(key(Buffer.concat([parts[i], parts[i + 1]])));
        if (r !== undefined && r < id && r < bestRank) { bestRank = r; best = i; }
      }
      if (best < 0) break;
      parts = [...parts.slice(0, best), Buffer.concat([parts[best], parts[best + 1]]), ...parts.slice(best + 2)];
    }
    const l = parts.length === 2 ? rankOf.get(key(parts[0])) : undefined;
    const r = parts.length === 2 ? rankOf.get(key(parts[1])) : undefined;
    if (l === undefined || r === undefined) throw new SparselmError(`gguf export: cannot recover the GPT-2 merge that makes token ${id}`);
    merges.push([l, r]);
  }
  return merges;
}

function bpeVocab(tokenizer: Tokenizer): GgufVocab {
  const V = tokenizer.vocabSize;
  const eos = tokenizer.eos;
  let pairs: [number, number][];
  if (tokenizer instanceof BpeTokenizer) {
    if (tokenizer.pattern !== GPT2_PATTERN) {
      throw new SparselmError('gguf export: this BPE tokenizer uses its own pre-tokenizer pattern; only the GPT-2 pattern has a llama.cpp form (tokenizer.ggml.pre = gpt-2)');
    }
    const m = tokenizer.toJSON().merges;
    pairs = [];
    for (let i = 0; i < m.length; i += 2) pairs.push([m[i], m[i + 1]]);
  } else if (tokenizer.kind === 'gpt2') {
    const rankOf = new Map<string, number>();
    for (let id = 0; id < eos; id++) rankOf.set(Buffer.from(tokenizer.tokenBytes(id)).toString('latin1'), id);
    // GPT-2's ids 0..255 are single bytes but not in byte order; every id >= 256 is a merge in rank order.
    pairs = gpt2Merges((id) => tokenizer.tokenBytes(id), eos, rankOf);
  } else {
    throw new SparselmError(`gguf export: tokenizer kind '${tokenizer.kind}' has no GGUF form`);
  }
  const b2u = byteToUnicode();
  const tokens: string[] = [];
  const types: number[] = [];
  const seen = new Map<string, number>();
  for (let id = 0; id < V; id++) {
    const text = id === eos ? '<|endoftext|>' : Array.from(tokenizer.tokenBytes(id), (b) => b2u[b]).join('');
    const prev = seen.get(text);
    if (prev !== undefined) {
      throw new SparselmError(`gguf export: tokens ${prev} and ${id} have the same bytes; llama.cpp needs every token string to be distinct`);
    }
    seen.set(text, id);
    tokens.push(text);
    types.push(id === eos ? TokenType.CONTROL : TokenType.NORMAL);
  }
  const merges = pairs.map(([l, r]) => `${tokens[l]} ${tokens[r]}`);
  const toSparselm = new Int32Array(V);
  for (let i = 0; i < V; i++) toSparselm[i] = i;
  return {
    toSparselm,
    kv: [
      ['tokenizer.ggml.model', str('gpt2')],
      ['tokenizer.ggml.pre', str('gpt-2')],
      ['tokenizer.ggml.tokens', strArr(tokens)],
      ['tokenizer.ggml.token_type', i32Arr(types)],
      ['tokenizer.ggml.merges', strArr(merges)],
      ['tokenizer.ggml.bos_token_id', u32(eos)],
      ['tokenizer.ggml.eos_token_id', u32(eos)],
      ['tokenizer.ggml.add_bos_token', bool(false)],
      ['tokenizer.ggml.add_eos_token', bool(false)],
    ],
  };
}

function vocabOf(tokenizer: Tokenizer): GgufVocab {
  return tokenizer.kind === 'byte' ? byteVocab() : bpeVocab(tokenizer);
}

// ---------------------------------------------------------------- encoding

class Writer {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number): void { this.room(1); this.buf.writeUInt8(v, this.length); this.length += 1; }
  u32(v: number): void { this.room(4); this.buf.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number): void { this.room(4); this.buf.writeInt32LE(v, this.length); this.length += 4; }
  u64(v: number | bigint): void { this.room(8); this.buf.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  i64(v: number | bigint): void { this.room(8); this.buf.writeBigInt64LE(BigInt(v), this.length); this.length += 8; }
  f32(v: number): void { this.room(4); this.buf.writeFloatLE(v, this.length); this.length += 4; }
  f64(v: number): void { this.room(8); this.buf.writeDoubleLE(v, this.length); this.length += 8; }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.room(b.length);
    b.copy(this.buf, this.length);
    this.length += b.length;
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.room(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  bytes(): Uint8Array { return this.buf.subarray(0, this.length); }
}

function writeScalar(w: Writer, type: Exclude<GgufTypeId, 9>, v: GgufScalar): void {
  switch (type) {
    case GgufType.U8: case GgufType.I8: w.u8(Number(v) & 0xff); break;
    case GgufType.U16: case GgufType.I16: w.u8(Number(v) & 0xff); w.u8((Number(v) >> 8) & 0xff); break;
    case GgufType.U32: w.u32(Number(v)); break;
    case GgufType.I32: w.i32(Number(v)); break;
    case GgufType.F32: w.f32(Number(v)); break;
    case GgufType.BOOL: w.u8(v ? 1 : 0); break;
    case GgufType.STRING: w.str(String(v)); break;
    case GgufType.U64: w.u64(typeof v === 'bigint' ? v : Number(v)); break;
    case GgufType.I64: w.i64(typeof v === 'bigint' ? v : Number(v)); break;
    case GgufType.F64: w.f64(Number(v)); break;
  }
}

/** The header (key-values and tensor infos), padded to the alignment: the bytes before the tensor data. */
export function encodeGgufHeader(kv: [string, GgufValue][], tensors: GgufTensorInfo[], alignment = GGUF_ALIGNMENT): Uint8Array {
  const w = new Writer();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(kv.length);
  for (const [key, v] of kv) {
    w.str(key);
    w.u32(v.type);
    if (v.type === GgufType.ARRAY) {
      w.u32(v.elementType);
      w.u64(v.value.length);
      for (const e of v.value) writeScalar(w, v.elementType, e);
    } else {
      writeScalar(w, v.type, v.value);
    }
  }
  for (const t of tensors) {
    if (Buffer.byteLength(t.name, 'utf8') >= 64) throw new SparselmError(`gguf: tensor name '${t.name}' is 64 bytes or longer`);
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(t.offset);
  }
  w.pad(alignment);
  return w.bytes();
}

// ---------------------------------------------------------------- export

/** One tensor to write: its GGUF info and a function that fills its float32 data. */
interface PlannedTensor {
  name: string;
  dims: number[];
  data: () => Float32Array;
}

function floats(t: Tensor): Float32Array {
  const a = t.toArray();
  return a instanceof Float32Array ? a : Float32Array.from(a as ArrayLike<number>);
}

/** [rows, cols] row-major -> [cols, rows] row-major. */
function transposed(t: Tensor): Float32Array {
  const [rows, cols] = t.shape;
  const a = floats(t);
  const out = new Float32Array(rows * cols);
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B) {
    for (let c0 = 0; c0 < cols; c0 += B) {
      const r1 = Math.min(rows, r0 + B);
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = a[r * cols + c];
    }
  }
  return out;
}

/** rows of `width` floats taken in the order `src` gives (-1: a zero row). */
function permutedRows(rows: Float32Array, width: number, src: Int32Array): Float32Array {
  const out = new Float32Array(src.length * width);
  for (let g = 0; g < src.length; g++) {
    const s = src[g];
    if (s >= 0) out.set(rows.subarray(s * width, (s + 1) * width), g * width);
  }
  return out;
}

export interface ExportSummary {
  path: string;
  bytes: number;
  tensors: number;
  /** GGUF vocabulary size (260 for the byte tokenizer). */
  vocabSize: number;
}

/**
 * Writes `params` of a dense llama-architecture model as a GGUF file at
 * `path` (atomically). Throws a SparselmError naming the config field that
 * prevents export, or the parameter/tokenizer mismatch.
 */
export function writeGguf(path: string, config: ModelConfig, params: Readonly<Record<string, Tensor>>, tokenizer: Tokenizer, opts: { name?: string } = {}): ExportSummary {
  checkExportable(config);
  checkParameters(config, params);
  if (tokenizer.vocabSize !== config.vocab_size) {
    throw new SparselmError(`gguf export: the tokenizer has ${tokenizer.vocabSize} ids, the config's vocab_size is ${config.vocab_size}`);
  }
  const vocab = vocabOf(tokenizer);
  const Vg = vocab.toSparselm.length;
  const d = config.d_model;
  const hd = d / config.n_heads;

  const planned: PlannedTensor[] = [];
  planned.push({ name: 'token_embd.weight', dims: [d, Vg], data: () => permutedRows(floats(params['tok_emb.weight']), d, vocab.toSparselm) });
  for (let i = 0; i < config.n_layers; i++) {
    const b = `blk.${i}`;
    const linear = (gguf: string, ours: string) => {
      const [din, dout] = params[ours].shape;
      planned.push({ name: `${b}.${gguf}.weight`, dims: [din, dout], data: () => transposed(params[ours]) });
    };
    planned.push({ name: `${b}.attn_norm.weight`, dims: [d], data: () => floats(params[`${b}.attn_norm.weight`]) });
    linear('attn_q', `${b}.attn.wq`);
    linear('attn_k', `${b}.attn.wk`);
    linear('attn_v', `${b}.attn.wv`);
    linear('attn_output', `${b}.attn.wo`);
    planned.push({ name: `${b}.ffn_norm.weight`, dims: [d], data: () => floats(params[`${b}.ffn_norm.weight`]) });
    linear('ffn_gate', `${b}.ffn.w_gate`);
    linear('ffn_up', `${b}.ffn.w_up`);
    linear('ffn_down', `${b}.ffn.w_down`);
  }
  planned.push({ name: 'output_norm.weight', dims: [d], data: () => floats(params['out_norm.weight']) });
  if (!config.tied_output) {
    planned.push({ name: 'output.weight', dims: [d, Vg], data: () => permutedRows(transposed(params['output.weight']), d, vocab.toSparselm) });
  }

  const padded = (n: number) => Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  const infos: GgufTensorInfo[] = [];
  let offset = 0;
  for (const p of planned) {
    infos.push({ name: p.name, dims: p.dims, type: GgmlType.F32, offset });
    offset += padded(4 * p.dims.reduce((a, x) => a * x, 1));
  }

  const kv: [string, GgufValue][] = [
    ['general.architecture', str('llama')],
    ['general.name', str(opts.name ?? 'sparselm')],
    ['general.file_type', u32(0)],
    ['general.alignment', u32(GGUF_ALIGNMENT)],
    ['llama.vocab_size', u32(Vg)],
    ['llama.context_length', u32(config.context_length)],
    ['llama.embedding_length', u32(d)],
    ['llama.block_count', u32(config.n_layers)],
    ['llama.feed_forward_length', u32(config.d_ff)],
    ['llama.attention.head_count', u32(config.n_heads)],
    ['llama.attention.head_count_kv', u32(config.n_kv_heads)],
    ['llama.attention.layer_norm_rms_epsilon', f32(config.norm_eps)],
    ['llama.rope.freq_base', f32(config.rope_base)],
    ['llama.rope.dimension_count', u32(hd)],
    ...vocab.kv,
  ];
  const header = encodeGgufHeader(kv, infos);

  const zeros = new Uint8Array(GGUF_ALIGNMENT);
  writeFileAtomicWith(path, (fd) => {
    writeAll(fd, header);
    for (const p of planned) {
      const data = p.data();
      writeAll(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      const pad = padded(data.byteLength) - data.byteLength;
      if (pad > 0) writeAll(fd, zeros.subarray(0, pad));
    }
  });
  return { path, bytes: header.byteLength + offset, tensors: planned.length, vocabSize: Vg };
}

// ---------------------------------------------------------------- reading

/** Reads a file front to back in chunks, so a header can be parsed without loading a large file. */
class Reader {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;
  constructor(private readonly fd: number, private readonly path: string) {}
  private need(n: number): void {
    if (this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.buf.length) return;
    const size = Math.max(n, 1 << 20);
    const b = Buffer.alloc(size);
    const got = readSync(this.fd, b, 0, size, this.pos);
    if (got < n) throw new SparselmError(`gguf: ${this.path}: truncated at byte ${this.pos} (needed ${n} more bytes)`);
    this.buf = b.subarray(0, got);
    this.bufStart = this.pos;
  }
  private at(n: number): number { this.need(n); const o = this.pos - this.bufStart; this.pos += n; return o; }
  u8(): number { const o = this.at(1); return this.buf.readUInt8(o); }
  i8(): number { const o = this.at(1); return this.buf.readInt8(o); }
  u16(): number { const o = this.at(2); return this.buf.readUInt16LE(o); }
  i16(): number { const o = this.at(2); return this.buf.readInt16LE(o); }
  u32(): number { const o = this.at(4); return this.buf.readUInt32LE(o); }
  i32(): number { const o = this.at(4); return this.buf.readInt32LE(o); }
  f32(): number { const o = this.at(4); return this.buf.readFloatLE(o); }
  f64(): number { const o = this.at(8); return this.buf.readDoubleLE(o); }
  u64big(): bigint { const o = this.at(8); return this.buf.readBigUInt64LE(o); }
  i64(): bigint { const o = this.at(8); return this.buf.readBigInt64LE(o); }
  u64(): number {
    const v = this.u64big();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new SparselmError(`gguf: ${this.path}: a count or offset ${v} at byte ${this.pos - 8} is too large`);
    return Number(v);
  }
  str(): string {
    const n = this.u64();
    if (n > 1 << 24) throw new SparselmError(`gguf: ${this.path}: a string of ${n} bytes at byte ${this.pos - 8}`);
    const o = this.at(n);
    return this.buf.toString('utf8', o, o + n);
  }
}

function readScalar(r: Reader, type: number, path: string): GgufScalar {
  switch (type) {
    case GgufType.U8: return r.u8();
    case GgufType.I8: return r.i8();
    case GgufType.U16: return r.u16();
    case GgufType.I16: return r.i16();
    case GgufType.U32: return r.u32();
    case GgufType.I32: return r.i32();
    case GgufType.F32: return r.f32();
    case GgufType.BOOL: return r.u8() !== 0;
    case GgufType.STRING: return r.str();
    case GgufType.U64: return r.u64big();
    case GgufType.I64: return r.i64();
    case GgufType.F64: return r.f64();
    default: throw new SparselmError(`gguf: ${path}: unknown value type ${type} at byte ${r.pos - 4}`);
  }
}

/** Parses a GGUF file's key-values and tensor infos (not the tensor data). */
export function readGgufHeader(path: string): GgufHeader {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw ioError('gguf', path, e);
  }
  try {
    const r = new Reader(fd, path);
    const magic = r.u32();
    if (magic !== GGUF_MAGIC) throw new SparselmError(`gguf: ${path}: not a GGUF file (magic 0x${magic.toString(16)})`);
    const version = r.u32();
    if (version !== 2 && version !== 3) throw new SparselmError(`gguf: ${path}: version ${version}; this reader reads versions 2 and 3`);
    const nTensors = r.u64();
    const nKv = r.u64();
    const kv = new Map<string, GgufValue>();
    for (let i = 0; i < nKv; i++) {
      const key = r.str();
      const type = r.u32();
      if (type === GgufType.ARRAY) {
        const elementType = r.u32();
        const n = r.u64();
        const value: GgufScalar[] = [];
        for (let j = 0; j < n; j++) value.push(readScalar(r, elementType, path));
        kv.set(key, { type: GgufType.ARRAY, elementType: elementType as Exclude<GgufTypeId, 9>, value });
      } else {
        kv.set(key, { type: type as Exclude<GgufTypeId, 9>, value: readScalar(r, type, path) });
      }
    }
    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = r.str();
      const nd = r.u32();
      const dims: number[] = [];
      for (let j = 0; j < nd; j++) dims.push(r.u64());
      const type = r.u32();
      const offset = r.u64();
      tensors.push({ name, dims, type, offset });
    }
    const al = kv.get('general.alignment');
    const alignment = al && al.type !== GgufType.ARRAY ? Number(al.value) : GGUF_ALIGNMENT;
    const dataOffset = Math.ceil(r.pos / alignment) * alignment;
    return { version, kv, tensors, alignment, dataOffset };
  } finally {
    closeSync(fd);
  }
}

/** The float32 data of one F32 tensor of a GGUF file (ne[0] contiguous). */
export function readGgufTensorF32(path: string, header: GgufHeader, name: string): Float32Array {
  const t = header.tensors.find((x) => x.name === name);
  if (!t) throw new SparselmError(`gguf: ${path}: no tensor '${name}'`);
  if (t.type !== GgmlType.F32) throw new SparselmError(`gguf: ${path}: tensor '${name}' has type ${t.type}, not F32`);
  const n = t.dims.reduce((a, x) => a * x, 1);
  const out = new Float32Array(n);
  const fd = openSync(path, 'r');
  try {
    const bytes = new Uint8Array(out.buffer);
    let got = 0;
    while (got < bytes.length) {
      const k = readSync(fd, bytes, got, bytes.length - got, header.dataOffset + t.offset + got);
      if (k === 0) throw new SparselmError(`gguf: ${path}: tensor '${name}' is truncated`);
      got += k;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** A metadata value as a plain JS value (arrays as arrays). */
export function ggufValue(h: GgufHeader, key: string): GgufScalar | GgufScalar[] | undefined {
  return h.kv.get(key)?.value;
}
