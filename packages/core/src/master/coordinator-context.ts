/**
 * What every part of the coordinator shares: its options, logger, metrics, scheduler, the
 * event sink and whether it has stopped.
 *
 * @module
 */
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Scheduler } from '../scheduler.js';
import type { CoordinatorEvent, CoordinatorOptions } from './coordinator-types.js';

/** The coordinator's shared collaborators, handed to each of its parts. */
export interface CoordinatorContext {
  readonly options: CoordinatorOptions;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly scheduler: Scheduler;
  /** True once `stop()` was called. */
  readonly stopped: boolean;
  /** Hands an event to `options.onEvent`; a throwing handler is logged, never propagated. */
  emit(event: CoordinatorEvent): void;
}

/** The message of any thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
