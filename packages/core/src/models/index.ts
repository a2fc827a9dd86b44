/**
 * Reference models for demos, smoke tests and benchmarks: seeded, reproducible image
 * classifiers with the architectures of the real ones (ResNet50, MobileNetV2; `dinfer up`
 * serves the ResNet50 by default), whose weights are synthetic (the same seed gives
 * bit-identical weights on every platform), and a small CNN trained on MNIST, shipped with
 * its weights, with the digits to test it on (from the `mnist` package, an optional peer).
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
export { type MnistCnnOptions, mnistCnn, mnistCnnAssetPath } from './mnist-cnn.js';
export {
  accuracy,
  MNIST_SIZE,
  MNIST_TEST_PER_DIGIT,
  type MnistSet,
  mnistTestSet,
  mnistTrainCapacity,
  mnistTrainSet,
} from './mnist-data.js';
export { mobilenetV2 } from './mobilenet-v2.js';
export {
  DEFAULT_MODEL_SEED,
  type ExampleModelOptions,
  type ResolvedModelOptions,
  resolveModelOptions,
} from './options.js';
export {
  EXAMPLE_MODEL_NAMES,
  type ExampleModel,
  type ExampleModelName,
  exampleModelCacheDir,
  type LoadExampleModelOptions,
  loadExampleModel,
} from './reference-models.js';
export { RESNET50_MODEL, resnet50 } from './resnet50.js';
export { deriveSeed, type SeededRandom, seededRandom } from './seeded-random.js';
export { fillSeededWeights, type SeededWeightsOptions } from './seeded-weights.js';
