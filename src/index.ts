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

// Models, data, training and generation.
export { makeConfig, DEFAULT_CONFIG, type ModelConfig } from './models/config.js';
export { initParameters, parameterSpecs, countParameters } from './models/params.js';
export { forward, lossOf, emptyCache, checkParameters, type ForwardOptions, type ModelCache } from './models/transformer.js';
export { loadPreset, presetNames, presetConfig } from './models/presets.js';
export { generate } from './models/generate.js';
export { Sampler, type SamplerOptions } from './decode/sampler.js';
export { readDocuments, samplePath, type Document } from './data/documents.js';
export { loadTokenizer, trainBpe, type Tokenizer } from './data/tokenizer.js';
export { createLoader, validationBatches } from './data/packing.js';
export { train, type TrainSettings } from './train/trainer.js';
export { evaluate, type EvalResult } from './train/evaluate.js';
export { AdamW } from './train/optim.js';
export { Adafactor } from './train/adafactor.js';
export { saveCheckpoint, loadCheckpoint } from './io/checkpoint.js';
export { readSafetensors, writeSafetensors } from './io/safetensors.js';
