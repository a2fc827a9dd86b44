/**
 * The model repository of a master started with one `--model`: no directory, only the
 * versions the coordinator holds, which it lists, re-activates (rollback) and unloads.
 *
 * @module
 */
import { type Deployment, DinferError, DinferErrorCode } from '@dinfer/core';
import type { PreprocessConfig } from '../preprocess/config.js';
import { HeldVersions, type HeldVersionsOptions } from './held-versions.js';
import { type RepositoryIndexEntry, sortEntries } from './index-entry.js';
import type { LoadOptions, LoadOutcome, ModelRepository, UnloadOutcome } from './model-repository.js';
import { noVersionError, unknownModelError, unknownVersionError } from './repository-errors.js';
import type { RepositoryScan } from './scan.js';
import type { VersionConfig } from './version-config.js';

function notARepository(): DinferError {
  return new DinferError(
    DinferErrorCode.INVALID_ARGUMENT,
    'this master serves a single model (--model); start it with --model-repo to load from a repository',
  );
}

/** The single-model form of {@link ModelRepository}; see the module documentation. */
export class SingleModelRepository implements ModelRepository {
  readonly dir = undefined;
  readonly #held: HeldVersions;

  constructor(options: HeldVersionsOptions) {
    this.#held = new HeldVersions(options);
  }

  scan(): Promise<RepositoryScan> {
    return Promise.reject(notARepository());
  }

  loadAll(): Promise<Deployment[]> {
    return Promise.reject(notARepository());
  }

  async index(options: { readonly ready?: boolean | undefined } = {}): Promise<RepositoryIndexEntry[]> {
    const list = sortEntries(this.#held.entries());
    return options.ready ? list.filter((e) => e.state === 'READY') : list;
  }

  load(name: string, options: LoadOptions = {}): Promise<LoadOutcome> {
    return this.#held.serialize(name, async () => {
      const held = this.#held.of(name);
      if (held.length === 0)
        throw unknownModelError(
          name,
          this.#held.of().map((v) => v.model),
        );
      const version = options.version ?? this.#held.active(name);
      if (version === undefined) throw noVersionError(name);
      const outcome = await this.#held.settle(name, version, this.#held.rollout(options));
      if (outcome === undefined)
        throw unknownVersionError(
          name,
          version,
          held.map((v) => v.version),
        );
      if (outcome.action === 'activated') await this.#held.trimStandby(name);
      return outcome;
    });
  }

  unload(name: string, options: { readonly version?: string | undefined } = {}): Promise<UnloadOutcome> {
    return this.#held.serialize(name, async () => {
      const { version } = options;
      await this.#held.coordinator.unload(name, version);
      return version === undefined ? { name } : { name, version };
    });
  }

  heldVersions(name: string): string[] {
    return this.#held.usable(name);
  }

  lastAttempt(): string | undefined {
    return undefined;
  }

  preprocessFor(): PreprocessConfig | undefined {
    return undefined;
  }

  configOf(): VersionConfig | undefined {
    return undefined;
  }
}
