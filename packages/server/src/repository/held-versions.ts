/**
 * What both forms of the model repository do with the versions the coordinator holds: list
 * them, settle a load of one it already holds (unchanged, re-activated, or still loading),
 * keep a bounded number of standby versions, unload, and run one operation per model at a
 * time.
 *
 * @module
 */
import {
  type Coordinator,
  DinferError,
  DinferErrorCode,
  type Logger,
  silentLogger,
  type VersionStatus,
} from '@dinfer/core';
import { indexEntryOf, type RepositoryIndexEntry } from './index-entry.js';
import type { LoadOptions, LoadOutcome, ModelRepositoryOptions } from './model-repository.js';
import { compareVersions } from './version-order.js';

/** Deadline and cancellation of one rollout. */
export interface Rollout {
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** What {@link HeldVersions} needs of the repository's options. */
export type HeldVersionsOptions = Pick<
  ModelRepositoryOptions,
  'coordinator' | 'keepStandbyVersions' | 'rolloutTimeoutMs' | 'logger'
>;

/** The coordinator's versions and the operations on them; see the module documentation. */
export class HeldVersions {
  readonly coordinator: Coordinator;
  readonly log: Logger;
  readonly #keepStandby: number;
  readonly #timeoutMs: number;
  /** The tail of each model's queue of operations. */
  readonly #queues = new Map<string, Promise<unknown>>();

  /** @throws DinferError INVALID_ARGUMENT for a `keepStandbyVersions` that is not a count. */
  constructor(options: HeldVersionsOptions) {
    this.coordinator = options.coordinator;
    this.log = options.logger ?? silentLogger;
    this.#keepStandby = options.keepStandbyVersions ?? 1;
    this.#timeoutMs = options.rolloutTimeoutMs ?? 300_000;
    if (!Number.isInteger(this.#keepStandby) || this.#keepStandby < 0) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        `keepStandbyVersions must be a non-negative integer, got ${options.keepStandbyVersions}`,
      );
    }
  }

  /** The versions of `name` the coordinator holds, in any state (every model's without a name). */
  of(name?: string): VersionStatus[] {
    return name === undefined ? this.coordinator.versions() : this.coordinator.versions(name);
  }

  /** The active version of `name`, if any. */
  active(name: string): string | undefined {
    return this.of(name).find((v) => v.state === 'active')?.version;
  }

  /** Versions of `name` that are loading, active or standby. */
  usable(name: string): string[] {
    return this.of(name)
      .filter((v) => v.state !== 'failed')
      .map((v) => v.version);
  }

  /** The index entries of every version the coordinator holds. */
  entries(): RepositoryIndexEntry[] {
    return this.of().map(indexEntryOf);
  }

  /** The deadline and signal of a load, the repository's default deadline filled in. */
  rollout(options: LoadOptions): Rollout {
    return { timeoutMs: options.timeoutMs ?? this.#timeoutMs, signal: options.signal };
  }

  /**
   * Settles a load of `version` when the coordinator holds it: `unchanged` when active,
   * `activated` (a rollback) when standby. Resolves `undefined` when it holds no such usable
   * version (it is to be deployed).
   *
   * @throws DinferError NOT_READY while that version is being rolled out.
   */
  async settle(name: string, version: string, rollout: Rollout): Promise<LoadOutcome | undefined> {
    const previous = this.active(name);
    const status = this.of(name).find((v) => v.version === version);
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
    if (status?.state !== 'standby') return undefined;
    await this.coordinator.activate(name, version, rollout);
    this.log.info({ model: name, version, previous }, 'version re-activated');
    return { name, version, previous, action: 'activated' };
  }

  /** Unloads the oldest standby versions beyond `keepStandbyVersions`; tells `onUnloaded` each. */
  async trimStandby(name: string, onUnloaded: (version: string) => void = () => {}): Promise<void> {
    const standby = this.of(name)
      .filter((v) => v.state === 'standby')
      .map((v) => v.version)
      .sort(compareVersions);
    for (const version of standby.slice(0, Math.max(0, standby.length - this.#keepStandby))) {
      await this.coordinator.unload(name, version);
      onUnloaded(version);
      this.log.info({ model: name, version }, 'standby version unloaded');
    }
  }

  /** Runs `task` after every earlier operation on model `name` has settled. */
  serialize<T>(name: string, task: () => Promise<T>): Promise<T> {
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
