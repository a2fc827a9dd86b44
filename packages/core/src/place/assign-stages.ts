import type { Placement, PlacementRequest, StageRequirement, WorkerView } from '../scheduler.js';

/** The policy knobs of {@link assignStages}; each scheduler supplies its own. */
export interface AssignmentPolicy {
  /** Order in which stages get their first worker. */
  stageOrder(stages: readonly StageRequirement[]): readonly StageRequirement[];
  /** Candidates for `stage`, best first. `stagesHeld` counts stages already on each worker. */
  rankWorkers(
    stage: StageRequirement,
    candidates: readonly WorkerView[],
    stagesHeld: ReadonlyMap<string, number>,
  ): readonly WorkerView[];
  /** Whether `worker` can hold `stage` on top of `usedBytes` it already holds. */
  fits(stage: StageRequirement, worker: WorkerView, usedBytes: number): boolean;
  /** Which stage most needs another replica: higher wins. */
  replicaNeed(stage: StageRequirement, replicas: readonly WorkerView[]): number;
}

/**
 * Shared placement algorithm: keeps what still fits from the current placement, gives every
 * stage a worker (preferring workers that hold nothing yet), then hands each idle worker to
 * the stage that needs a replica most. A stage that fits nowhere stays empty.
 */
export function assignStages(request: PlacementRequest, policy: AssignmentPolicy): Placement {
  const { stages, workers } = request;
  const byId = new Map(workers.map((w) => [w.id, w]));
  const used = new Map<string, number>(workers.map((w) => [w.id, 0]));
  const held = new Map<string, number>(workers.map((w) => [w.id, 0]));
  const assigned: WorkerView[][] = stages.map(() => []);

  const take = (stage: StageRequirement, worker: WorkerView): void => {
    assigned[stage.index]?.push(worker);
    used.set(worker.id, (used.get(worker.id) ?? 0) + stage.memoryBytes);
    held.set(worker.id, (held.get(worker.id) ?? 0) + 1);
  };

  // 1. Stability: keep current assignments that still exist and fit.
  for (const stage of stages) {
    for (const id of request.current?.stages[stage.index] ?? []) {
      const worker = byId.get(id);
      if (
        worker &&
        !assigned[stage.index]?.includes(worker) &&
        policy.fits(stage, worker, used.get(id) ?? 0)
      ) {
        take(stage, worker);
      }
    }
  }

  // 2. Every stage gets a first worker, idle workers first.
  for (const stage of policy.stageOrder(stages)) {
    if ((assigned[stage.index]?.length ?? 0) > 0) continue;
    const candidates = workers.filter((w) => policy.fits(stage, w, used.get(w.id) ?? 0));
    const idle = candidates.filter((w) => (held.get(w.id) ?? 0) === 0);
    const ranked = policy.rankWorkers(stage, idle.length > 0 ? idle : candidates, held);
    const chosen = ranked[0];
    if (chosen) take(stage, chosen);
  }

  // 3. Idle workers become replicas where they are needed most.
  for (const worker of policy.rankWorkers(stages[0] ?? emptyStage, workers, held)) {
    if ((held.get(worker.id) ?? 0) > 0) continue;
    let best: StageRequirement | undefined;
    let bestNeed = Number.NEGATIVE_INFINITY;
    for (const stage of stages) {
      if (!policy.fits(stage, worker, 0)) continue;
      const need = policy.replicaNeed(stage, assigned[stage.index] ?? []);
      if (need > bestNeed) {
        best = stage;
        bestNeed = need;
      }
    }
    if (best) take(best, worker);
  }

  return { stages: assigned.map((list) => list.map((w) => w.id)) };
}

const emptyStage: StageRequirement = { index: -1, weightBytes: 0, memoryBytes: 0, estimatedMs: 0 };

/** Compares worker ids so that `w2` sorts before `w10`. */
export function compareIds(a: WorkerView, b: WorkerView): number {
  return a.id.localeCompare(b.id, 'en', { numeric: true });
}
