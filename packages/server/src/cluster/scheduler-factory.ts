/**
 * Builds a scheduler from its name on the command line.
 *
 * @module
 */
import {
  capabilityBasedScheduler,
  DinferError,
  DinferErrorCode,
  fallbackScheduler,
  loadBasedScheduler,
  roundRobinScheduler,
  type Scheduler,
} from '@dinfer/core';

/** Scheduler names the CLI accepts. */
export const SCHEDULER_KINDS = ['round-robin', 'load', 'capability'] as const;

/** One of {@link SCHEDULER_KINDS}. */
export type SchedulerKind = (typeof SCHEDULER_KINDS)[number];

/**
 * Creates the named scheduler. Load- and capability-based scheduling fall back to
 * round-robin for any stage they cannot place (e.g. when workers announce too little memory).
 */
export function createScheduler(kind: string): Scheduler {
  switch (kind) {
    case 'round-robin':
      return roundRobinScheduler();
    case 'load':
      return fallbackScheduler(loadBasedScheduler(), roundRobinScheduler());
    case 'capability':
      return fallbackScheduler(capabilityBasedScheduler(), roundRobinScheduler());
    default:
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        `unknown scheduler "${kind}": expected one of ${SCHEDULER_KINDS.join(', ')}`,
      );
  }
}
