/**
 * Checks a scheduler's answers against its contract, so that a scheduler bug surfaces as a
 * clear error naming the scheduler instead of a cluster that never becomes ready.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { Placement, PlacementRequest, Scheduler, WorkerView } from '../scheduler.js';

function invalid(
  scheduler: Scheduler,
  what: string,
  problem: string,
  details: Record<string, unknown>,
  cause?: unknown,
): DinferError {
  return new DinferError(
    DinferErrorCode.SCHEDULER_INVALID,
    `scheduler "${String(scheduler.name)}" returned an invalid ${what}: ${problem}`,
    { details: { scheduler: String(scheduler.name), ...details }, ...(cause === undefined ? {} : { cause }) },
  );
}

/**
 * Asks `scheduler` for a placement and checks it: one entry per stage, each a list of ids of
 * workers offered in `request`, none repeated within a stage.
 *
 * @throws DinferError `SCHEDULER_INVALID` naming the scheduler and the first problem found
 *   (a `place()` that throws is reported the same way, with the error as `cause`).
 */
export function placeChecked(scheduler: Scheduler, request: PlacementRequest): Placement {
  let placement: unknown;
  try {
    placement = scheduler.place(request);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw invalid(scheduler, 'placement', `place() threw: ${reason}`, {}, error);
  }
  const stages = (placement as Partial<Placement> | null | undefined)?.stages;
  if (!Array.isArray(stages)) {
    throw invalid(scheduler, 'placement', 'expected { stages: string[][] }', {});
  }
  if (stages.length !== request.stages.length) {
    throw invalid(
      scheduler,
      'placement',
      `${stages.length} stage entries for ${request.stages.length} stages`,
      { expected: request.stages.length, got: stages.length },
    );
  }
  const known = new Set(request.workers.map((w) => w.id));
  stages.forEach((ids: unknown, stage) => {
    if (!Array.isArray(ids))
      throw invalid(scheduler, 'placement', `stage ${stage} is not a list of worker ids`, { stage });
    const seen = new Set<string>();
    for (const id of ids as unknown[]) {
      if (typeof id !== 'string' || !known.has(id)) {
        throw invalid(
          scheduler,
          'placement',
          `stage ${stage} names unknown worker ${JSON.stringify(id)}; offered: ${[...known].join(', ') || 'none'}`,
          { stage, worker: id },
        );
      }
      if (seen.has(id)) {
        throw invalid(scheduler, 'placement', `stage ${stage} lists worker ${id} twice`, {
          stage,
          worker: id,
        });
      }
      seen.add(id);
    }
  });
  return placement as Placement;
}

/**
 * Asks `scheduler` which replica serves the next request of `stage` and checks that the
 * answer is the id of one of `replicas`.
 *
 * @throws DinferError `SCHEDULER_INVALID` naming the scheduler (also when `route()` throws).
 */
export function routeChecked(scheduler: Scheduler, stage: number, replicas: readonly WorkerView[]): string {
  let chosen: unknown;
  try {
    chosen = scheduler.route(stage, replicas);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw invalid(scheduler, 'route', `route() threw: ${reason}`, { stage }, error);
  }
  if (typeof chosen !== 'string' || !replicas.some((r) => r.id === chosen)) {
    throw invalid(
      scheduler,
      'route',
      `stage ${stage}: ${JSON.stringify(typeof chosen === 'string' ? chosen : typeof chosen)} is not the id of an offered replica (${replicas.map((r) => r.id).join(', ')})`,
      { stage },
    );
  }
  return chosen;
}
