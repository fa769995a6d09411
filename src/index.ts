/**
 * sparselm's library API: tensors, ops, autograd, nn functions and devices.
 */

export { Tensor } from './tensor/tensor.js';
export type { DType, DataArray } from './tensor/dtype.js';
export { SparselmError } from './tensor/errors.js';
export { Rng } from './tensor/random.js';
export type { Shape, Layout } from './tensor/shape.js';
export * from './tensor/create.js';
export * from './ops/index.js';
export { backward, gradients } from './autograd/backward.js';
export { noGrad, isGradEnabled } from './autograd/node.js';
export * as nn from './nn/functional.js';
export { getBackend, registerBackend, DEVICE_NAMES, type DeviceName } from './backends/registry.js';
export type { Backend, Kernels, KernelName, Buffer, View } from './backends/backend.js';
