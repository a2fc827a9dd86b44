/**
 * The reference models by name: the generated ones cached on disk (see `loadGeneratedModel`),
 * and the trained MNIST CNN shipped with this package (`assets/mnist-cnn/`).
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import { loadLayersModel } from '../model/io.js';
import {
  type CachedModel,
  type GeneratedModel,
  type GeneratedModelCacheOptions,
  generatedModelCacheDir,
  loadGeneratedModel,
} from './generated-model-cache.js';
import { mnistCnnAssetPath } from './mnist-cnn.js';
import { mobilenetV2 } from './mobilenet-v2.js';
import { DEFAULT_MODEL_SEED } from './options.js';
import { RESNET50_MODEL } from './resnet50.js';

/** The example models {@link loadExampleModel} knows. */
export const EXAMPLE_MODEL_NAMES = ['resnet50', 'mobilenetv2', 'mnist-cnn'] as const;

/** Name of an example model. */
export type ExampleModelName = (typeof EXAMPLE_MODEL_NAMES)[number];

/**
 * Options for {@link loadExampleModel}: `cacheDir` holds `<name>/model.json` (default:
 * `$DINFER_CACHE_DIR/models` when that variable is set, else `<repository root>/.cache/models`).
 */
export type LoadExampleModelOptions = GeneratedModelCacheOptions;

/** A loaded example model and where its artifacts are. */
export type ExampleModel = CachedModel;

const generated: Record<Exclude<ExampleModelName, 'mnist-cnn'>, GeneratedModel> = {
  resnet50: RESNET50_MODEL,
  mobilenetv2: {
    name: 'mobilenetv2',
    generator: 1,
    seed: DEFAULT_MODEL_SEED,
    generate: () => mobilenetV2({ seed: DEFAULT_MODEL_SEED }),
  },
};

/** The directory that holds `<name>/model.json` for each cached example model. */
export function exampleModelCacheDir(options: LoadExampleModelOptions = {}): string {
  return generatedModelCacheDir(options);
}

/**
 * Loads an example model by name. `resnet50` and `mobilenetv2` (224x224x3, 1000 classes,
 * seed 1) are generated on first use into `<cacheDir>/<name>/` as standard TF.js artifacts
 * (a few seconds) and loaded from there afterwards; a missing, corrupt or outdated entry is
 * regenerated. `mnist-cnn` is the trained model shipped in `assets/mnist-cnn/`, loaded in
 * place. Initialise the TF.js backend first (`initBackend()` from `@dinfer/core`).
 *
 * @throws DinferError `DINFER_ERR_INVALID_ARGUMENT` for an unknown name, `DINFER_ERR_MODEL_IO`
 *   when the cache cannot be written, or the errors of `loadLayersModel` for the shipped model.
 */
export async function loadExampleModel(
  name: ExampleModelName,
  options: LoadExampleModelOptions = {},
): Promise<ExampleModel> {
  if (!(EXAMPLE_MODEL_NAMES as readonly string[]).includes(name)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `unknown example model "${name}": expected one of ${EXAMPLE_MODEL_NAMES.join(', ')}`,
      { details: { name } },
    );
  }
  if (name === 'mnist-cnn') {
    const modelJsonPath = mnistCnnAssetPath();
    return { model: await loadLayersModel(modelJsonPath), modelJsonPath };
  }
  return loadGeneratedModel(generated[name], options);
}
