/**
 * The cluster snapshot `Coordinator.status()` returns: every worker with its load and
 * breaker, every placed stage with its replicas.
 *
 * @module
 */
import type { ClusterStatus, StageStatus } from './coordinator-types.js';
import type { Membership } from './membership.js';
import type { ModelRegistry } from './model-registry.js';
import type { StagePlacer } from './placement.js';

/** Builds a {@link ClusterStatus} from the coordinator's parts. */
export function clusterStatus(
  registry: ModelRegistry,
  membership: Membership,
  placer: StagePlacer,
  ready: boolean,
): ClusterStatus {
  const now = Date.now();
  const stages: StageStatus[] = [];
  for (const entry of registry.placedVersions()) {
    const { deployment } = entry;
    for (const stage of deployment.stages) {
      const replicas = placer.replicas(stage).map((w) => w.id);
      stages.push({
        model: deployment.name,
        version: deployment.version,
        index: stage.index,
        layers: [stage.partitionStage.layers[0], stage.partitionStage.layers[1]],
        weightBytes: stage.partitionStage.weightBytes,
        replicas,
        degraded: ready && replicas.length === 0,
      });
    }
  }
  return {
    ready,
    degraded: stages.some((s) => s.degraded),
    stages,
    workers: [...membership.workers.values()].map((w) => ({
      id: w.id,
      name: w.name,
      address: w.connection.remoteAddress,
      backend: w.capabilities.backend,
      cores: w.capabilities.cores,
      score: w.capabilities.score,
      stages: [...w.loaded],
      state: w.state,
      breaker: w.breakerState,
      heartbeatAgeMs: w.lastHeartbeatAt === undefined ? null : now - w.lastHeartbeatAt,
      cpu: w.load?.cpu ?? null,
      freeMemoryBytes: w.load?.freeMemoryBytes ?? null,
      queueLength: w.load?.queueLength ?? null,
      inflight: w.inflight,
      completed: w.completed,
      failed: w.failed,
    })),
  };
}
