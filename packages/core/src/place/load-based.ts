import { type Scheduler, schedulerSymbol, type WorkerView } from '../scheduler.js';
import { assignStages, compareIds } from './assign-stages.js';

/** Weights of the load-based cost; defaults suit a cluster of similar machines. */
export interface LoadBasedOptions {
  /** Extra cost per unit of CPU utilisation (0..1) reported by heartbeats. Default 1. */
  readonly cpuWeight?: number;
  /** Latency assumed for a worker that has not reported one yet, in ms. Default 10. */
  readonly defaultLatencyMs?: number;
}

/** Requests of a stage, per replica offered, after which a replica not chosen gets a probe. */
const PROBE_EVERY = 8;

/** Per stage: when each replica was last chosen, to find one left alone too long. */
class ProbeClock {
  #decisions = 0;
  readonly #lastChosen = new Map<string, number>();

  /** Counts a decision among `replicas`; returns the one to probe, if any was left alone too long. */
  next(replicas: readonly WorkerView[]): WorkerView | undefined {
    const now = this.#decisions++;
    let stalest: WorkerView | undefined;
    let stalestSince = now;
    for (const replica of replicas) {
      const since = this.#lastChosen.get(replica.id);
      if (since === undefined) this.#lastChosen.set(replica.id, now);
      else if (since < stalestSince) {
        stalest = replica;
        stalestSince = since;
      }
    }
    // Workers that left: forget them once the map outgrows the replicas offered.
    if (this.#lastChosen.size > 4 * replicas.length + 16) {
      const offered = new Set(replicas.map((r) => r.id));
      for (const id of this.#lastChosen.keys()) if (!offered.has(id)) this.#lastChosen.delete(id);
    }
    return now - stalestSince >= PROBE_EVERY * replicas.length ? stalest : undefined;
  }

  /** Records that `id` was chosen by the last decision. */
  chose(id: string): void {
    this.#lastChosen.set(id, this.#decisions - 1);
  }
}

/**
 * Load-based: places stages on the least loaded workers that have the free memory for them,
 * gives spare workers to the stage with the most work per replica, and routes each request
 * to the replica with the lowest expected wait: (in flight + queued + 1) × recent latency
 * (the master's measured call time of that stage, {@link WorkerView.callMs}, so a slow link
 * counts; the worker's reported compute latency before the first call), inflated by CPU
 * utilisation. Ties rotate so equal workers share the load. A replica that
 * has not been chosen for 8 × (replicas offered) requests of its stage gets the next one: a
 * latency figure is refreshed only by traffic, so without these probes a replica whose figure
 * went stale (a passing spike, a worker that rejoined) would never be tried again.
 */
export function loadBasedScheduler(options: LoadBasedOptions = {}): Scheduler {
  const cpuWeight = options.cpuWeight ?? 1;
  const defaultLatency = options.defaultLatencyMs ?? 10;
  let tieBreak = 0;
  const clocks = new Map<number, ProbeClock>();

  const expectedWait = (w: WorkerView): number => {
    const load = w.load;
    const waiting = w.inflight + (load?.queueLength ?? 0) + 1;
    // The master's own measure of a call (link included) when it has one, else the worker's.
    const latency = Math.max(w.callMs ?? load?.latencyMs ?? defaultLatency, 0.001);
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
    route(stage: number, replicas: readonly WorkerView[]): string {
      const sorted = [...replicas].sort(compareIds);
      let clock = clocks.get(stage);
      if (clock === undefined) {
        clock = new ProbeClock();
        clocks.set(stage, clock);
      }
      const probe = clock.next(sorted);
      if (probe !== undefined) {
        clock.chose(probe.id);
        return probe.id;
      }
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
      clock.chose(best.id);
      return best.id;
    },
  };
}
