/**
 * One `infer` call of one stage on one chosen worker, with no routing, retry or fallback:
 * what checks that must know which replica answered use.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import { parseMessage } from '../protocol/messages.js';
import { decodeTensors, encodeTensors } from '../tensor/codec.js';
import type { TensorData } from '../tensor/types.js';
import type { DeploymentStage } from './deployment.js';
import type { RemoteWorker } from './remote-worker.js';

/** Options of {@link callStage}. */
export interface StageCallOptions {
  readonly requestId: string;
  readonly timeoutMs: number;
  /** Largest tensor payload accepted back. */
  readonly maxTensorBytes: number;
}

/**
 * Runs `stage` on `worker` with `inputs` (in the stage's input order).
 *
 * @throws DinferError PROTOCOL when the worker answers other than the stage's outputs; the
 *   connection's and the worker's errors otherwise.
 */
export async function callStage(
  worker: RemoteWorker,
  stage: DeploymentStage,
  inputs: readonly TensorData[],
  options: StageCallOptions,
): Promise<TensorData[]> {
  const encoded = encodeTensors(inputs);
  const reply = await worker.connection.request(
    {
      header: { type: 'infer', key: stage.key, requestId: options.requestId, tensors: encoded.descriptors },
      attachments: encoded.attachments,
    },
    { timeoutMs: options.timeoutMs },
  );
  const result = parseMessage(reply.header, 'infer.result');
  const outputs = decodeTensors(result.tensors, reply.attachments, { maxBytes: options.maxTensorBytes });
  if (outputs.length !== stage.partitionStage.outputs.length) {
    throw new DinferError(
      DinferErrorCode.PROTOCOL,
      `worker ${worker.id} returned ${outputs.length} tensors for stage ${stage.index}, expected ${stage.partitionStage.outputs.length}`,
    );
  }
  return outputs;
}
