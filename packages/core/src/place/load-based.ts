import { type Scheduler, schedulerSymbol, type WorkerView } from '../scheduler.js';
import { assignStages, compareIds } from './assign-stages.js';

/** Weights of the load-based cost; defaults suit a cluster of similar machines. */
export interface LoadBasedOptions {
  /** Extra cost per unit of CPU utilisation (0..1) reported by heartbeats. Default 1. */
  readonly cpuWeight?: number;
  /** Latency assumed for a worker that has not reported one yet, in ms. Default 10. */
  readonly defaultLatencyMs?: number;
}

/**
 * Load-based: places stages on the least loaded workers that have the free memory for them,
 * gives spare workers to the stage with the most work per replica, and routes each request
 * to the replica with the lowest expected wait: (in flight + queued + 1) × recent latency,
 * inflated by CPU utilisation. Ties rotate so equal workers share the load.
 */
export function loadBasedScheduler(options: LoadBasedOptions = {}): Scheduler {
  const cpuWeight = options.cpuWeight ?? 1;
  const defaultLatency = options.defaultLatencyMs ?? 10;
  let tieBreak = 0;

  const expectedWait = (w: WorkerView): number => {
    const load = w.load;
    const waiting = w.inflight + (load?.queueLength ?? 0) + 1;
    const latency = Math.max(load?.latencyMs ?? defaultLatency, 0.001);
    return waiting * latency * (1 + cpuWeight * Math.min(Math.max(load?.cpu ?? 0, 0), 1));
  };
  const freeMemory = (w: WorkerView): number => w.load?.freeMemoryBytes ?? w.capabilities.memoryBytes;

  return {
    [schedulerSymbol]: true,
    name: 'load',
    place: (request) =>
      assignStages(request, {
        stageOrder: (stages) =>
          [...stages].sort((a, b) => b.estimatedMs - a.estimatedMs || a.index - b.index),
        rankWorkers: (_stage, candidates, held) =>
          [...candidates].sort(
            (a, b) =>
              (held.get(a.id) ?? 0) - (held.get(b.id) ?? 0) ||
              expectedWait(a) - expectedWait(b) ||
              freeMemory(b) - freeMemory(a) ||
              compareIds(a, b),
          ),
        fits: (stage, worker, usedBytes) => freeMemory(worker) - usedBytes >= stage.memoryBytes,
        replicaNeed: (stage, replicas) => stage.estimatedMs / (replicas.length + 1) - stage.index * 1e-9,
      }),
    route(_stage: number, replicas: readonly WorkerView[]): string {
      const sorted = [...replicas].sort(compareIds);
      const start = tieBreak++ % sorted.length;
      let best = sorted[start] as WorkerView;
      let bestWait = expectedWait(best);
      for (let i = 1; i < sorted.length; i++) {
        const candidate = sorted[(start + i) % sorted.length] as WorkerView;
        const wait = expectedWait(candidate);
        if (wait < bestWait) {
          best = candidate;
          bestWait = wait;
        }
      }
      return best.id;
    },
  };
}
