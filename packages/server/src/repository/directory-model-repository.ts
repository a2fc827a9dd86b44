/**
 * The model repository of a master started with `--model-repo DIR`: the versions on disk
 * (`<dir>/<model>/<version>/model.json`) and those the coordinator holds. Loading a version
 * reads it from disk and rolls it out; a failure is remembered with its reason for the index.
 *
 * @module
 */
import { type Deployment, DinferError, DinferErrorCode, isDinferError, type ServedModel } from '@dinfer/core';
import type { PreprocessConfig } from '../preprocess/config.js';
import { HeldVersions, type Rollout } from './held-versions.js';
import { key, REASON_NOT_LOADED, type RepositoryIndexEntry, sortEntries, splitKey } from './index-entry.js';
import { loadRepositoryVersion, type VersionPlanning } from './load-version.js';
import type {
  LoadOptions,
  LoadOutcome,
  ModelRepository,
  ModelRepositoryOptions,
  UnloadOutcome,
} from './model-repository.js';
import { noVersionError, unknownModelError, unknownVersionError } from './repository-errors.js';
import { type RepositoryModel, type RepositoryScan, type RepositoryVersion, scanRepository } from './scan.js';
import type { VersionConfig } from './version-config.js';

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Options of {@link DirectoryModelRepository}: the repository's, with its directory. */
export type DirectoryModelRepositoryOptions = ModelRepositoryOptions & { readonly dir: string };

/** The directory form of {@link ModelRepository}; see the module documentation. */
export class DirectoryModelRepository implements ModelRepository {
  readonly dir: string;
  readonly #held: HeldVersions;
  readonly #planning: VersionPlanning;
  /** Why a version failed to load, for versions the coordinator no longer holds. */
  readonly #failures = new Map<string, string>();
  readonly #attempts = new Map<string, string>();
  readonly #configs = new Map<string, VersionConfig>();

  constructor(options: DirectoryModelRepositoryOptions) {
    this.dir = options.dir;
    this.#held = new HeldVersions(options);
    this.#planning = options.planning ?? {};
  }

  scan(): Promise<RepositoryScan> {
    return scanRepository(this.dir);
  }

  async loadAll(): Promise<Deployment[]> {
    const scan = await this.scan();
    for (const warning of scan.warnings) this.#held.log.warn({ repository: scan.dir }, warning);
    const deployments: Deployment[] = [];
    const problems: string[] = [];
    for (const model of scan.models) {
      const deployment = await this.#held.serialize(model.name, () => this.#loadNewestReadable(model));
      if (deployment) deployments.push(deployment);
      else problems.push(`"${model.name}": no loadable version`);
    }
    if (deployments.length === 0) {
      const why = [...problems, ...scan.warnings];
      throw new DinferError(
        DinferErrorCode.MODEL_NOT_FOUND,
        `model repository ${scan.dir} has no loadable model (expected <repo>/<model>/<version>/model.json)` +
          (why.length > 0 ? `: ${why.join('; ')}` : ''),
        { details: { path: scan.dir } },
      );
    }
    return deployments;
  }

  /** Tries the model's available versions newest first; the first that deploys wins. */
  async #loadNewestReadable(model: RepositoryModel): Promise<Deployment | undefined> {
    const candidates = model.versions.filter((v) => v.available).reverse();
    for (const version of candidates) {
      try {
        return await this.#deploy(version, {});
      } catch (error) {
        this.#held.log.error(
          { model: model.name, version: version.version, err: message(error) },
          'version not loaded',
        );
      }
    }
    return undefined;
  }

  async index(options: { readonly ready?: boolean | undefined } = {}): Promise<RepositoryIndexEntry[]> {
    const entries = new Map<string, RepositoryIndexEntry>();
    try {
      const scan = await scanRepository(this.dir);
      for (const model of scan.models) {
        for (const v of model.versions) {
          const reason = v.available ? REASON_NOT_LOADED : (v.reason ?? 'unavailable');
          entries.set(key(v.model, v.version), {
            name: v.model,
            version: v.version,
            state: 'UNAVAILABLE',
            reason,
          });
        }
      }
    } catch (error) {
      this.#held.log.warn({ repository: this.dir, err: message(error) }, 'cannot scan the model repository');
    }
    for (const [k, reason] of this.#failures) {
      const [name, version] = splitKey(k);
      entries.set(k, { name, version, state: 'UNAVAILABLE', reason: `load failed: ${reason}` });
    }
    for (const entry of this.#held.entries()) entries.set(key(entry.name, entry.version), entry);
    const list = sortEntries(entries.values());
    return options.ready ? list.filter((e) => e.state === 'READY') : list;
  }

  load(name: string, options: LoadOptions = {}): Promise<LoadOutcome> {
    return this.#held.serialize(name, () => this.#load(name, options));
  }

  async #load(name: string, options: LoadOptions): Promise<LoadOutcome> {
    const held = this.#held.of(name);
    const previous = this.#held.active(name);
    const scanned = await scanRepository(this.dir);
    const model = scanned.models.find((m) => m.name === name);
    if (!model && held.length === 0) {
      const known = [...scanned.models.map((m) => m.name), ...this.#held.of().map((v) => v.model)];
      throw unknownModelError(name, known, this.dir);
    }
    const version = options.version ?? (model ? model.latest : previous);
    if (version === undefined) {
      throw noVersionError(
        name,
        (model?.versions ?? []).map((v) => `${v.version}: ${v.reason ?? 'unavailable'}`),
      );
    }
    const rollout = this.#held.rollout(options);
    const settled = await this.#held.settle(name, version, rollout);
    if (settled !== undefined) {
      if (settled.action === 'activated') await this.#trimStandby(name);
      return settled;
    }
    const entry = model?.versions.find((v) => v.version === version);
    if (!entry) {
      const known = [...(model?.versions ?? []).map((v) => v.version), ...held.map((v) => v.version)];
      throw unknownVersionError(name, version, known, this.dir);
    }
    await this.#deploy(entry, rollout);
    this.#held.log.info({ model: name, version, previous }, 'version deployed from the repository');
    await this.#trimStandby(name);
    return { name, version, previous, action: 'deployed' };
  }

  /** Reads a version from disk and deploys it; failures become ROLLOUT_FAILED and are remembered. */
  async #deploy(entry: RepositoryVersion, rollout: Rollout): Promise<Deployment> {
    const k = key(entry.model, entry.version);
    const label = `${entry.model}@${entry.version}`;
    this.#attempts.set(k, entry.fingerprint);
    try {
      const spec = await loadRepositoryVersion(entry, this.#planning);
      const deployment = await this.#held.coordinator.deploy(spec, rollout);
      this.#failures.delete(k);
      this.#configs.set(k, entry.config);
      return deployment;
    } catch (error) {
      const reason = message(error);
      this.#failures.set(k, reason);
      await this.#dropFailed(entry.model, entry.version);
      if (isDinferError(error, DinferErrorCode.ROLLOUT_FAILED) && reason.startsWith(label)) throw error;
      throw new DinferError(
        DinferErrorCode.ROLLOUT_FAILED,
        reason.startsWith(label) ? reason : `${label}: ${reason}`,
        {
          details: { model: entry.model, version: entry.version, path: entry.dir },
          cause: error,
        },
      );
    }
  }

  /** Frees a failed version's deployment (its reason stays in the index). */
  async #dropFailed(name: string, version: string): Promise<void> {
    const held = this.#held.of(name);
    if (!held.some((v) => v.version === version && v.state === 'failed')) return;
    try {
      if (held.every((v) => v.state === 'failed')) await this.#held.coordinator.unload(name);
      else await this.#held.coordinator.unload(name, version);
    } catch (error) {
      this.#held.log.warn({ model: name, version, err: message(error) }, 'cannot drop a failed version');
    }
  }

  #trimStandby(name: string): Promise<void> {
    return this.#held.trimStandby(name, (version) => this.#configs.delete(key(name, version)));
  }

  unload(name: string, options: { readonly version?: string | undefined } = {}): Promise<UnloadOutcome> {
    return this.#held.serialize(name, async () => {
      const { version } = options;
      await this.#held.coordinator.unload(name, version);
      for (const k of [...this.#configs.keys(), ...this.#failures.keys()]) {
        const [n, v] = splitKey(k);
        if (n === name && (version === undefined || v === version)) {
          this.#configs.delete(k);
          this.#failures.delete(k);
        }
      }
      return version === undefined ? { name } : { name, version };
    });
  }

  heldVersions(name: string): string[] {
    return this.#held.usable(name);
  }

  lastAttempt(name: string, version: string): string | undefined {
    return this.#attempts.get(key(name, version));
  }

  preprocessFor(model: ServedModel): PreprocessConfig | undefined {
    return this.#configs.get(key(model.name, model.version))?.preprocess;
  }

  configOf(name: string, version: string): VersionConfig | undefined {
    return this.#configs.get(key(name, version));
  }
}
