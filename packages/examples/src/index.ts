/**
 * Runnable dinfer examples: generated models, demos and benchmarks.
 *
 * @packageDocumentation
 */

// The seeded generator and ResNet50 live in @dinfer/core/models; re-exported as before.
export {
  DEFAULT_MODEL_SEED,
  deriveSeed,
  type ExampleModelOptions,
  fillSeededWeights,
  type ResolvedModelOptions,
  resnet50,
  resolveModelOptions,
  type SeededRandom,
  type SeededWeightsOptions,
  seededRandom,
} from '@dinfer/core/models';
export * from './models/big-dense.js';
export * from './models/cache.js';
export * from './models/conv2d-filter-grad.js';
export * from './models/mnist-cnn.js';
export * from './models/mnist-data.js';
export * from './models/mobilenet-v2.js';
