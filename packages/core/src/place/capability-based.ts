import { type Scheduler, schedulerSymbol, type WorkerView } from '../scheduler.js';
import { assignStages, compareIds } from './assign-stages.js';

/** Options for {@link capabilityBasedScheduler}. */
export interface CapabilityBasedOptions {
  /** Only place stages on workers whose backend is in this list (default: any). */
  readonly backends?: readonly string[];
}

/**
 * Capability-based: a stage goes only to a worker with the memory for it (counting the
 * stages it already holds); the most expensive stages go to the fastest workers; spare
 * workers replicate the stage with the highest time per unit of speed; requests go to the
 * replica with the lowest (in flight + 1) / speed.
 */
export function capabilityBasedScheduler(options: CapabilityBasedOptions = {}): Scheduler {
  const allowed = options.backends ? new Set(options.backends) : undefined;
  const score = (w: WorkerView): number => Math.max(w.capabilities.score, 1e-9);
  let tieBreak = 0;
  return {
    [schedulerSymbol]: true,
    name: 'capability',
    place: (request) =>
      assignStages(request, {
        stageOrder: (stages) =>
          [...stages].sort((a, b) => b.estimatedMs - a.estimatedMs || a.index - b.index),
        rankWorkers: (_stage, candidates, held) =>
          [...candidates].sort(
            (a, b) =>
              score(b) - score(a) || (held.get(a.id) ?? 0) - (held.get(b.id) ?? 0) || compareIds(a, b),
          ),
        fits: (stage, worker, usedBytes) =>
          (allowed === undefined || allowed.has(worker.capabilities.backend)) &&
          worker.capabilities.memoryBytes - usedBytes >= stage.memoryBytes,
        replicaNeed: (stage, replicas) =>
          stage.estimatedMs / (replicas.reduce((sum, w) => sum + score(w), 0) + 1e-9) - stage.index * 1e-9,
      }),
    route(_stage: number, replicas: readonly WorkerView[]): string {
      const sorted = [...replicas].sort(compareIds);
      const start = tieBreak++ % sorted.length;
      let best = sorted[start] as WorkerView;
      for (let i = 1; i < sorted.length; i++) {
        const candidate = sorted[(start + i) % sorted.length] as WorkerView;
        if ((candidate.inflight + 1) / score(candidate) < (best.inflight + 1) / score(best)) best = candidate;
      }
      return best.id;
    },
  };
}
