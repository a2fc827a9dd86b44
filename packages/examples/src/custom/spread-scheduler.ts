/**
 * A custom {@link Scheduler}, written against `@dinfer/core`'s public API only: the skeleton to
 * copy when dinfer's own schedulers do not fit.
 *
 * Placement: keeps what the current placement has (stability), gives every stage the worker
 * holding the fewest stages (optionally only workers whose name `prefer` accepts for that
 * stage), then makes each idle worker a replica of the stage with the most estimated work per
 * replica. Routing: the replica with the fewest requests in flight, ties taken in turn.
 *
 * @module
 */
import {
  type Placement,
  type PlacementRequest,
  type Scheduler,
  type StageRequirement,
  schedulerSymbol,
  type WorkerView,
} from '@dinfer/core';

/** Options of {@link spreadScheduler}. */
export interface SpreadSchedulerOptions {
  /** Limits which workers may hold `stage` (by name, say); a stage no worker may hold gets any. */
  readonly prefer?: ((stage: StageRequirement, worker: WorkerView) => boolean) | undefined;
}

/** A scheduler that spreads stages over workers and requests over replicas. */
export function spreadScheduler(options: SpreadSchedulerOptions = {}): Scheduler {
  let turn = 0;
  return {
    [schedulerSymbol]: true,
    name: 'spread',
    place(request: PlacementRequest): Placement {
      const { stages, workers } = request;
      const byId = new Map(workers.map((w) => [w.id, w]));
      const held = new Map(workers.map((w) => [w.id, 0]));
      const placed: string[][] = stages.map(() => []);
      const take = (stage: number, worker: WorkerView): void => {
        placed[stage]?.push(worker.id);
        held.set(worker.id, (held.get(worker.id) ?? 0) + 1);
      };
      for (const stage of stages) {
        for (const id of request.current?.stages[stage.index] ?? []) {
          const worker = byId.get(id);
          if (worker !== undefined && !placed[stage.index]?.includes(id)) take(stage.index, worker);
        }
      }
      const byLoad = (a: WorkerView, b: WorkerView): number =>
        (held.get(a.id) ?? 0) - (held.get(b.id) ?? 0) ||
        a.name.localeCompare(b.name) ||
        a.id.localeCompare(b.id);
      for (const stage of stages) {
        if ((placed[stage.index]?.length ?? 0) > 0) continue;
        const preferred = workers.filter((w) => options.prefer?.(stage, w) ?? true);
        const chosen = [...(preferred.length > 0 ? preferred : workers)].sort(byLoad)[0];
        if (chosen !== undefined) take(stage.index, chosen);
      }
      for (const worker of [...workers].sort(byLoad)) {
        if ((held.get(worker.id) ?? 0) > 0) continue;
        const allowed = stages.filter((s) => options.prefer?.(s, worker) ?? true);
        const needy = [...(allowed.length > 0 ? allowed : stages)].sort(
          (a, b) =>
            b.estimatedMs / ((placed[b.index]?.length ?? 0) + 1) -
              a.estimatedMs / ((placed[a.index]?.length ?? 0) + 1) || a.index - b.index,
        )[0];
        if (needy !== undefined) take(needy.index, worker);
      }
      return { stages: placed };
    },
    route(_stage: number, replicas: readonly WorkerView[]): string {
      const fewest = Math.min(...replicas.map((r) => r.inflight));
      const idle = replicas.filter((r) => r.inflight === fewest).sort((a, b) => a.id.localeCompare(b.id));
      turn += 1;
      return (idle[turn % idle.length] as WorkerView).id;
    },
  };
}
