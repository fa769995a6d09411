/**
 * Checkpoint I/O: safetensors round trips and a byte-exact match with files
 * built by hand from docs/format.md; every corruption gets an error naming
 * the file and the tensor; atomic saves survive injected failures and a real
 * SIGKILL mid-write; keep-last-K pruning; clear errors for bad directories;
 * releaseLoadGarbage returns dropped arrays' memory before it returns.
 */

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SparselmError, tensor, type Tensor } from '../src/index.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../src/io/safetensors.js';
import { cleanStaleTemps, isTempName, publishDirAtomic, tempPath, writeFileAtomic } from '../src/io/atomic.js';
import { releaseLoadGarbage } from '../src/io/memory.js';
import {
  FORMAT_VERSION, listCheckpoints, loadCheckpoint, saveCheckpoint, stepDirName, validateAgainst, type CheckpointParts,
} from '../src/io/checkpoint.js';

let root: string;
before(() => { root = mkdtempSync(join(tmpdir(), 'sparselm-io-')); });
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const fresh = (label: string): string => {
  const d = join(root, `${label}-${counter++}`);
  mkdirSync(d, { recursive: true });
  return d;
};

// ---------- an independent safetensors encoder: straight from the spec text ----------

/** Builds a file the way docs/format.md describes it, from a header string we write out literally. */
function handBuilt(headerJson: string, data: Uint8Array, padTo8 = true): Buffer {
  let h = Buffer.from(headerJson, 'utf8');
  if (padTo8) h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeUInt32LE(h.length, 0); // u64 LE: low word, high word 0
  return Buffer.concat([len, h, Buffer.from(data)]);
}

function le(kind: 'f32' | 'f64' | 'i32' | 'u16', values: number[]): Uint8Array {
  const size = kind === 'f64' ? 8 : kind === 'u16' ? 2 : 4;
  const dv = new DataView(new ArrayBuffer(values.length * size));
  values.forEach((v, i) => {
    if (kind === 'f32') dv.setFloat32(i * 4, v, true);
    else if (kind === 'f64') dv.setFloat64(i * 8, v, true);
    else if (kind === 'i32') dv.setInt32(i * 4, v, true);
    else dv.setUint16(i * 2, v, true);
  });
  return new Uint8Array(dv.buffer);
}

const bitsEqual = (a: ArrayLike<number> & { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }, b: typeof a): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('safetensors: round trip', () => {
  it('float32, float64, int32 incl. rank 0, empty and special values, bit for bit', () => {
    const f32 = new Float32Array([1.5, -0, NaN, Infinity, -Infinity, 1e-45, 3.4028234663852886e38, -2]);
    const f64 = new Float64Array([Math.PI, -0, NaN, 5e-324, Number.MAX_VALUE, -1e300]);
    const i32 = new Int32Array([0, -1, 2147483647, -2147483648, 7, 8]);
    const tensors: Record<string, Tensor> = {
      'blk.0.ffn.w1': tensor(f32, [2, 4]),
      'f64.matrix': tensor(f64, [3, 2]),
      ids: tensor(i32, [6]),
      scalar32: tensor(new Float32Array([42.25]), []),
      scalar64: tensor(new Float64Array([-1 / 3]), []),
      scalarI: tensor(new Int32Array([-5]), []),
      empty: tensor(new Float32Array(0), [0]),
      empty3: tensor(new Float64Array(0), [2, 0, 3]),
      emptyI: tensor(new Int32Array(0), [0, 4]),
      '12': tensor(new Int32Array([12]), [1]),
      'ünïcode/名前': tensor(new Float32Array([1, 2]), [1, 2]),
    };
    const path = join(fresh('rt'), 'x.safetensors');
    writeSafetensors(path, tensors, { purpose: 'test', step: '3' });
    for (const device of ['ref', 'cpu']) {
      const { tensors: got, metadata } = readSafetensors(path, { device });
      assert.deepEqual(metadata, { purpose: 'test', step: '3' });
      assert.deepEqual(Object.keys(got).sort(), Object.keys(tensors).sort());
      for (const [name, t] of Object.entries(tensors)) {
        const g = got[name];
        assert.equal(g.dtype, t.dtype, name);
        assert.equal(g.device, device, name);
        assert.deepEqual([...g.shape], [...t.shape], name);
        assert.ok(bitsEqual(g.toArray(), t.toArray()), `${name}: bits differ`);
      }
    }
    const h = readSafetensorsHeader(path);
    assert.equal(h.dataStart % 8, 0);
    assert.deepEqual(h.tensors.scalar64, { dtype: 'F64', shape: [], dataOffsets: h.tensors.scalar64.dataOffsets });
    assert.equal(h.tensors.scalar64.dataOffsets[1] - h.tensors.scalar64.dataOffsets[0], 8);
    assert.deepEqual(h.tensors.empty3.shape, [2, 0, 3]);
    assert.equal(h.tensors.empty3.dataOffsets[0], h.tensors.empty3.dataOffsets[1]);
    // Written in sorted name order, so the data section is in that order too.
    const byOffset = Object.entries(h.tensors).sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]).map(([n]) => n);
    assert.deepEqual(Object.keys(h.tensors), Object.keys(tensors).sort());
    assert.deepEqual(byOffset.filter((n) => !n.startsWith('empty')), Object.keys(tensors).sort().filter((n) => !n.startsWith('empty')));
  });

  it('a non-contiguous view is written in row-major order of its logical shape', async () => {
    const { permute } = await import('../src/index.js');
    const t = permute(tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]), [1, 0]); // [3,2] view
    const path = join(fresh('view'), 'v.safetensors');
    writeSafetensors(path, { t });
    const g = readSafetensors(path).tensors.t;
    assert.deepEqual([...g.shape], [3, 2]);
    assert.deepEqual([...g.toArray()], [1, 4, 2, 5, 3, 6]);
  });

  it('equal inputs give identical bytes regardless of insertion order', () => {
    const d = fresh('det');
    const a = { x: tensor([1, 2]), y: tensor([3]) };
    const b = { y: tensor([3]), x: tensor([1, 2]) };
    writeSafetensors(join(d, 'a'), a, { m: '1', k: '2' });
    writeSafetensors(join(d, 'b'), b, { k: '2', m: '1' });
    assert.ok(readFileSync(join(d, 'a')).equals(readFileSync(join(d, 'b'))));
  });

  it('names: only the tensors asked for are read; an unknown name is an error', () => {
    const path = join(fresh('names'), 'n.safetensors');
    writeSafetensors(path, { a: tensor([1]), b: tensor([2]) });
    assert.deepEqual(Object.keys(readSafetensors(path, { names: ['b'] }).tensors), ['b']);
    assert.throws(() => readSafetensors(path, { names: ['c'] }), /readSafetensors: .*n\.safetensors: no tensor 'c' in the file \(it has 2: a, b\)/);
  });
});

describe('safetensors: byte-exact layout against hand-built files', () => {
  it('the example of docs/format.md', () => {
    const path = join(fresh('doc'), 'a.safetensors');
    writeSafetensors(path, { a: tensor(new Float32Array([1, 2]), [2]) });
    const expected = Buffer.from([
      0x38, 0, 0, 0, 0, 0, 0, 0,
      ...Buffer.from('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  ', 'utf8'),
      0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40,
    ]);
    assert.equal(expected.length, 72);
    assert.ok(readFileSync(path).equals(expected), `got ${readFileSync(path).toString('hex')}`);
  });

  it('metadata first, names sorted (integer-like names too), each dtype laid out little-endian', () => {
    const path = join(fresh('exact'), 'b.safetensors');
    writeSafetensors(path, {
      w: tensor(new Float64Array([0.5, -3]), [2, 1]),
      b: tensor(new Float32Array([1, 2, 3]), [3]),
      '10': tensor(new Int32Array([-2]), []),
      '9': tensor(new Int32Array(0), [0]),
    }, { z: 'last', a: 'first' });
    const header = '{"__metadata__":{"a":"first","z":"last"},'
      + '"10":{"dtype":"I32","shape":[],"data_offsets":[0,4]},'
      + '"9":{"dtype":"I32","shape":[0],"data_offsets":[4,4]},'
      + '"b":{"dtype":"F32","shape":[3],"data_offsets":[4,16]},'
      + '"w":{"dtype":"F64","shape":[2,1],"data_offsets":[16,32]}}';
    const data = Buffer.concat([le('i32', [-2]), le('f32', [1, 2, 3]), le('f64', [0.5, -3])]);
    const expected = handBuilt(header, data);
    assert.ok(readFileSync(path).equals(expected), `got\n${readFileSync(path).toString('latin1')}\nwant\n${expected.toString('latin1')}`);
  });

  it('reads files other writers produce: F16/BF16 to float32, data out of name order, unpadded header', () => {
    // F16: 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal), Inf, -0. BF16: 1, -3.5, 2^100.
    const f16 = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00, 0x8000];
    const bf16 = [0x3f80, 0xc060, 0x7180];
    const header = '{"z":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},"a":{"dtype":"F16","shape":[7],"data_offsets":[6,20]}}';
    const path = join(fresh('f16'), 'h.safetensors');
    writeFileSync(path, handBuilt(header, Buffer.concat([le('u16', bf16), le('u16', f16)]), false));
    const { tensors } = readSafetensors(path);
    assert.equal(tensors.a.dtype, 'float32');
    assert.deepEqual([...tensors.a.toArray()], [1, -2, 0.5, 65504, 2 ** -24, Infinity, -0]);
    assert.ok(Object.is(tensors.a.toArray()[6], -0));
    assert.deepEqual([...tensors.z.toArray()], [1, -3.5, 2 ** 100]);
    assert.equal(readSafetensorsHeader(path).headerLength, Buffer.byteLength(header));
  });
});

describe('safetensors: every corruption is an error naming the file and the tensor', () => {
  let good: Buffer;
  let n: number;
  let dir: string;
  before(() => {
    dir = fresh('corrupt');
    const p = join(dir, 'good.safetensors');
    writeSafetensors(p, { alpha: tensor(new Float32Array([1, 2, 3]), [3]), beta: tensor(new Float64Array([4, 5]), [2]) });
    good = readFileSync(p);
    n = Number(good.readBigUInt64LE(0));
  });
  const write = (name: string, bytes: Buffer): string => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  const expectError = (path: string, re: RegExp): void => {
    for (const read of [() => readSafetensors(path), () => readSafetensorsHeader(path)]) {
      assert.throws(read, (e: unknown) => {
        assert.ok(e instanceof SparselmError, `not a SparselmError: ${String(e)}`);
        assert.ok(e.message.includes(path), `message does not name the file: ${e.message}`);
        assert.match(e.message, re);
        return true;
      });
    }
  };

  it('truncated at every kind of point', () => {
    const cases: [number, RegExp][] = [
      [0, /truncated: the file has 0 bytes, fewer than the 8/],
      [5, /truncated: the file has 5 bytes/],
      [8, /truncated: header length \d+ runs past the end of the file \(8 bytes\)/],
      [8 + 10, /truncated: header length \d+ runs past the end of the file/],
      [8 + n - 1, /truncated: header length/],
      [8 + n, /tensor 'alpha': truncated: its data_offsets \[0,12\] run past the end of the data section \(0 bytes/],
      [8 + n + 6, /tensor 'alpha': truncated/],
      [8 + n + 12 + 8, /tensor 'beta': truncated: its data_offsets \[12,28\] run past the end of the data section \(20 bytes/],
      [good.length - 1, /tensor 'beta': truncated/],
    ];
    for (const [at, re] of cases) expectError(write(`trunc-${at}`, good.subarray(0, at)), re);
  });

  const header = (json: string, dataBytes = 28): Buffer => handBuilt(json, Buffer.alloc(dataBytes));
  const cases: [string, () => Buffer, RegExp][] = [
    ['header length beyond the file', () => { const b = Buffer.from(good); b.writeBigUInt64LE(BigInt(good.length), 0); return b; }, /truncated: header length \d+ runs past the end of the file/],
    ['header length absurd', () => { const b = Buffer.from(good); b.writeBigUInt64LE(2n ** 62n, 0); return b; }, /header length 4611686018427387904 exceeds the limit of 104857600 bytes/],
    ['invalid JSON', () => header('{"alpha":{"dtype":"F32",'), /invalid JSON header: /],
    ['empty header', () => handBuilt('', Buffer.alloc(0), false), /invalid JSON header/],
    ['not UTF-8', () => handBuilt('{"\xff":1}', Buffer.alloc(0)).fill(0xff, 10, 11), /header is not valid UTF-8/],
    ['header is an array', () => header('[1,2]'), /header must be a JSON object, got an array/],
    ['entry not an object', () => header('{"alpha":3}'), /tensor 'alpha': entry must be an object, got a number/],
    ['unknown dtype', () => header('{"alpha":{"dtype":"Q4_K","shape":[3],"data_offsets":[0,12]}}', 12), /tensor 'alpha': unknown dtype 'Q4_K' \(known: F32, F64, I32, F16, BF16\)/],
    ['dtype missing', () => header('{"alpha":{"shape":[3],"data_offsets":[0,12]}}', 12), /tensor 'alpha': dtype must be a string, got no value/],
    ['negative shape', () => header('{"alpha":{"dtype":"F32","shape":[-3],"data_offsets":[0,12]}}', 12), /tensor 'alpha': shape must be an array of non-negative integers, got \[-3\]/],
    ['fractional shape', () => header('{"alpha":{"dtype":"F32","shape":[1.5],"data_offsets":[0,12]}}', 12), /tensor 'alpha': shape must be/],
    ['offsets not a pair', () => header('{"alpha":{"dtype":"F32","shape":[3],"data_offsets":[0]}}', 12), /tensor 'alpha': data_offsets must be two non-negative integers/],
    ['offsets reversed', () => header('{"alpha":{"dtype":"F32","shape":[0],"data_offsets":[12,0]}}', 12), /tensor 'alpha': data_offsets \[12,0\] end before they begin/],
    ['size mismatch', () => header('{"alpha":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}', 16), /tensor 'alpha': data_offsets \[0,16\] hold 16 bytes but F32 \[3\] needs 12/],
    ['size mismatch F64', () => header('{"beta":{"dtype":"F64","shape":[2,2],"data_offsets":[0,16]}}', 16), /tensor 'beta': data_offsets \[0,16\] hold 16 bytes but F64 \[2,2\] needs 32/],
    ['out of range', () => header('{"alpha":{"dtype":"F32","shape":[3],"data_offsets":[20,32]}}', 28), /tensor 'alpha': truncated: its data_offsets \[20,32\] run past the end of the data section \(28 bytes/],
    ['overlap', () => header('{"alpha":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"beta":{"dtype":"F64","shape":[2],"data_offsets":[8,24]}}', 24), /tensor 'beta': data_offsets \[8,24\] overlap tensor 'alpha' \(which ends at 12\)/],
    ['same offsets twice', () => header('{"alpha":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"beta":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}', 12), /tensor 'beta': data_offsets \[0,12\] overlap tensor 'alpha'/],
    ['gap', () => header('{"alpha":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"beta":{"dtype":"F64","shape":[2],"data_offsets":[16,32]}}', 32), /tensor 'beta': data_offsets \[16,32\] leave a gap: bytes 12\.\.16 belong to no tensor/],
    ['gap at the start', () => header('{"alpha":{"dtype":"F32","shape":[3],"data_offsets":[4,16]}}', 16), /tensor 'alpha': .*leave a gap: bytes 0\.\.4/],
    ['trailing bytes', () => header('{"alpha":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}', 20), /8 bytes after the last tensor \(tensors end at 12, the data section is 20 bytes\)/],
    ['metadata not strings', () => header('{"__metadata__":{"step":3}}', 0), /__metadata__ values must be strings; 'step' is a number/],
    ['metadata not an object', () => header('{"__metadata__":"x"}', 0), /__metadata__ must be an object of strings, got a string/],
  ];
  for (const [name, make, re] of cases) {
    it(name, () => expectError(write(`${name.replace(/\W+/g, '-')}.safetensors`, make()), re));
  }

  it('a missing file and a directory are errors naming the path', () => {
    expectError(join(dir, 'nope.safetensors'), /ENOENT/);
    expectError(dir, /EISDIR/);
  });

  it('writing: __metadata__ as a tensor name and non-string metadata are refused', () => {
    const p = join(dir, 'w.safetensors');
    assert.throws(() => writeSafetensors(p, { __metadata__: tensor([1]) }), /writeSafetensors: .*w\.safetensors: '__metadata__' cannot name a tensor/);
    assert.throws(() => writeSafetensors(p, { a: tensor([1]) }, { k: 3 as unknown as string }), /__metadata__ values must be strings; 'k' is number/);
    assert.equal(existsSync(p), false);
  });

  it('a write that fails part-way leaves the previous file untouched and no temporary file', () => {
    const p = join(fresh('wfail'), 'x.safetensors');
    writeSafetensors(p, { a: tensor([1, 2]) });
    const before = readFileSync(p);
    const dead = tensor([9, 9, 9]);
    dead.dispose();
    assert.throws(() => writeSafetensors(p, { a: tensor([5, 6]), zz: dead }), /toArray: tensor of shape \[3\] was disposed/);
    assert.ok(readFileSync(p).equals(before));
    assert.deepEqual(readdirSync(join(p, '..')), ['x.safetensors']);
  });
});

// ---------- atomic primitives ----------

describe('atomic writes', () => {
  it('writeFileAtomic replaces content and leaves no temporary file', () => {
    const d = fresh('atomic');
    writeFileAtomic(join(d, 'f'), 'one');
    writeFileAtomic(join(d, 'f'), new Uint8Array([0x74, 0x77, 0x6f]));
    assert.equal(readFileSync(join(d, 'f'), 'utf8'), 'two');
    assert.deepEqual(readdirSync(d), ['f']);
  });

  it('publishDirAtomic: a failing fill leaves nothing; an existing target needs replace', () => {
    const d = fresh('publish');
    const target = join(d, 'out');
    assert.throws(() => publishDirAtomic(target, (tmp) => {
      writeFileSync(join(tmp, 'half'), 'x');
      throw new Error('injected');
    }), /injected/);
    assert.deepEqual(readdirSync(d), []);
    publishDirAtomic(target, (tmp) => writeFileSync(join(tmp, 'a'), '1'));
    assert.throws(() => publishDirAtomic(target, () => undefined), /publishDir: .*out already exists/);
    publishDirAtomic(target, (tmp) => writeFileSync(join(tmp, 'b'), '2'), { replace: true });
    assert.deepEqual(readdirSync(target), ['b']);
    assert.deepEqual(readdirSync(d), ['out']);
  });

  it('cleanStaleTemps removes entries of dead processes, keeps live ones and non-temporary names', () => {
    const d = fresh('stale');
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    assert.ok(dead !== undefined && dead > 0);
    mkdirSync(join(d, `step-000001.tmp-${dead}-abcd`));
    writeFileSync(join(d, `latest.tmp-${dead}-beef`), 'x');
    mkdirSync(join(d, `step-000002.old-${dead}-0123`));
    mkdirSync(join(d, 'step-000003.tmp-1-ffff')); // pid 1 is alive: another process's save in progress
    mkdirSync(join(d, 'step-000004'));
    writeFileSync(join(d, 'notes.tmp'), 'x');
    assert.ok(isTempName(`step-000001.tmp-${dead}-abcd`) && !isTempName('step-000004') && !isTempName('notes.tmp'));
    const removed = cleanStaleTemps(d).sort();
    assert.deepEqual(removed, [`latest.tmp-${dead}-beef`, `step-000001.tmp-${dead}-abcd`, `step-000002.old-${dead}-0123`].sort());
    assert.deepEqual(readdirSync(d).sort(), ['notes.tmp', 'step-000003.tmp-1-ffff', 'step-000004']);
    assert.match(tempPath(join(d, 'x')), new RegExp(`x\\.tmp-${process.pid}-[0-9a-f]{8}$`));
  });
});

// ---------- checkpoints ----------

const params = (scale: number): Record<string, Tensor> => ({
  'tok_emb.weight': tensor(new Float32Array([1, 2, 3, 4, 5, 6].map((x) => x * scale)), [3, 2]),
  'out_norm.weight': tensor(new Float32Array([scale, -scale]), [2]),
});
const config = { version: 1, vocab_size: 3, d_model: 2, topk_k: [1, 2], norm_eps: 1e-5 };
const tokenizer = { kind: 'bytes', merges: [['a', 'b']] };

function parts(step: number): CheckpointParts {
  return {
    params: params(step),
    config,
    tokenizer,
    optimizer: {
      tensors: {
        'adamw.m.tok_emb.weight': tensor(new Float64Array(6).fill(step / 3), [3, 2]),
        'adamw.v.tok_emb.weight': tensor(new Float64Array(6).fill(1e-300), [3, 2]),
      },
      state: { kind: 'adamw', version: 1, step, paramSteps: { 'tok_emb.weight': step }, options: { lr: 0.1 + 0.2, beta1: 0.9 } },
    },
    trainer: { schedule: { kind: 'cosine', warmup: 10 }, rng: { seed: 7, position: 4096 * step }, data: { shard: 1, offset: 17 }, train_config: { batch: 8 } },
  };
}

const pointer = (run: string): string => readFileSync(join(run, 'checkpoints', 'latest'), 'utf8');

describe('checkpoints: save and load', () => {
  it('round trip of every part; the directory holds exactly the specified files', () => {
    const run = fresh('run');
    const dir = saveCheckpoint(run, 123, parts(123));
    assert.equal(dir, join(run, 'checkpoints', 'step-000123'));
    assert.equal(pointer(run), 'step-000123\n');
    assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors', 'optimizer.safetensors', 'tokenizer.json', 'trainer.json']);
    assert.deepEqual(readdirSync(join(run, 'checkpoints')).sort(), ['latest', 'step-000123']);

    for (const where of [run, join(run, 'checkpoints'), dir]) {
      const ck = loadCheckpoint(where, { device: 'ref' });
      assert.equal(ck.dir, dir);
      assert.equal(ck.step, 123);
      assert.equal(ck.formatVersion, FORMAT_VERSION);
      assert.equal(ck.sparselmVersion, JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
      assert.deepEqual(ck.config, config);
      assert.deepEqual(ck.tokenizer, tokenizer);
      assert.deepEqual(ck.trainer, parts(123).trainer);
      assert.deepEqual(ck.optimizer?.state, parts(123).optimizer?.state);
      for (const [name, t] of Object.entries(params(123))) assert.deepEqual([...ck.params[name].toArray()], [...t.toArray()]);
      assert.equal(ck.params['tok_emb.weight'].device, 'ref');
      const m = ck.optimizer?.tensors['adamw.m.tok_emb.weight'];
      assert.equal(m?.dtype, 'float64');
      assert.deepEqual([...(m?.toArray() ?? [])], new Array(6).fill(41));
      assert.equal(ck.optimizer?.tensors['adamw.v.tok_emb.weight'].toArray()[0], 1e-300);
    }
    const trainerJson = JSON.parse(readFileSync(join(dir, 'trainer.json'), 'utf8'));
    assert.equal(trainerJson.format_version, 1);
    assert.equal(trainerJson.step, 123);
    const meta = readSafetensorsHeader(join(dir, 'model.safetensors')).metadata;
    assert.deepEqual({ ...meta, sparselm_version: 'x' }, { format: 'sparselm', format_version: '1', contents: 'model', step: '123', sparselm_version: 'x' });
  });

  it('float64 parameters are stored as float32; an inference checkpoint has no trainer files', () => {
    const run = fresh('f64');
    const dir = saveCheckpoint(run, 0, { params: { w: tensor(new Float64Array([1 / 3, 2]), [2]) }, config, tokenizer });
    assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
    assert.equal(readSafetensorsHeader(join(dir, 'model.safetensors')).tensors.w.dtype, 'F32');
    const ck = loadCheckpoint(run);
    assert.equal(ck.params.w.dtype, 'float32');
    assert.equal(ck.params.w.toArray()[0], Math.fround(1 / 3));
    assert.equal(ck.step, 0);
    assert.equal(ck.optimizer, undefined);
    assert.equal(ck.trainer, undefined);
  });

  it('step names: zero-padded to 6 digits, wider when needed, ordered by number', () => {
    assert.equal(stepDirName(5), 'step-000005');
    assert.equal(stepDirName(1234567), 'step-1234567');
    const run = fresh('wide');
    saveCheckpoint(run, 1234567, parts(1));
    saveCheckpoint(run, 999999, parts(2));
    assert.deepEqual(listCheckpoints(run).map((c) => c.step), [999999, 1234567]);
    assert.equal(pointer(run), 'step-999999\n'); // the pointer, not the largest number, says which is latest
    assert.equal(loadCheckpoint(run).step, 999999);
  });

  it('bad arguments are refused before anything is written', () => {
    const run = fresh('args');
    const bad: [() => unknown, RegExp][] = [
      [() => saveCheckpoint(run, -1, parts(1)), /saveCheckpoint: step must be a non-negative integer, got -1/],
      [() => saveCheckpoint(run, 1.5, parts(1)), /step must be a non-negative integer/],
      [() => saveCheckpoint(run, 1, parts(1), { keep: 0 }), /keep must be an integer >= 1, got 0/],
      [() => saveCheckpoint(run, 1, { ...parts(1), config: { d_model: 2 } }), /config must be the ModelConfig object, with a numeric version/],
      [() => saveCheckpoint(run, 1, { ...parts(1), tokenizer: [] as unknown as object }), /tokenizer must be the tokenizer's toJSON\(\) object/],
      [() => saveCheckpoint(run, 1, { ...parts(1), trainer: { big: 1n } }), /trainer\.json: cannot serialise to JSON/],
    ];
    for (const [f, re] of bad) assert.throws(f, re);
    assert.deepEqual(readdirSync(run), []);
  });
});

describe('checkpoints: crash safety', () => {
  it('a save that throws mid-write leaves the previous checkpoint and pointer, and no temporary directory', () => {
    const run = fresh('throw');
    saveCheckpoint(run, 1, parts(1));
    const bad = parts(2);
    const dead = tensor([1, 2, 3]);
    dead.dispose();
    bad.params['zz.last'] = dead; // written last (sorted): the header and other tensors are already on disk
    assert.throws(() => saveCheckpoint(run, 2, bad), /was disposed/);
    assert.equal(pointer(run), 'step-000001\n');
    assert.deepEqual(readdirSync(join(run, 'checkpoints')).sort(), ['latest', 'step-000001']);
    assert.equal(loadCheckpoint(run).step, 1);
    // A failure in the optimizer file (after model.safetensors and the JSON files were written) is the same.
    const bad2 = parts(2);
    if (bad2.optimizer) bad2.optimizer.tensors.zz = dead;
    assert.throws(() => saveCheckpoint(run, 2, bad2), /was disposed/);
    assert.deepEqual(readdirSync(join(run, 'checkpoints')).sort(), ['latest', 'step-000001']);
    saveCheckpoint(run, 2, parts(2));
    assert.equal(loadCheckpoint(run).step, 2);
  });

  it('SIGKILL mid-write: the previous checkpoint and pointer survive; the leftover is never a checkpoint and the next save removes it', () => {
    const run = fresh('kill');
    saveCheckpoint(run, 1, parts(1));
    const url = (p: string): string => new URL(p, import.meta.url).href;
    // The child saves step 2; producing the bytes of its second tensor kills it (no cleanup can run).
    const script = `
      import { saveCheckpoint } from ${JSON.stringify(url('../src/io/checkpoint.js'))};
      import { tensor } from ${JSON.stringify(url('../src/index.js'))};
      const a = tensor([1, 2]);
      const killer = new Proxy(tensor([3]), { get(t, k) {
        if (k === 'toArray') return () => process.kill(process.pid, 'SIGKILL');
        const v = Reflect.get(t, k, t); return typeof v === 'function' ? v.bind(t) : v; } });
      saveCheckpoint(${JSON.stringify(run)}, 2, { params: { a, b: killer }, config: { version: 1 }, tokenizer: {} });
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.signal, 'SIGKILL', `child did not die by SIGKILL: status ${r.status}, stderr ${r.stderr}`);
    const entries = readdirSync(join(run, 'checkpoints')).sort();
    const leftovers = entries.filter(isTempName);
    assert.equal(leftovers.length, 1, `entries: ${entries.join(', ')}`);
    assert.match(leftovers[0], new RegExp(`^step-000002\\.tmp-${r.pid}-[0-9a-f]+$`));
    const inside = readdirSync(join(run, 'checkpoints', leftovers[0]));
    assert.deepEqual(inside.map((n) => n.replace(/\.tmp-.*$/, '.tmp-*')), ['model.safetensors.tmp-*'], 'killed while writing the model file');
    assert.equal(pointer(run), 'step-000001\n');
    assert.deepEqual(listCheckpoints(run).map((c) => c.name), ['step-000001']);
    assert.equal(loadCheckpoint(run).step, 1);
    assert.throws(() => loadCheckpoint(join(run, 'checkpoints', leftovers[0])), /is the temporary directory of an unfinished save, not a checkpoint/);
    saveCheckpoint(run, 2, parts(2));
    assert.deepEqual(readdirSync(join(run, 'checkpoints')).sort(), ['latest', 'step-000001', 'step-000002']);
    assert.equal(loadCheckpoint(run).step, 2);
  });

  it('a crash after publishing but before the pointer moved: the pointer still wins, and the step can be saved again', () => {
    const run = fresh('between');
    saveCheckpoint(run, 1, parts(1));
    saveCheckpoint(run, 2, parts(2));
    // Simulate: step 3 published (complete directory) but `latest` still says step 2.
    cpSync(join(run, 'checkpoints', 'step-000002'), join(run, 'checkpoints', 'step-000003'), { recursive: true });
    assert.equal(loadCheckpoint(run).step, 2);
    saveCheckpoint(run, 3, parts(3));
    assert.equal(pointer(run), 'step-000003\n');
    const ck = loadCheckpoint(run);
    assert.equal(ck.step, 3);
    assert.equal(ck.params['out_norm.weight'].toArray()[0], 3);
    assert.deepEqual(readdirSync(join(run, 'checkpoints')).sort(), ['latest', 'step-000001', 'step-000002', 'step-000003']);
  });

  it('the checkpoint the pointer names is never replaced in place', () => {
    const run = fresh('same');
    saveCheckpoint(run, 5, parts(5));
    assert.throws(() => saveCheckpoint(run, 5, parts(6)), /saveCheckpoint: .*step-000005 is the latest checkpoint/);
    assert.equal(loadCheckpoint(run).params['out_norm.weight'].toArray()[0], 5);
  });
});

describe('checkpoints: keep last K', () => {
  it('keeps the K newest', () => {
    const run = fresh('keep');
    for (let s = 1; s <= 5; s++) saveCheckpoint(run, s * 10, parts(s), { keep: 2 });
    assert.deepEqual(readdirSync(join(run, 'checkpoints')).sort(), ['latest', 'step-000040', 'step-000050']);
    saveCheckpoint(run, 60, parts(6), { keep: 1 });
    assert.deepEqual(readdirSync(join(run, 'checkpoints')).sort(), ['latest', 'step-000060']);
  });

  it('always keeps the one the pointer names, even when it is not the highest step', () => {
    const run = fresh('keep-resume');
    for (const s of [100, 200, 300]) saveCheckpoint(run, s, parts(1));
    // A run resumed from an older checkpoint saves step 150: it becomes latest and survives keep=2.
    saveCheckpoint(run, 150, parts(2), { keep: 2 });
    assert.deepEqual(listCheckpoints(run).map((c) => c.step), [150, 300]);
    assert.equal(loadCheckpoint(run).step, 150);
  });

  it('no keep: nothing is deleted', () => {
    const run = fresh('keep-all');
    for (let s = 1; s <= 4; s++) saveCheckpoint(run, s, parts(s));
    assert.equal(listCheckpoints(run).length, 4);
  });
});

describe('checkpoints: clear errors for bad directories', () => {
  it('missing, not a directory, empty, dangling or garbage pointer, damaged files', () => {
    const d = fresh('bad');
    const missing = join(d, 'nope');
    assert.throws(() => loadCheckpoint(missing), (e: unknown) => e instanceof SparselmError && e.message === `loadCheckpoint: ${missing} does not exist`);
    writeFileSync(join(d, 'file'), 'x');
    assert.throws(() => loadCheckpoint(join(d, 'file')), /loadCheckpoint: .*file is not a directory/);
    mkdirSync(join(d, 'empty'));
    assert.throws(() => loadCheckpoint(join(d, 'empty')), /empty is neither a checkpoint directory \(no model\.safetensors\) nor a run directory with checkpoints/);

    const run = join(d, 'run');
    saveCheckpoint(run, 1, parts(1));
    writeFileSync(join(run, 'checkpoints', 'latest'), 'step-000009\n');
    assert.throws(() => loadCheckpoint(run), /checkpoints\/latest names step-000009, which does not exist/);
    writeFileSync(join(run, 'checkpoints', 'latest'), '../../etc\n');
    assert.throws(() => loadCheckpoint(run), /latest: pointer holds "..\/..\/etc", not a checkpoint name like step-000123/);
    rmSync(join(run, 'checkpoints', 'latest'));
    assert.equal(loadCheckpoint(run).step, 1, 'without a pointer: the highest step');

    const ck = join(run, 'checkpoints', 'step-000001');
    const cfg = readFileSync(join(ck, 'config.json'));
    writeFileSync(join(ck, 'config.json'), '{"version": 1,');
    assert.throws(() => loadCheckpoint(ck), /loadCheckpoint: .*step-000001\/config\.json: invalid JSON/);
    rmSync(join(ck, 'config.json'));
    assert.throws(() => loadCheckpoint(ck), /step-000001\/config\.json is missing/);
    writeFileSync(join(ck, 'config.json'), cfg);

    const model = join(ck, 'model.safetensors');
    truncateSync(model, 40);
    assert.throws(() => loadCheckpoint(run), /readSafetensors: .*step-000001\/model\.safetensors: truncated/);
    rmSync(model);
    mkdirSync(model); // unreadable as a file
    assert.throws(() => loadCheckpoint(ck), /readSafetensors: .*model\.safetensors: EISDIR/);
  });

  it('a newer format version is refused with both versions named', () => {
    const run = fresh('newer');
    const dir = saveCheckpoint(run, 1, parts(1));
    const { tensors } = readSafetensors(join(dir, 'model.safetensors'));
    rmSync(join(dir, 'model.safetensors'));
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'sparselm', format_version: '2' });
    assert.throws(() => loadCheckpoint(run), /model\.safetensors: format version 2; this sparselm \(.*\) reads version 1/);
  });
});

describe('validateAgainst', () => {
  const got = { a: tensor(new Float32Array(6), [2, 3]), b: tensor([1, 2]), extra: tensor([0]) };
  it('passes when names and shapes match', () => {
    validateAgainst({ a: got.a, b: got.b }, { a: [2, 3], b: [2] });
  });
  it('lists missing, unexpected and mis-shaped tensors in one error', () => {
    assert.throws(() => validateAgainst(got, { a: [3, 2], b: [2], c: [4, 4] }, 'runs/x/step-000010'), (e: unknown) => {
      assert.ok(e instanceof SparselmError);
      assert.equal(e.message, 'validateAgainst: runs/x/step-000010: parameters do not match the model'
        + '\n  missing (1): c [4,4]'
        + '\n  unexpected (1): extra [1]'
        + '\n  wrong shape (1): a is [2,3], the model expects [3,2]');
      return true;
    });
  });
});

describe('releaseLoadGarbage', () => {
  it('returns the memory of a dropped array to the system before it returns', () => {
    const bytes = 128 << 20;
    // The array is made, made resident and dropped inside this function.
    const held = ((): number => {
      const a = new Float32Array(bytes / 4).fill(1);
      assert.equal(a[a.length - 1], 1);
      return process.memoryUsage.rss();
    })();
    assert.equal(releaseLoadGarbage(), true);
    const freed = held - process.memoryUsage.rss();
    assert.ok(freed >= bytes * 0.75, `resident set fell by ${(freed / 2 ** 20).toFixed(0)} MiB; the dropped array held 128`);
  });
});
