/**
 * The check every rollout passes before the atomic switch: one deterministic pseudo-random
 * example through the new version. It catches NaN/Infinity, shards that load but compute
 * something else, and broken stages.
 *
 * - When the master can run every stage itself (a model in memory, or one served from
 *   artifacts whose stages each fit the master's memory budget), the workers' answer is
 *   compared with the master's own computation, stage by stage (loading each stage on
 *   demand, then freeing them).
 * - Otherwise (a model larger than the master can hold), it runs stage by stage on the
 *   workers: each stage's input goes to up to two of its replicas; every output must be
 *   finite and two replicas of a stage must agree, the first one's outputs feeding the next
 *   stage.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { TensorSpec } from '../model/types.js';
import type { TensorData } from '../tensor/types.js';
import type { DeploymentStage } from './deployment.js';
import type { VersionEntry } from './model-registry.js';
import type { PipelineRunner } from './pipeline-runner.js';
import type { RemoteWorker } from './remote-worker.js';
import { callStage } from './stage-call.js';

/** Relative tolerance of the comparisons (float32 on different backends and orders). */
const TOLERANCE = 1e-3;

/** What the check uses of the coordinator. */
export interface WarmupParts {
  readonly runner: PipelineRunner;
  /** Routable workers with `stage` loaded. */
  replicas(stage: DeploymentStage): RemoteWorker[];
  readonly stageTimeoutMs: number;
  readonly maxTensorBytes: number;
}

/** How a version passed its warm-up check. */
export type WarmupCheckKind = 'master-reference' | 'worker-replicas' | 'master-only';

function fail(why: string): never {
  throw new DinferError(DinferErrorCode.ROLLOUT_FAILED, `warm-up check: ${why}`);
}

/** The example: seeded uniform [0, 1) floats (zeros for int32 inputs), batch 1. */
export function warmupInputs(specs: readonly TensorSpec[]): TensorData[] {
  let seed = 0x2545f491;
  const next = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 4294967296;
  };
  return specs.map((spec) => {
    const shape = spec.shape.map((d, i) => (i === 0 ? 1 : (d ?? 1)));
    const size = shape.reduce((a, b) => a * b, 1);
    if (spec.dtype === 'int32')
      return { dtype: 'int32', shape, data: Int32Array.from({ length: size }, () => 0) };
    return { dtype: 'float32', shape, data: Float32Array.from({ length: size }, next) };
  });
}

function checkFinite(tensors: readonly TensorData[], what: string): void {
  for (const t of tensors) {
    if (t.dtype === 'float32' && !(t.data as Float32Array).every(Number.isFinite))
      fail(`${what} produced NaN or Infinity`);
  }
}

/** The first element where `got` is not within the tolerance of `want`, if any. */
function firstDifference(want: TensorData, got: TensorData): number | undefined {
  let scale = 1;
  for (let k = 0; k < want.data.length; k++) scale = Math.max(scale, Math.abs(Number(want.data[k])));
  if (got.data.length !== want.data.length) return 0;
  for (let k = 0; k < want.data.length; k++) {
    if (!(Math.abs(Number(got.data[k]) - Number(want.data[k])) <= TOLERANCE * scale)) return k;
  }
  return undefined;
}

/**
 * Checks `entry`'s version (see the module documentation); `onWorkers` false means there are
 * no workers, and the master's own run of the example must only be finite.
 *
 * @throws DinferError ROLLOUT_FAILED saying what failed.
 */
export async function warmupCheck(
  entry: VersionEntry,
  onWorkers: boolean,
  parts: WarmupParts,
): Promise<WarmupCheckKind> {
  const { deployment } = entry;
  const inputs = warmupInputs(deployment.served.inputs);
  const requestId = `warmup-${deployment.version}`;
  const masterRunsAll = deployment.stages.every((s) => deployment.runsLocally(s.index));
  if (onWorkers && !masterRunsAll) {
    await checkReplicas(entry, inputs, requestId, parts);
    return 'worker-replicas';
  }
  const result = await parts.runner.run(entry, inputs, { requestId }, onWorkers);
  checkFinite(result.outputs, 'the model');
  if (!onWorkers) return 'master-only';
  // The reference: every stage run on the master.
  let activations = new Map<string, TensorData>(
    deployment.served.inputs.map((spec, i) => [spec.name, inputs[i]!]),
  );
  try {
    for (const stage of deployment.stages) {
      const outs = await deployment.runLocal(
        stage.index,
        stage.partitionStage.inputs.map((spec) => activations.get(spec.name)!),
      );
      activations = new Map([
        ...activations,
        ...stage.partitionStage.outputs.map((spec, i) => [spec.name, outs[i]!] as const),
      ]);
    }
  } finally {
    deployment.releaseLocal();
  }
  deployment.served.outputs.forEach((spec, i) => {
    const want = activations.get(spec.name)!;
    const got = result.outputs[i]!;
    const k = firstDifference(want, got);
    if (k !== undefined) {
      fail(
        `output "${spec.name}" differs from the master's computation (${got.data[k]} vs ${want.data[k]} at ${k})`,
      );
    }
  });
  return 'master-reference';
}

async function checkReplicas(
  entry: VersionEntry,
  inputs: readonly TensorData[],
  requestId: string,
  parts: WarmupParts,
): Promise<void> {
  const { deployment } = entry;
  const activations = new Map<string, TensorData>(
    deployment.served.inputs.map((spec, i) => [spec.name, inputs[i]!]),
  );
  for (const stage of deployment.stages) {
    const stageInputs = stage.partitionStage.inputs.map((spec) => activations.get(spec.name)!);
    const replicas = parts.replicas(stage).slice(0, 2);
    if (replicas.length === 0) fail(`no worker holds stage ${stage.index}`);
    const answers = await Promise.all(
      replicas.map((worker) =>
        callStage(worker, stage, stageInputs, {
          requestId: `${requestId}-${stage.index}-${worker.id}`,
          timeoutMs: parts.stageTimeoutMs,
          maxTensorBytes: parts.maxTensorBytes,
        }),
      ),
    );
    answers.forEach((answer, r) => {
      checkFinite(answer, `stage ${stage.index} on worker ${replicas[r]!.id}`);
    });
    if (answers.length === 2) {
      stage.partitionStage.outputs.forEach((spec, i) => {
        const k = firstDifference(answers[0]![i]!, answers[1]![i]!);
        if (k !== undefined) {
          fail(
            `stage ${stage.index} output "${spec.name}" differs between workers ${replicas[0]!.id} and ${replicas[1]!.id} (${answers[0]![i]!.data[k]} vs ${answers[1]![i]!.data[k]} at ${k})`,
          );
        }
      });
    }
    stage.partitionStage.outputs.forEach((spec, i) => {
      activations.set(spec.name, answers[0]![i]!);
    });
  }
  const outputs = deployment.served.outputs.map((spec) => activations.get(spec.name)!);
  outputs.forEach((output, i) => {
    const spec = deployment.served.outputs[i]!;
    const ok =
      output.shape.length === spec.shape.length &&
      spec.shape.every((d, k) => d === null || d === output.shape[k]);
    if (!ok)
      fail(
        `output "${spec.name}" has shape [${output.shape.join(', ')}], not [${spec.shape.map((d) => d ?? '?').join(', ')}]`,
      );
  });
}
