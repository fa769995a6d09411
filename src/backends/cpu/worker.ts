// Worker thread of the CPU kernel library: instantiates the kernels module on the
// shared memory and serves jobs from the control block until told to exit
// (protocol in exec.ts). Not an entry point for users; started by kernels.ts.
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { wasm, type WasmMemory, type WasmModule } from './wasm-api.js';
import { loadBlas, type Blas } from './blas.js';
import { DONE, ERR, OP_BITS, Op, PF_PIECE, PrefetchCursor, SEQ, TAG_BITS, isChunked, runChunks, runShare, type KernelExports } from './exec.js';

interface WorkerInit {
  module: WasmModule;
  memory: WasmMemory;
  ctl: number;      // byte pointer of the control block
  index: number;    // thread index, 1..threads-1
  workers: number;  // threads - 1
  scratch: number;  // byte offset of this thread's GEMM scratch in memory 0
  port: MessagePort; // later memories arrive here (exec.ts)
  spinMs: number;   // how long to poll SEQ before sleeping in Atomics.wait
}

interface MemoryMessage { memory: WasmMemory; scratch: number }

const init = workerData as WorkerInit;
// One instance of the kernels module per memory, and this thread's GEMM scratch in each.
const exs: KernelExports[] = [];
const scratch: number[] = [];
const addMemory = (memory: WasmMemory, s: number): void => {
  exs.push(new wasm.Instance(init.module, { env: { memory } }).exports as unknown as KernelExports);
  scratch.push(s);
};
addMemory(init.memory, init.scratch);
const i32 = new Int32Array(init.memory.buffer, init.ctl, 1024);
const f64 = new Float64Array(init.memory.buffer, init.ctl, 512);
const tagMask = (1 << TAG_BITS) - 1;
// Loaded on the first OpenBLAS job (the main thread posts those only when it has OpenBLAS).
const blas = (): Blas => {
  const b = loadBlas();
  if (b === null) throw new Error('OpenBLAS job, but this worker cannot load OpenBLAS');
  return b;
};

const prefetch = new PrefetchCursor(exs, i32, f64);

let seen = 0; // SEQ starts at 0; every posted job has a non-zero SEQ
for (;;) {
  // Posted prefetches (also one whose job was overtaken by a later one: SEQ holds only
  // the newest) are claimed here, the older first, and read piece by piece while no new
  // job is posted.
  let s = Atomics.load(i32, SEQ);
  while (s === seen && (prefetch.active || prefetch.claim())) {
    try {
      prefetch.step(PF_PIECE);
    } catch (e) {
      console.error('sparselm cpu worker (prefetch):', e);
    }
    s = Atomics.load(i32, SEQ);
  }
  // Poll for a while first: the decoder issues ~100 calls per token, and a wake from
  // Atomics.wait costs 50-200 us on this VM (measured, docs/cpu-backend.md).
  if (s === seen) {
    const t0 = performance.now();
    for (let k = 1; s === seen; k++) {
      s = Atomics.load(i32, SEQ);
      if ((k & 1023) === 0 && performance.now() - t0 > init.spinMs) break;
    }
  }
  while (s === seen) {
    Atomics.wait(i32, SEQ, seen);
    s = Atomics.load(i32, SEQ);
  }
  seen = s;
  const op = s & ((1 << OP_BITS) - 1);
  if (op === Op.Exit) break;
  if (op === Op.Prefetch) continue; // claimed at the top of the loop
  if (isChunked(op)) {
    runChunks(exs, op, (s >>> OP_BITS) & tagMask, i32, f64, init.index, blas);
    continue;
  }
  try {
    if (op === Op.AddMemory) {
      // Posted before the job (exec.ts), so it is already queued.
      const msg = receiveMessageOnPort(init.port)?.message as MemoryMessage | undefined;
      if (msg === undefined) throw new Error('AddMemory without a memory message');
      addMemory(msg.memory, msg.scratch);
    } else {
      runShare(exs, op, i32, f64, init.index, scratch);
    }
  } catch (e) {
    Atomics.store(i32, ERR, 1);
    console.error('sparselm cpu worker:', e);
  }
  if (Atomics.add(i32, DONE, 1) + 1 === init.workers) Atomics.notify(i32, DONE);
}
