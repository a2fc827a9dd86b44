import { type Placement, type PlacementRequest, type Scheduler, schedulerSymbol } from '../scheduler.js';

/**
 * Composes two schedulers: placement comes from `primary`, and any stage it leaves without
 * a worker (or a primary that throws) is filled from `secondary`'s placement; routing asks
 * `primary`, and `secondary` only if `primary` throws or answers with a worker that is not
 * one of the replicas offered.
 */
export function fallbackScheduler(primary: Scheduler, secondary: Scheduler): Scheduler {
  return {
    [schedulerSymbol]: true,
    name: `${primary.name}>${secondary.name}`,
    place(request: PlacementRequest): Placement {
      let first: Placement | undefined;
      try {
        first = primary.place(request);
      } catch {
        return secondary.place(request);
      }
      if (first.stages.length === request.stages.length && first.stages.every((ids) => ids.length > 0)) {
        return first;
      }
      const second = secondary.place(request);
      return {
        stages: request.stages.map((stage) => {
          const ids = first?.stages[stage.index] ?? [];
          return ids.length > 0 ? ids : (second.stages[stage.index] ?? []);
        }),
      };
    },
    route(stage, replicas) {
      try {
        const chosen = primary.route(stage, replicas);
        if (replicas.some((r) => r.id === chosen)) return chosen;
      } catch {
        // fall through to the secondary scheduler
      }
      return secondary.route(stage, replicas);
    },
  };
}
