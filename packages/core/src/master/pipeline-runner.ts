/**
 * Runs one request through every stage of a pinned model version, relaying activations.
 * A failed or timed-out stage call is retried (exponential backoff) on another replica,
 * through each worker's circuit breaker; a stage with no replica left runs on the master
 * (degraded mode) unless the caller wants workers only.
 *
 * @module
 */
import type { IBackoff } from 'cockatiel';
import { createBackoff } from '../connection/backoff.js';
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import { routeChecked } from '../place/check-scheduler.js';
import { releaseAttachments } from '../protocol/frame-buffer-pool.js';
import { parseMessage } from '../protocol/messages.js';
import type { InferOptions, InferResult, StageTrace } from '../serving/inference-service.js';
import { decodeTensors, encodeTensors } from '../tensor/codec.js';
import type { TensorData } from '../tensor/types.js';
import type { Envelope } from '../transport.js';
import { type CoordinatorContext, errorMessage } from './coordinator-context.js';
import type { Deployment, DeploymentStage } from './deployment.js';
import type { VersionEntry } from './model-registry.js';
import { isWorkerFault, type RemoteWorker } from './remote-worker.js';

const RETRYABLE_REMOTE = new Set<string>([
  DinferErrorCode.OVERLOADED,
  DinferErrorCode.NOT_READY,
  DinferErrorCode.TIMEOUT,
  DinferErrorCode.INTERNAL,
  DinferErrorCode.TRANSPORT_CLOSED,
]);

function isRetryable(error: unknown): boolean {
  if (!isDinferError(error)) return true; // e.g. a broken-circuit error from the breaker
  if (error.code === DinferErrorCode.ABORTED) return false;
  if (error.code === DinferErrorCode.REMOTE) {
    const remote = error.details.remoteCode;
    return typeof remote === 'string' && RETRYABLE_REMOTE.has(remote);
  }
  return (
    error.code === DinferErrorCode.TRANSPORT_CLOSED ||
    error.code === DinferErrorCode.TIMEOUT ||
    error.code === DinferErrorCode.NOT_READY ||
    error.code === DinferErrorCode.OVERLOADED ||
    error.code === DinferErrorCode.NO_WORKER
  );
}

/** The error a request aborted through its signal fails with. */
export function abortError(): DinferError {
  return new DinferError(DinferErrorCode.ABORTED, 'the request was aborted');
}

/** Resolves after `ms`; rejects with {@link abortError} when `signal` aborts first. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function byteLength(buffers: readonly Uint8Array[]): number {
  let total = 0;
  for (const b of buffers) total += b.byteLength;
  return total;
}

/** Where the runner finds replicas, and what it tells when a stage fell back to the master. */
export interface PipelineCluster {
  /** Routable workers with `stage` loaded. */
  replicas(stage: DeploymentStage): RemoteWorker[];
  /** Called before a stage runs on the master (degraded mode). */
  onDegradedRun(): void;
  /** Called when a request leaves `entry` (it is no longer in flight on that version). */
  onRequestDone(entry: VersionEntry): void;
}

/** Runs requests through the pipeline of stages. */
export class PipelineRunner {
  readonly #ctx: CoordinatorContext;
  readonly #cluster: PipelineCluster;

  constructor(ctx: CoordinatorContext, cluster: PipelineCluster) {
    this.#ctx = ctx;
    this.#cluster = cluster;
  }

  /**
   * Runs a request through every stage of a pinned version. With `workersOnly`, a stage with
   * no worker fails with `NO_WORKER` instead of running on the master.
   */
  async run(
    entry: VersionEntry,
    inputs: readonly TensorData[],
    options: InferOptions,
    workersOnly: boolean,
  ): Promise<InferResult> {
    const started = performance.now();
    const { deployment } = entry;
    entry.inflight++;
    try {
      const requestId = options.requestId ?? globalThis.crypto.randomUUID();
      const activations = new Map<string, TensorData>();
      deployment.served.inputs.forEach((spec, i) => {
        activations.set(spec.name, inputs[i] as TensorData);
      });
      const nodes: StageTrace[] = [];
      let degraded = false;
      // Replies that carry only activations for later stages: their frames are reused once
      // the request is answered (see frame-buffer-pool.ts).
      const relayFrames: (readonly Uint8Array[])[] = [];
      const served = new Set(deployment.served.outputs.map((o) => o.name));
      for (const stage of deployment.stages) {
        const stageInputs = stage.partitionStage.inputs.map((spec) => {
          const value = activations.get(spec.name);
          if (!value) {
            throw new DinferError(
              DinferErrorCode.INTERNAL,
              `stage ${stage.index} input ${spec.name} missing`,
            );
          }
          return value;
        });
        const result = await this.#runStage(deployment, stage, stageInputs, requestId, options, workersOnly);
        nodes.push(result.trace);
        degraded ||= result.trace.worker === 'master';
        if (result.frame !== undefined && stage.partitionStage.outputs.every((o) => !served.has(o.name))) {
          relayFrames.push(result.frame);
        }
        stage.partitionStage.outputs.forEach((spec, i) => {
          activations.set(spec.name, result.outputs[i] as TensorData);
        });
        // Keep only what later stages or the final answer still need.
        const needed = new Set<string>(deployment.served.outputs.map((o) => o.name));
        for (const later of deployment.stages.slice(stage.index + 1)) {
          for (const spec of later.partitionStage.inputs) needed.add(spec.name);
        }
        for (const name of [...activations.keys()]) if (!needed.has(name)) activations.delete(name);
      }
      const outputs = deployment.served.outputs.map((spec) => {
        const value = activations.get(spec.name);
        if (!value) throw new DinferError(DinferErrorCode.INTERNAL, `model output ${spec.name} missing`);
        return value;
      });
      // Every stage answered at the first attempt, so each relayed activation was fully sent
      // to the one worker that used it, and nothing else reads it. (After a failed attempt a
      // write to the failed worker may still be pending: those frames are left to the GC.)
      if (nodes.every((n) => n.retries === 0 && n.worker !== 'master')) {
        for (const frame of relayFrames) releaseAttachments(frame);
      }
      return {
        model: deployment.name,
        version: deployment.version,
        outputs,
        nodes,
        degraded,
        processingTimeMs: performance.now() - started,
      };
    } finally {
      entry.inflight--;
      this.#cluster.onRequestDone(entry);
    }
  }

  async #runStage(
    deployment: Deployment,
    stage: DeploymentStage,
    inputs: readonly TensorData[],
    requestId: string,
    options: InferOptions,
    workersOnly: boolean,
  ): Promise<{ outputs: TensorData[]; trace: StageTrace; frame?: readonly Uint8Array[] }> {
    const { options: config, metrics, log, scheduler } = this.#ctx;
    const retry = config.retry;
    const maxAttempts = retry?.maxAttempts ?? 5;
    let backoff: IBackoff<unknown> = createBackoff({
      initialDelayMs: retry?.initialDelayMs ?? 25,
      maxDelayMs: retry?.maxDelayMs ?? 2000,
      jitter: true,
    }).next(undefined);
    const tried = new Set<string>();
    const encoded = encodeTensors(inputs, {
      encoding: config.activationEncoding,
      deflateAboveBytes: config.deflateAboveBytes,
    });
    let lastError: unknown;
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      if (options.signal?.aborted) throw abortError();
      const remaining =
        options.deadline === undefined ? Number.POSITIVE_INFINITY : options.deadline - Date.now();
      if (remaining <= 0) {
        throw new DinferError(
          DinferErrorCode.TIMEOUT,
          `request ${requestId} passed its deadline at stage ${stage.index}`,
        );
      }
      const replicas = this.#cluster.replicas(stage);
      if (replicas.length === 0) break;
      const fresh = replicas.filter((w) => !tried.has(w.id));
      const pool = fresh.length > 0 ? fresh : replicas;
      const chosen = routeChecked(
        scheduler,
        stage.index,
        pool.map((w) => w.view(stage.key)),
      );
      const worker = pool.find((w) => w.id === chosen)!;
      const t0 = performance.now();
      worker.inflight++;
      try {
        const reply: Envelope = await worker.breaker.execute(
          () =>
            worker.connection.request(
              {
                header: { type: 'infer', key: stage.key, requestId, tensors: encoded.descriptors },
                attachments: encoded.attachments,
              },
              {
                signal: options.signal,
                timeoutMs: Math.min(config.stageTimeoutMs ?? 60_000, remaining),
              },
            ),
          options.signal,
        );
        const result = parseMessage(reply.header, 'infer.result');
        const outputs = decodeTensors(result.tensors, reply.attachments, {
          maxBytes: config.maxTensorBytes ?? 1024 ** 3,
        });
        if (outputs.length !== stage.partitionStage.outputs.length) {
          throw new DinferError(
            DinferErrorCode.PROTOCOL,
            `worker ${worker.id} returned ${outputs.length} tensors for stage ${stage.index}, expected ${stage.partitionStage.outputs.length}`,
          );
        }
        const ms = performance.now() - t0;
        worker.completed++;
        worker.recordCall(stage.key, ms);
        metrics.set('dinfer_worker_breaker_open', { worker: worker.id }, 0);
        const labels = { model: deployment.name, stage: String(stage.index) };
        metrics.observe('dinfer_stage_duration_seconds', labels, ms / 1000);
        metrics.observe('dinfer_stage_compute_seconds', labels, result.computeMs / 1000);
        metrics.observe('dinfer_stage_queue_seconds', labels, result.queueMs / 1000);
        // Transfer: what the call cost beyond the worker's queue and compute (both directions).
        metrics.observe(
          'dinfer_stage_transfer_seconds',
          labels,
          Math.max(0, ms - result.computeMs - result.queueMs) / 1000,
        );
        metrics.increment('dinfer_stage_bytes_sent_total', labels, byteLength(encoded.attachments));
        metrics.increment('dinfer_stage_bytes_received_total', labels, byteLength(reply.attachments));
        log.debug(
          { requestId, stage: stage.key, worker: worker.id, ms: Math.round(ms * 100) / 100, attempt },
          'stage done',
        );
        return {
          outputs,
          trace: { stage: stage.index, worker: worker.id, ms, retries: attempt },
          frame: reply.attachments,
        };
      } catch (error) {
        lastError = error;
        worker.failed++;
        tried.add(worker.id);
        metrics.set('dinfer_worker_breaker_open', { worker: worker.id }, worker.routable ? 0 : 1);
        if (options.signal?.aborted) throw abortError();
        if (!isRetryable(error)) throw error;
        metrics.increment('dinfer_stage_retries_total', {
          model: deployment.name,
          stage: String(stage.index),
        });
        log.warn(
          {
            requestId,
            stage: stage.key,
            worker: worker.id,
            attempt,
            err: errorMessage(error),
            workerFault: isWorkerFault(error),
          },
          'stage call failed; retrying',
        );
        if (attempt + 1 < maxAttempts) {
          await sleep(backoff.duration, options.signal);
          backoff = backoff.next(undefined);
        }
      } finally {
        worker.inflight--;
      }
    }
    if (workersOnly || config.degradeOnLoss === false) {
      throw new DinferError(
        DinferErrorCode.NO_WORKER,
        `no worker could serve stage ${stage.index} of ${deployment.name}`,
        {
          cause: lastError,
        },
      );
    }
    // Degraded mode: the master holds every stage and runs this one itself.
    this.#cluster.onDegradedRun();
    log.warn(
      { requestId, stage: stage.key, err: lastError && errorMessage(lastError) },
      'running stage on the master',
    );
    const t0 = performance.now();
    const outputs = await deployment.runLocal(stage.index, inputs);
    return {
      outputs,
      trace: { stage: stage.index, worker: 'master', ms: performance.now() - t0, retries: tried.size },
    };
  }
}
