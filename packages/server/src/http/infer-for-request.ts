/**
 * Per-request context of the HTTP routes: the arrival time, and the {@link InferOptions} of
 * the service call (the request id, a deadline, and an abort signal that fires when the
 * client goes away while the service works on the request).
 *
 * @module
 */

import { performance } from 'node:perf_hooks';
import type { InferenceService, InferOptions, InferResult, TensorData } from '@dinfer/core';
import type { FastifyReply, FastifyRequest } from 'fastify';

const arrivals = new WeakMap<FastifyRequest, number>();

/** Records when `request` arrived (call it from an `onRequest` hook). */
export function markArrival(request: FastifyRequest): void {
  arrivals.set(request, performance.now());
}

/** Milliseconds since {@link markArrival} saw `request` (body parsing included); 0 if unmarked. */
export function elapsedSinceArrival(request: FastifyRequest): number {
  const start = arrivals.get(request);
  return start === undefined ? 0 : performance.now() - start;
}

/**
 * Runs `service.infer` for one HTTP request: passes the request id, a deadline `timeoutMs`
 * from now (when given), and a signal that aborts if the connection closes before the
 * service answered.
 */
export async function inferForRequest(
  service: InferenceService,
  model: string,
  inputs: readonly TensorData[],
  request: FastifyRequest,
  reply: FastifyReply,
  timeoutMs?: number,
  version?: string,
): Promise<InferResult> {
  const controller = new AbortController();
  const onClose = () => controller.abort(new Error('client closed the connection'));
  reply.raw.once('close', onClose);
  const options: InferOptions = {
    signal: controller.signal,
    requestId: String(request.id),
    ...(version === undefined ? {} : { version }),
    ...(timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs }),
  };
  try {
    return await service.infer(model, inputs, options);
  } finally {
    reply.raw.off('close', onClose);
  }
}
