/**
 * The {@link ModelRepository} implementation.
 *
 * @module
 */
import {
  type Coordinator,
  type Deployment,
  DinferError,
  DinferErrorCode,
  isDinferError,
  type Logger,
  type ServedModel,
  silentLogger,
} from '@dinfer/core';
import type { PreprocessConfig } from '../preprocess/config.js';
import { indexEntryOf, key, REASON_NOT_LOADED, type RepositoryIndexEntry, splitKey } from './index-entry.js';
import { loadRepositoryVersion, type VersionPlanning } from './load-version.js';
import type {
  LoadOptions,
  LoadOutcome,
  ModelRepository,
  ModelRepositoryOptions,
  UnloadOutcome,
} from './model-repository.js';
import { type RepositoryModel, type RepositoryScan, type RepositoryVersion, scanRepository } from './scan.js';
import type { VersionConfig } from './version-config.js';
import { compareVersions } from './version-order.js';

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** See {@link ModelRepository}. */
export class DirectoryModelRepository implements ModelRepository {
  readonly dir: string | undefined;
  readonly #coordinator: Coordinator;
  readonly #planning: VersionPlanning;
  readonly #keepStandby: number;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  /** The tail of each model's queue of operations. */
  readonly #queues = new Map<string, Promise<unknown>>();
  /** Why a version failed to load, for versions the coordinator no longer holds. */
  readonly #failures = new Map<string, string>();
  readonly #attempts = new Map<string, string>();
  readonly #configs = new Map<string, VersionConfig>();

  constructor(options: ModelRepositoryOptions) {
    this.dir = options.dir;
    this.#coordinator = options.coordinator;
    this.#planning = options.planning ?? {};
    this.#keepStandby = options.keepStandbyVersions ?? 1;
    this.#timeoutMs = options.rolloutTimeoutMs ?? 300_000;
    this.#log = options.logger ?? silentLogger;
    if (!Number.isInteger(this.#keepStandby) || this.#keepStandby < 0) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        `keepStandbyVersions must be a non-negative integer, got ${options.keepStandbyVersions}`,
      );
    }
  }

  async scan(): Promise<RepositoryScan> {
    if (this.dir === undefined) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        'this master serves a single model (--model); start it with --model-repo to load from a repository',
      );
    }
    return scanRepository(this.dir);
  }

  async loadAll(): Promise<Deployment[]> {
    const scan = await this.scan();
    for (const warning of scan.warnings) this.#log.warn({ repository: scan.dir }, warning);
    const deployments: Deployment[] = [];
    const problems: string[] = [];
    for (const model of scan.models) {
      const deployment = await this.#serialize(model.name, () => this.#loadNewestReadable(model));
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
        this.#log.error(
          { model: model.name, version: version.version, err: message(error) },
          'version not loaded',
        );
      }
    }
    return undefined;
  }

  async index(options: { readonly ready?: boolean | undefined } = {}): Promise<RepositoryIndexEntry[]> {
    const entries = new Map<string, RepositoryIndexEntry>();
    if (this.dir !== undefined) {
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
        this.#log.warn({ repository: this.dir, err: message(error) }, 'cannot scan the model repository');
      }
    }
    for (const [k, reason] of this.#failures) {
      const [name, version] = splitKey(k);
      entries.set(k, { name, version, state: 'UNAVAILABLE', reason: `load failed: ${reason}` });
    }
    for (const status of this.#coordinator.versions()) {
      entries.set(key(status.model, status.version), indexEntryOf(status));
    }
    const list = [...entries.values()].sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : compareVersions(a.version, b.version),
    );
    return options.ready ? list.filter((e) => e.state === 'READY') : list;
  }

  load(name: string, options: LoadOptions = {}): Promise<LoadOutcome> {
    return this.#serialize(name, () => this.#load(name, options));
  }

  async #load(name: string, options: LoadOptions): Promise<LoadOutcome> {
    const held = this.#coordinator.versions(name);
    const previous = held.find((v) => v.state === 'active')?.version;
    let model: RepositoryModel | undefined;
    let scanned: RepositoryScan | undefined;
    if (this.dir !== undefined) {
      scanned = await scanRepository(this.dir);
      model = scanned.models.find((m) => m.name === name);
    }
    if (!model && held.length === 0) throw this.#unknownModel(name, scanned);
    const version = options.version ?? (model ? model.latest : previous);
    if (version === undefined) {
      const reasons = (model?.versions ?? []).map((v) => `${v.version}: ${v.reason ?? 'unavailable'}`);
      throw new DinferError(
        DinferErrorCode.ROLLOUT_FAILED,
        `model "${name}" has no available version in the repository` +
          (reasons.length > 0 ? ` (${reasons.join('; ')})` : ''),
        { details: { model: name } },
      );
    }
    const status = held.find((v) => v.version === version);
    const rollout = { timeoutMs: options.timeoutMs ?? this.#timeoutMs, signal: options.signal };
    if (status?.state === 'active') return { name, version, previous, action: 'unchanged' };
    if (status?.state === 'loading') {
      throw new DinferError(
        DinferErrorCode.NOT_READY,
        `model "${name}" version "${version}" is already loading`,
        {
          details: { model: name, version, retryAfterMs: 1000 },
        },
      );
    }
    if (status?.state === 'standby') {
      await this.#coordinator.activate(name, version, rollout);
      this.#log.info({ model: name, version, previous }, 'version re-activated');
      await this.#trimStandby(name);
      return { name, version, previous, action: 'activated' };
    }
    const entry = model?.versions.find((v) => v.version === version);
    if (!entry) {
      const known = [
        ...new Set([...(model?.versions ?? []).map((v) => v.version), ...held.map((v) => v.version)]),
      ].sort(compareVersions);
      throw new DinferError(
        DinferErrorCode.UNKNOWN_MODEL,
        `model "${name}" has no version "${version}"` +
          (this.dir === undefined ? '' : ` in the repository ${this.dir}`) +
          `; known versions: ${known.join(', ') || 'none'}`,
        { details: { model: name, version, known } },
      );
    }
    await this.#deploy(entry, rollout);
    this.#log.info({ model: name, version, previous }, 'version deployed from the repository');
    await this.#trimStandby(name);
    return { name, version, previous, action: 'deployed' };
  }

  /** Reads a version from disk and deploys it; failures become ROLLOUT_FAILED and are remembered. */
  async #deploy(
    entry: RepositoryVersion,
    rollout: { timeoutMs?: number | undefined; signal?: AbortSignal | undefined },
  ): Promise<Deployment> {
    const k = key(entry.model, entry.version);
    const label = `${entry.model}@${entry.version}`;
    this.#attempts.set(k, entry.fingerprint);
    try {
      const spec = await loadRepositoryVersion(entry, this.#planning);
      const deployment = await this.#coordinator.deploy(spec, rollout);
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
    const held = this.#coordinator.versions(name);
    if (!held.some((v) => v.version === version && v.state === 'failed')) return;
    try {
      if (held.every((v) => v.state === 'failed')) await this.#coordinator.unload(name);
      else await this.#coordinator.unload(name, version);
    } catch (error) {
      this.#log.warn({ model: name, version, err: message(error) }, 'cannot drop a failed version');
    }
  }

  /** Unloads the oldest standby versions beyond `keepStandbyVersions`. */
  async #trimStandby(name: string): Promise<void> {
    const standby = this.#coordinator
      .versions(name)
      .filter((v) => v.state === 'standby')
      .map((v) => v.version)
      .sort(compareVersions);
    for (const version of standby.slice(0, Math.max(0, standby.length - this.#keepStandby))) {
      await this.#coordinator.unload(name, version);
      this.#configs.delete(key(name, version));
      this.#log.info({ model: name, version }, 'standby version unloaded');
    }
  }

  unload(name: string, options: { readonly version?: string | undefined } = {}): Promise<UnloadOutcome> {
    return this.#serialize(name, async () => {
      const { version } = options;
      await this.#coordinator.unload(name, version);
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
    return this.#coordinator
      .versions(name)
      .filter((v) => v.state !== 'failed')
      .map((v) => v.version);
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

  #unknownModel(name: string, scan: RepositoryScan | undefined): DinferError {
    const names = [
      ...new Set([
        ...(scan?.models ?? []).map((m) => m.name),
        ...this.#coordinator.versions().map((v) => v.model),
      ]),
    ].sort();
    return new DinferError(
      DinferErrorCode.UNKNOWN_MODEL,
      `unknown model "${name}"` +
        (this.dir === undefined ? '' : `: not in the repository ${this.dir} and not loaded`) +
        `; known models: ${names.map((n) => `"${n}"`).join(', ') || 'none'}`,
      { details: { model: name, known: names } },
    );
  }

  /** Runs `task` after every earlier operation on model `name` has settled. */
  #serialize<T>(name: string, task: () => Promise<T>): Promise<T> {
    const before = this.#queues.get(name) ?? Promise.resolve();
    const run = before.then(task, task);
    const tail = run.catch(() => {});
    this.#queues.set(name, tail);
    void tail.then(() => {
      if (this.#queues.get(name) === tail) this.#queues.delete(name);
    });
    return run;
  }
}
