/**
 * An on-disk cache of the example models: generated once, loaded from disk afterwards.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DinferError, DinferErrorCode, isDinferError, loadLayersModel, saveLayersModel } from '@dinfer/core';
import { DEFAULT_MODEL_SEED, resnet50 } from '@dinfer/core/models';
import type * as tf from '@tensorflow/tfjs';
import { mnistCnnAssetPath } from './mnist-cnn.js';
import { mobilenetV2 } from './mobilenet-v2.js';

/** The example models {@link loadExampleModel} knows. */
export const EXAMPLE_MODEL_NAMES = ['resnet50', 'mobilenetv2', 'mnist-cnn'] as const;

/** Name of an example model. */
export type ExampleModelName = (typeof EXAMPLE_MODEL_NAMES)[number];

/** Options for {@link loadExampleModel}. */
export interface LoadExampleModelOptions {
  /**
   * Directory holding `<name>/model.json`. Default: `$DINFER_CACHE_DIR/models` when that
   * variable is set, else `<repository root>/.cache/models`.
   */
  readonly cacheDir?: string;
}

/** A loaded example model and where its artifacts are. */
export interface ExampleModel {
  readonly model: tf.LayersModel;
  /** Absolute path of the model's `model.json` (standard TF.js artifacts). */
  readonly modelJsonPath: string;
}

/**
 * Version of the generators' output. Bump it when a generator's architecture or weights
 * change, so stale cache entries are regenerated rather than silently reused.
 */
const GENERATOR_VERSION = 1;

interface CacheStamp {
  readonly name: string;
  readonly generator: number;
  readonly seed: number;
}

const generators: Record<Exclude<ExampleModelName, 'mnist-cnn'>, () => tf.LayersModel> = {
  resnet50: () => resnet50({ seed: DEFAULT_MODEL_SEED }),
  mobilenetv2: () => mobilenetV2({ seed: DEFAULT_MODEL_SEED }),
};

/** The repository root (the nearest folder above this file with `pnpm-workspace.yaml`), if any. */
function repositoryRoot(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'pnpm-workspace.yaml'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** The directory that holds `<name>/model.json` for each cached example model. */
export function exampleModelCacheDir(options: LoadExampleModelOptions = {}): string {
  if (options.cacheDir !== undefined) return path.resolve(options.cacheDir);
  const env = process.env.DINFER_CACHE_DIR;
  if (env) return path.resolve(env, 'models');
  return path.join(repositoryRoot() ?? process.cwd(), '.cache', 'models');
}

function stampOf(model: tf.LayersModel): CacheStamp | undefined {
  const meta = model.getUserDefinedMetadata() as { dinferExample?: CacheStamp } | undefined;
  return meta?.dinferExample;
}

function isCurrent(stamp: CacheStamp | undefined, name: string): boolean {
  return stamp?.name === name && stamp.generator === GENERATOR_VERSION && stamp.seed === DEFAULT_MODEL_SEED;
}

/** Loads a cached model, or returns undefined when it is missing, unreadable or stale. */
async function loadCached(name: string, modelJsonPath: string): Promise<tf.LayersModel | undefined> {
  if (!existsSync(modelJsonPath)) return undefined;
  try {
    const model = await loadLayersModel(modelJsonPath);
    if (isCurrent(stampOf(model), name)) return model;
    model.dispose();
    return undefined;
  } catch (error) {
    const broken =
      isDinferError(error, DinferErrorCode.MODEL_CORRUPT) ||
      isDinferError(error, DinferErrorCode.MODEL_NOT_FOUND);
    if (broken) return undefined;
    throw error;
  }
}

/**
 * Generates a model and writes it to `dir` atomically: into a private temporary directory
 * first, then renamed into place, so concurrent processes never see half-written artifacts.
 */
async function generate(name: Exclude<ExampleModelName, 'mnist-cnn'>, dir: string): Promise<tf.LayersModel> {
  const model = generators[name]();
  const stamp: CacheStamp = { name, generator: GENERATOR_VERSION, seed: DEFAULT_MODEL_SEED };
  model.setUserDefinedMetadata({ dinferExample: stamp });
  const temporary = `${dir}.tmp-${process.pid}-${Date.now()}`;
  try {
    await saveLayersModel(model, temporary);
    await rm(dir, { recursive: true, force: true });
    await rename(temporary, dir);
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    // Another process may have put a complete copy in place first: that one is as good.
    if (existsSync(path.join(dir, 'model.json'))) return model;
    model.dispose();
    throw isDinferError(error)
      ? error
      : new DinferError(DinferErrorCode.MODEL_IO, `cannot write the ${name} example model to ${dir}`, {
          details: { path: dir },
          cause: error,
        });
  }
  return model;
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
  const dir = path.join(exampleModelCacheDir(options), name);
  const modelJsonPath = path.join(dir, 'model.json');
  const cached = await loadCached(name, modelJsonPath);
  if (cached) return { model: cached, modelJsonPath };
  return { model: await generate(name, dir), modelJsonPath };
}
