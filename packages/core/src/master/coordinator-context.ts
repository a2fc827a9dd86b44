/**
 * What every part of the coordinator shares: its options, logger, metrics, scheduler, the
 * event sink and whether it has stopped.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Scheduler } from '../scheduler.js';
import { defaultMemoryBudget } from '../worker/capabilities.js';
import type { CoordinatorEvent, CoordinatorOptions } from './coordinator-types.js';
import type { Deployment } from './deployment.js';

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

/** The master's memory budget for stages it runs itself (see `CoordinatorOptions.memoryBytes`). */
export function localMemoryBytes(ctx: CoordinatorContext): number {
  return ctx.options.memoryBytes ?? defaultMemoryBudget(tf.getBackend());
}

/** Logs and announces (`version.planned`) the cuts a deployment was just planned with. */
export function reportPlanned(ctx: CoordinatorContext, deployment: Deployment): void {
  const { cuts } = deployment.partition;
  ctx.log.info({ model: deployment.name, version: deployment.version, cuts }, 'version planned');
  ctx.emit({ type: 'version.planned', model: deployment.name, version: deployment.version, cuts });
}
