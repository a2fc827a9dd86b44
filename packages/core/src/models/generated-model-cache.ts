/**
 * An on-disk cache of models made by code: generated once into `<cacheDir>/<name>/` as
 * standard TF.js artifacts, loaded from there afterwards. Each entry carries a stamp (name,
 * generator version, seed) in its user-defined metadata; a missing, corrupt or outdated entry
 * is regenerated.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import { loadLayersModel, saveLayersModel } from '../model/io.js';

/** A model made by code, and what identifies its output. */
export interface GeneratedModel {
  /** The entry's directory name in the cache, and the name in its stamp. */
  readonly name: string;
  /**
   * Version of the generator's output. Bump it when the architecture or weights change, so
   * stale cache entries are regenerated rather than silently reused.
   */
  readonly generator: number;
  /** Seed of the generated weights. */
  readonly seed: number;
  /** Builds the model (with its weights). */
  generate(): tf.LayersModel;
}

/** Options of {@link loadGeneratedModel}. */
export interface GeneratedModelCacheOptions {
  /**
   * Directory holding `<name>/model.json`. Default: `$DINFER_CACHE_DIR/models` when that
   * variable is set, else `<repository root>/.cache/models` (the nearest folder above this
   * package with `pnpm-workspace.yaml`), else `./.cache/models`.
   */
  readonly cacheDir?: string | undefined;
}

/** A loaded model and where its artifacts are. */
export interface CachedModel {
  readonly model: tf.LayersModel;
  /** Absolute path of the model's `model.json` (standard TF.js artifacts). */
  readonly modelJsonPath: string;
}

interface CacheStamp {
  readonly name: string;
  readonly generator: number;
  readonly seed: number;
}

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

/** The directory that holds `<name>/model.json` for each cached generated model. */
export function generatedModelCacheDir(options: GeneratedModelCacheOptions = {}): string {
  if (options.cacheDir !== undefined) return path.resolve(options.cacheDir);
  const env = process.env.DINFER_CACHE_DIR;
  if (env) return path.resolve(env, 'models');
  return path.join(repositoryRoot() ?? process.cwd(), '.cache', 'models');
}

function stampOf(model: tf.LayersModel): CacheStamp | undefined {
  const meta = model.getUserDefinedMetadata() as { dinferExample?: CacheStamp } | undefined;
  return meta?.dinferExample;
}

function isCurrent(stamp: CacheStamp | undefined, spec: GeneratedModel): boolean {
  return stamp?.name === spec.name && stamp.generator === spec.generator && stamp.seed === spec.seed;
}

/** Loads a cached model, or returns undefined when it is missing, unreadable or stale. */
async function loadCached(spec: GeneratedModel, modelJsonPath: string): Promise<tf.LayersModel | undefined> {
  if (!existsSync(modelJsonPath)) return undefined;
  try {
    const model = await loadLayersModel(modelJsonPath);
    if (isCurrent(stampOf(model), spec)) return model;
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
async function generate(spec: GeneratedModel, dir: string): Promise<tf.LayersModel> {
  const model = spec.generate();
  const stamp: CacheStamp = { name: spec.name, generator: spec.generator, seed: spec.seed };
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
      : new DinferError(DinferErrorCode.MODEL_IO, `cannot write the ${spec.name} example model to ${dir}`, {
          details: { path: dir },
          cause: error,
        });
  }
  return model;
}

/**
 * Loads `spec` from `<cacheDir>/<name>/`, generating it there first when the entry is missing,
 * corrupt or stale. Initialise the TF.js backend first (`initBackend()`).
 *
 * @throws DinferError `DINFER_ERR_MODEL_IO` when the cache cannot be written.
 */
export async function loadGeneratedModel(
  spec: GeneratedModel,
  options: GeneratedModelCacheOptions = {},
): Promise<CachedModel> {
  const dir = path.join(generatedModelCacheDir(options), spec.name);
  const modelJsonPath = path.join(dir, 'model.json');
  const cached = await loadCached(spec, modelJsonPath);
  if (cached) return { model: cached, modelJsonPath };
  return { model: await generate(spec, dir), modelJsonPath };
}
