/**
 * Runnable dinfer examples: generated models, demos and benchmarks.
 *
 * @packageDocumentation
 */
export * from './models/big-dense.js';
export * from './models/cache.js';
export * from './models/conv2d-filter-grad.js';
export * from './models/mnist-cnn.js';
export * from './models/mnist-data.js';
export * from './models/mobilenet-v2.js';
export * from './models/options.js';
export * from './models/resnet50.js';
export * from './models/rng.js';
export * from './models/seeded-weights.js';
