import { readFileSync } from 'node:fs';
const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true });
const ex = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(`out/${process.argv[2]}.wasm`)), { env: { memory } }).exports;
ex.gemv(65536, 64, 65536*4, 65536*5, 0, 8);
