/**
 * `dinfer master --model-repo DIR --poll-repo SECONDS`: watches the repository for new
 * versions and hot-swaps to them.
 *
 * Each pass scans the repository. A model's newest available version is loaded and made
 * active when it is newer than every version the coordinator holds of that model (so a manual
 * rollback is not undone), its files were not tried before in this exact state, and its files
 * did not change since the previous pass (so a version still being copied is not read half
 * written; writing it under a hidden `.name` and renaming it into place avoids the wait). A
 * failed version is tried again only once its files change. New models are loaded too;
 * versions removed from disk are left loaded (unload them through the API).
 *
 * @module
 */
import { DinferError, DinferErrorCode, type Logger, silentLogger } from '@dinfer/core';
import type { LoadOutcome, ModelRepository } from './model-repository.js';
import { compareVersions } from './version-order.js';

/** What one poll did for one model version. */
export type PollEvent =
  | { readonly type: 'loaded'; readonly outcome: LoadOutcome }
  | { readonly type: 'failed'; readonly name: string; readonly version: string; readonly error: string }
  | { readonly type: 'waiting'; readonly name: string; readonly version: string };

/** Options of {@link startRepositoryPoller}. */
export interface RepositoryPollerOptions {
  /** Time between the end of one pass and the start of the next, in ms. */
  readonly intervalMs: number;
  readonly logger?: Logger | undefined;
  /** Receives what each pass did (for the CLI's output). */
  readonly onEvent?: ((event: PollEvent) => void) | undefined;
}

/** A running poller. */
export interface RepositoryPoller {
  /** Runs one pass now (after the one in progress, if any) and resolves with what it did. */
  pollOnce(): Promise<PollEvent[]>;
  /** Stops polling; resolves once a pass in progress has finished. */
  stop(): Promise<void>;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Starts polling `repository` every `intervalMs` (the first pass after one interval).
 *
 * @throws DinferError INVALID_ARGUMENT for an interval that is not a positive number, or a
 *   repository without a directory.
 */
export function startRepositoryPoller(
  repository: ModelRepository,
  options: RepositoryPollerOptions,
): RepositoryPoller {
  const { intervalMs } = options;
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `the repository poll interval must be a positive number of ms, got ${intervalMs}`,
    );
  }
  if (repository.dir === undefined) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'polling needs a model repository directory');
  }
  const log = options.logger ?? silentLogger;
  /** Fingerprint of each candidate version seen in the previous pass. */
  const pending = new Map<string, string>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<PollEvent[]> = Promise.resolve([]);

  const emit = (event: PollEvent) => {
    try {
      options.onEvent?.(event);
    } catch (error) {
      log.warn({ err: message(error) }, 'poll event handler threw');
    }
  };

  async function pass(): Promise<PollEvent[]> {
    const events: PollEvent[] = [];
    let scan: Awaited<ReturnType<ModelRepository['scan']>>;
    try {
      scan = await repository.scan();
    } catch (error) {
      log.warn({ repository: repository.dir, err: message(error) }, 'cannot scan the model repository');
      return events;
    }
    for (const model of scan.models) {
      const candidate = model.versions.filter((v) => v.available).at(-1);
      if (!candidate || stopped) continue;
      const k = `${model.name}/${candidate.version}`;
      if (repository.lastAttempt(model.name, candidate.version) === candidate.fingerprint) continue;
      const held = repository.heldVersions(model.name);
      if (held.some((v) => compareVersions(v, candidate.version) >= 0)) continue;
      if (pending.get(k) !== candidate.fingerprint) {
        pending.set(k, candidate.fingerprint);
        events.push({ type: 'waiting', name: model.name, version: candidate.version });
        continue;
      }
      pending.delete(k);
      try {
        const outcome = await repository.load(model.name, { version: candidate.version });
        log.info(
          { model: model.name, version: outcome.version, previous: outcome.previous },
          'new version active',
        );
        events.push({ type: 'loaded', outcome });
      } catch (error) {
        log.error(
          { model: model.name, version: candidate.version, err: message(error) },
          'new version failed',
        );
        events.push({ type: 'failed', name: model.name, version: candidate.version, error: message(error) });
      }
    }
    for (const event of events) emit(event);
    return events;
  }

  const run = (): Promise<PollEvent[]> => {
    running = running.then(pass, pass);
    return running;
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      void run().finally(schedule);
    }, intervalMs);
    timer.unref();
  };
  schedule();

  return {
    pollOnce: run,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running.catch(() => {});
    },
  };
}
