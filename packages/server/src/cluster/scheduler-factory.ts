/**
 * Builds the master's scheduler: a built-in one by name, a `Scheduler` given as is, or one
 * made by a module's default export.
 *
 * @module
 */
import {
  capabilityBasedScheduler,
  DinferError,
  DinferErrorCode,
  fallbackScheduler,
  isScheduler,
  type Logger,
  loadBasedScheduler,
  type Metrics,
  roundRobinScheduler,
  type Scheduler,
} from '@dinfer/core';
import { describeValue, type ExtensionKind, loadFromModule } from './extension-module.js';

/** Scheduler names the CLI accepts. */
export const SCHEDULER_KINDS = ['round-robin', 'load', 'capability'] as const;

/** One of {@link SCHEDULER_KINDS}. */
export type SchedulerKind = (typeof SCHEDULER_KINDS)[number];

/** A scheduler by name, or one of your own. */
export type SchedulerOption = SchedulerKind | Scheduler;

/** What the default export of a scheduler module is called with (`--scheduler ./file.js`). */
export interface SchedulerContext {
  readonly logger?: Logger | undefined;
  /** The master's metrics. */
  readonly metrics?: Metrics | undefined;
}

const SCHEDULER: ExtensionKind<Scheduler> = { name: 'Scheduler', is: isScheduler };

/** Parses a scheduler name, with a clear error for unknown ones. */
export function parseSchedulerKind(value: string): SchedulerKind {
  if ((SCHEDULER_KINDS as readonly string[]).includes(value)) return value as SchedulerKind;
  throw new DinferError(
    DinferErrorCode.INVALID_ARGUMENT,
    `unknown scheduler "${value}": expected one of ${SCHEDULER_KINDS.join(', ')}`,
  );
}

/**
 * Creates the named scheduler. Load- and capability-based scheduling fall back to
 * round-robin for any stage they cannot place (e.g. when workers announce too little memory).
 */
export function createScheduler(kind: string): Scheduler {
  switch (parseSchedulerKind(kind)) {
    case 'round-robin':
      return roundRobinScheduler();
    case 'load':
      return fallbackScheduler(loadBasedScheduler(), roundRobinScheduler());
    case 'capability':
      return fallbackScheduler(capabilityBasedScheduler(), roundRobinScheduler());
  }
}

/**
 * The scheduler of `option`: the named built-in one, or the given `Scheduler` itself.
 *
 * @throws DinferError INVALID_ARGUMENT for anything else, naming what is expected.
 */
export function resolveScheduler(option: unknown): Scheduler {
  if (typeof option === 'string') return createScheduler(option);
  if (isScheduler(option)) return option;
  throw new DinferError(
    DinferErrorCode.INVALID_ARGUMENT,
    `scheduler: expected ${SCHEDULER_KINDS.map((k) => `"${k}"`).join(', ')} or a Scheduler (see isScheduler in @dinfer/core), got ${describeValue(option)}`,
  );
}

/** Makes a scheduler with the default export of the module `file` (see `loadFromModule`). */
export function schedulerFromModule(
  file: string,
  context: SchedulerContext = {},
  cwd?: string,
): Promise<Scheduler> {
  return loadFromModule(file, SCHEDULER, context, cwd);
}
