/**
 * The master's model repository: which versions of which models exist on disk, which the
 * coordinator serves, and loading, activating and unloading them. It backs the
 * `/v2/repository/*` routes, `dinfer master --model-repo` and its polling.
 *
 * Loading a version is a hot swap: the coordinator ships and warms it up while the current
 * version keeps serving, then switches new requests to it. Loading a version the coordinator
 * still holds in standby re-activates it without reading the disk again (a rollback). Any
 * failure (unreadable files, corrupt or NaN weights, workers that cannot load it) rejects with
 * `DINFER_ERR_ROLLOUT_FAILED`, leaves the current version serving, and shows in the index as
 * `UNAVAILABLE` with the reason. Operations on one model run one at a time.
 *
 * Without a repository directory (the `--model` form) the same object lists the coordinator's
 * versions and can re-activate or unload them.
 *
 * @module
 */
import type { Coordinator, Deployment, Logger, ServedModel } from '@dinfer/core';
import type { PreprocessConfig } from '../preprocess/config.js';
import { DirectoryModelRepository } from './directory-model-repository.js';
import type { RepositoryIndexEntry } from './index-entry.js';
import type { VersionPlanning } from './load-version.js';
import type { RepositoryScan } from './scan.js';
import { SingleModelRepository } from './single-model-repository.js';
import type { VersionConfig } from './version-config.js';

export {
  REASON_NOT_LOADED,
  REASON_STANDBY,
  type RepositoryIndexEntry,
  type RepositoryModelState,
} from './index-entry.js';

/** What {@link ModelRepository.load} did. */
export interface LoadOutcome {
  readonly name: string;
  /** The version now active. */
  readonly version: string;
  /** The version that was active before, if any. */
  readonly previous?: string | undefined;
  /**
   * `deployed`: read from the repository and rolled out; `activated`: a standby version made
   * active again (rollback, nothing re-read); `unchanged`: it already was the active version.
   */
  readonly action: 'deployed' | 'activated' | 'unchanged';
}

/** What {@link ModelRepository.unload} did. */
export interface UnloadOutcome {
  readonly name: string;
  /** The version unloaded; absent when the whole model was. */
  readonly version?: string | undefined;
}

/** Options of {@link ModelRepository.load}. */
export interface LoadOptions {
  /** The version to load. Default: the newest available one in the repository. */
  readonly version?: string | undefined;
  /** Give up on a rollout not done in time. Default: the repository's `rolloutTimeoutMs`. */
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** Options of {@link createModelRepository}. */
export interface ModelRepositoryOptions {
  readonly coordinator: Coordinator;
  /** The repository directory; absent for a master started with a single `--model`. */
  readonly dir?: string | undefined;
  /** How versions without `cuts` in their config are planned. */
  readonly planning?: VersionPlanning | undefined;
  /** Standby versions kept per model for rollback; older ones are unloaded. Default 1. */
  readonly keepStandbyVersions?: number | undefined;
  /** Default deadline of one rollout in ms. Default 300 000. */
  readonly rolloutTimeoutMs?: number | undefined;
  readonly logger?: Logger | undefined;
}

/** The master's model repository; see the module documentation. */
export interface ModelRepository {
  /** The repository directory, absolute; `undefined` in the single-model form. */
  readonly dir: string | undefined;
  /** Scans the directory (see {@link scanRepository}). @throws DinferError without a directory. */
  scan(): Promise<RepositoryScan>;
  /**
   * Deploys the newest available version of every model in the repository (at startup: the
   * coordinator makes the first version of each model active at once). A model whose newest
   * version cannot be read falls back to the next older one.
   *
   * @throws DinferError MODEL_NOT_FOUND when no model at all could be loaded.
   */
  loadAll(): Promise<Deployment[]>;
  /** Every version known in the repository or the coordinator, by name then version. */
  index(options?: { readonly ready?: boolean | undefined }): Promise<RepositoryIndexEntry[]>;
  /**
   * Loads a version and makes it active (hot swap), or re-activates a standby one (rollback).
   *
   * @throws DinferError UNKNOWN_MODEL for a model or version neither the repository nor the
   *   coordinator has; ROLLOUT_FAILED when it could not be brought into service (the previous
   *   version keeps serving); NOT_READY while the version is already being rolled out.
   */
  load(name: string, options?: LoadOptions): Promise<LoadOutcome>;
  /**
   * Unloads one version (not the active one while others exist), or the whole model.
   *
   * @throws DinferError UNKNOWN_MODEL when the coordinator does not hold it; INVALID_ARGUMENT
   *   for the active version of a model with other versions.
   */
  unload(name: string, options?: { readonly version?: string | undefined }): Promise<UnloadOutcome>;
  /** Versions of `name` the coordinator holds (loading, active or standby). */
  heldVersions(name: string): string[];
  /** The fingerprint (see {@link RepositoryVersion}) of the files last tried for a version. */
  lastAttempt(name: string, version: string): string | undefined;
  /** The image preprocessing of a served model's active version, from its `config.json`. */
  preprocessFor(model: ServedModel): PreprocessConfig | undefined;
  /** The `config.json` settings a loaded version was deployed with. */
  configOf(name: string, version: string): VersionConfig | undefined;
}

/**
 * Creates the master's {@link ModelRepository}: backed by `dir` when given, else over the
 * coordinator's versions only.
 *
 * @throws DinferError INVALID_ARGUMENT for a `keepStandbyVersions` that is not a count.
 */
export function createModelRepository(options: ModelRepositoryOptions): ModelRepository {
  return options.dir === undefined
    ? new SingleModelRepository(options)
    : new DirectoryModelRepository({ ...options, dir: options.dir });
}
