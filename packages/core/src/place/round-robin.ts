import { type Scheduler, schedulerSymbol, type WorkerView } from '../scheduler.js';
import { assignStages, compareIds } from './assign-stages.js';

/**
 * Round-robin: stages go to workers in id order, ignoring load and capabilities; spare
 * workers become replicas of the stage with the fewest; requests cycle through a stage's
 * replicas in turn.
 */
export function roundRobinScheduler(): Scheduler {
  const turns = new Map<number, number>();
  return {
    [schedulerSymbol]: true,
    name: 'round-robin',
    place: (request) =>
      assignStages(request, {
        stageOrder: (stages) => [...stages].sort((a, b) => a.index - b.index),
        rankWorkers: (_stage, candidates, held) =>
          [...candidates].sort((a, b) => (held.get(a.id) ?? 0) - (held.get(b.id) ?? 0) || compareIds(a, b)),
        fits: () => true,
        replicaNeed: (stage, replicas) => -replicas.length * 1e6 - stage.index,
      }),
    route(stage: number, replicas: readonly WorkerView[]): string {
      const sorted = [...replicas].sort(compareIds);
      const turn = turns.get(stage) ?? 0;
      turns.set(stage, turn + 1);
      return (sorted[turn % sorted.length] as WorkerView).id;
    },
  };
}
