/**
 * Devices by name. A backend is created on first use and lives for the
 * process ('cpu' owns worker threads; they are unref'd and never keep the
 * process alive).
 *
 * Kernel dispatch policy (`kernelFor`): a backend's own kernel when it
 * supports the kernel for that dtype; otherwise, for host backends (whose
 * buffers are plain typed arrays) the reference kernel on the same buffers,
 * with no copy; otherwise an error naming the kernel, dtype and backend.
 */

import type { Backend, Buffer, KernelName, Kernels } from './backend.js';
import { SparselmError } from '../tensor/errors.js';
import type { DType } from '../tensor/dtype.js';
import { createRefBackend } from './ref/index.js';
import { createCpuBackend, type CpuBackendOptions } from './cpu/index.js';

export type DeviceName = 'ref' | 'cpu';
export const DEVICE_NAMES: readonly DeviceName[] = ['ref', 'cpu'];

const backends = new Map<string, Backend>();
let cpuOptions: CpuBackendOptions = {};

/**
 * Sets the cpu backend's thread count (and whether it may use BLAS) before
 * its first use; the CLI's --threads. Changing it after the backend started
 * is an error, since tensors already made belong to that instance.
 */
export function configureCpu(opts: CpuBackendOptions): void {
  if (backends.has('cpu')) throw new SparselmError('device: the cpu backend is already in use; configure it before creating tensors');
  cpuOptions = { ...opts };
}

export function getBackend(device: DeviceName | string): Backend {
  let b = backends.get(device);
  if (b) return b;
  switch (device) {
    case 'ref': b = createRefBackend(); break;
    case 'cpu': b = createCpuBackend(cpuOptions); break;
    default: throw new SparselmError(`device: unknown device '${device}' (known: ${DEVICE_NAMES.join(', ')})`);
  }
  backends.set(device, b);
  return b;
}

/** Registers a backend under its name (how later backends such as webgpu plug in). */
export function registerBackend(backend: Backend): void {
  backends.set(backend.name, backend);
}

export function kernelFor<K extends KernelName>(backend: Backend, kernel: K, dtype: DType): Kernels<Buffer>[K] {
  const own = backend.kernels[kernel];
  if (own && backend.supports(kernel, dtype)) return own.bind(backend.kernels) as Kernels<Buffer>[K];
  if (backend.host) {
    const ref = getBackend('ref').kernels as Kernels<Buffer>;
    return ref[kernel].bind(ref) as Kernels<Buffer>[K];
  }
  throw new SparselmError(`${kernel}: backend '${backend.name}' has no kernel for dtype ${dtype}`);
}
