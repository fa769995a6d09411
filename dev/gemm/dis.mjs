import { readFileSync } from 'node:fs';
const name = process.argv[2];
const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true });
const inst = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(`out/${name}.wasm`)), { env: { memory } });
inst.exports.bench(256, 1, 65536, 65536*3, 65536*6);
