/**
 * Reference models: seeded, reproducible image classifiers with the architectures of the
 * real ones, for demos, smoke tests and benchmarks (`dinfer up` serves the ResNet50 by
 * default). Their weights are synthetic, not trained: the same seed gives bit-identical
 * weights on every platform.
 *
 * @packageDocumentation
 */

export {
  type CachedModel,
  type GeneratedModel,
  type GeneratedModelCacheOptions,
  generatedModelCacheDir,
  loadGeneratedModel,
} from './generated-model-cache.js';
export {
  DEFAULT_MODEL_SEED,
  type ExampleModelOptions,
  type ResolvedModelOptions,
  resolveModelOptions,
} from './options.js';
export { RESNET50_MODEL, resnet50 } from './resnet50.js';
export { deriveSeed, type SeededRandom, seededRandom } from './seeded-random.js';
export { fillSeededWeights, type SeededWeightsOptions } from './seeded-weights.js';
