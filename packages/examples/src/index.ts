/**
 * Runnable dinfer examples: generated models, demos and benchmarks.
 *
 * @packageDocumentation
 */

// The reference models (ResNet50, MobileNetV2, the MNIST CNN and its digits) and the seeded
// generator live in @dinfer/core/models; re-exported as before.
export * from '@dinfer/core/models';
export * from './models/big-dense.js';
export * from './models/conv2d-filter-grad.js';
