/**
 * Dynamic batching as an {@link InferenceService} decorator: requests for the same model and
 * the same per-example input signature wait in a bounded queue and run as one inner call.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { type Metrics, noopMetrics } from '../metrics.js';
import type { TensorData } from '../tensor/types.js';
import { concatRows, rowCount, sliceRows } from './batch-tensors.js';
import type {
  InferenceService,
  InferOptions,
  InferResult,
  ServedModel,
  ServiceHealth,
} from './inference-service.js';

/** Inner calls {@link batchingService} runs at once unless told otherwise. */
export const DEFAULT_MAX_CONCURRENT_BATCHES = 4;

/** Options of {@link batchingService}. */
export interface BatchingOptions {
  /**
   * Most rows (examples, dimension 0) per inner call. A request that alone holds more rows
   * runs alone. `1` switches batching off: each request runs alone, but the queue bound,
   * deadlines and the concurrency cap still apply.
   */
  readonly maxBatchSize: number;
  /** Longest time the oldest waiting request of a batch waits for more to join, in ms. */
  readonly maxDelayMs: number;
  /** Most requests waiting (not yet dispatched); more are refused with `DINFER_ERR_OVERLOADED`. */
  readonly maxQueue: number;
  /**
   * Inner calls in flight at once; further batches wait in the queue (and grow meanwhile).
   * Several in flight let a pipeline overlap them. Default {@link DEFAULT_MAX_CONCURRENT_BATCHES}.
   */
  readonly maxConcurrentBatches?: number | undefined;
  /**
   * Dispatch at once while fewer than `maxConcurrentBatches` inner calls run, instead of
   * waiting `maxDelayMs`: a request that the inner service can take at once never pays the
   * delay (a pipeline's free stage gets it), and batches form only while every slot is busy,
   * which is when they help. Default false (always wait up to `maxDelayMs` for batch-mates).
   */
  readonly flushWhenIdle?: boolean | undefined;
  /**
   * Receives `dinfer_batch_size` (rows per inner call), `dinfer_queue_length` (requests
   * waiting) and `dinfer_queue_wait_seconds`, each labelled with the model.
   */
  readonly metrics?: Metrics | undefined;
  readonly logger?: Logger | undefined;
}

/** An {@link InferenceService} with a batching queue in front of it. */
export interface BatchingService extends InferenceService {
  /** Requests waiting in the queue (not yet sent to the inner service). */
  queueLength(): number;
  /** Inner calls in flight. */
  inflightBatches(): number;
}

/** One request in the queue or in a running batch. */
interface Pending {
  readonly model: string;
  readonly inputs: readonly TensorData[];
  readonly rows: number;
  readonly requestId: string | undefined;
  readonly deadline: number | undefined;
  readonly enqueuedAt: number;
  readonly group: Group;
  state: 'queued' | 'running' | 'done';
  batch: Batch | undefined;
  resolve(result: InferResult): void;
  reject(error: unknown): void;
  cleanup(): void;
}

/** Requests that may share a batch: same model, same input count, dtypes and example shapes. */
interface Group {
  readonly key: string;
  readonly model: string;
  readonly items: Pending[];
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** One inner call and the requests it answers. */
interface Batch {
  readonly controller: AbortController;
  open: number;
}

function checkOption(name: string, value: number, min: number, integer: boolean): void {
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < min ||
    (integer && !Number.isInteger(value))
  ) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `batching option ${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}; got ${String(value)}`,
      { details: { option: name, value } },
    );
  }
}

/** Rows of a request: every input has the same dimension 0 of at least 1 and fitting data. */
function requestRows(inputs: readonly TensorData[]): number {
  if (inputs.length === 0) throw new DinferError(DinferErrorCode.TENSOR_INVALID, 'the request has no inputs');
  let rows: number | undefined;
  for (const [i, input] of inputs.entries()) {
    const n = rowCount(input);
    const elements = input.shape.reduce((a, b) => a * b, 1);
    if (input.shape.length === 0 || !Number.isInteger(n) || n < 1) {
      throw new DinferError(
        DinferErrorCode.TENSOR_INVALID,
        `input ${i} needs a batch dimension of at least 1; got shape [${input.shape.join(',')}]`,
      );
    }
    if (input.data.length !== elements) {
      throw new DinferError(
        DinferErrorCode.TENSOR_INVALID,
        `input ${i} holds ${input.data.length} values; shape [${input.shape.join(',')}] needs ${elements}`,
      );
    }
    if (rows !== undefined && n !== rows) {
      throw new DinferError(
        DinferErrorCode.TENSOR_INVALID,
        `inputs disagree on the batch size (${rows} vs ${n})`,
      );
    }
    rows = n;
  }
  return rows as number;
}

function groupKey(model: string, inputs: readonly TensorData[]): string {
  return `${model}\u0000${inputs.map((t) => `${t.dtype}[${t.shape.slice(1).join(',')}]`).join('|')}`;
}

function aborted(reason?: unknown): DinferError {
  return new DinferError(DinferErrorCode.ABORTED, 'the request was aborted while queued or running', {
    cause: reason,
  });
}

function timedOut(deadline: number, where: string): DinferError {
  return new DinferError(DinferErrorCode.TIMEOUT, `the request passed its deadline ${where}`, {
    details: { deadline },
  });
}

/**
 * Wraps `inner` with dynamic batching. Requests for the same model whose inputs agree in
 * count, dtypes and every dimension but the first queue together and run as ONE
 * `inner.infer` call, inputs concatenated along dimension 0, once the batch holds
 * `maxBatchSize` rows or its oldest request has waited `maxDelayMs` (or, with
 * `flushWhenIdle`, at once while a slot for an inner call is free). Each caller gets
 * exactly its own rows of every output (and the batch's shared version, trace and degraded
 * flag); `processingTimeMs` counts from the moment it entered the queue. Requests are taken
 * in arrival order and a batch never exceeds `maxBatchSize` rows, unless one request alone
 * is larger (it then runs alone).
 *
 * - Queue bound: with `maxQueue` requests waiting, a new one is refused at once with
 *   `DINFER_ERR_OVERLOADED` and `details.retryAfterMs` (an estimate from recent batch times).
 * - Deadlines (`InferOptions.deadline`): a request whose deadline passes while it waits
 *   leaves the queue and fails with `DINFER_ERR_TIMEOUT`; the inner service never sees it.
 *   One whose deadline passes while its batch runs fails the same way at that moment (its
 *   rows are discarded). The inner call gets the latest deadline of its requests.
 * - Abort (`InferOptions.signal`): the request leaves the queue (or its running batch) with
 *   `DINFER_ERR_ABORTED`; once every request of a running batch has left, the inner call is
 *   aborted too.
 * - Failures: a failed inner call fails every request of the batch with the same error. The
 *   requests of a batch share their model and input signature, so an error about the model
 *   or the shapes applies to each of them alike; a request that is malformed by itself
 *   (inputs disagreeing on the batch size, data not fitting its shape) is refused before it
 *   is queued with `DINFER_ERR_TENSOR_INVALID`.
 * - A model the inner service does not list goes straight through, so the inner service
 *   answers with its own error (`DINFER_ERR_UNKNOWN_MODEL`).
 * - At most `maxConcurrentBatches` inner calls run at once; while all are busy the queue
 *   keeps filling, so batches grow under load.
 *
 * `models()` and `health()` are the inner service's.
 *
 * @throws DinferError INVALID_ARGUMENT when an option is out of range.
 */
export function batchingService(inner: InferenceService, options: BatchingOptions): BatchingService {
  checkOption('maxBatchSize', options.maxBatchSize, 1, true);
  checkOption('maxDelayMs', options.maxDelayMs, 0, false);
  checkOption('maxQueue', options.maxQueue, 1, true);
  const maxConcurrent = options.maxConcurrentBatches ?? DEFAULT_MAX_CONCURRENT_BATCHES;
  checkOption('maxConcurrentBatches', maxConcurrent, 1, true);
  const maxRows = options.maxBatchSize;
  const maxDelayMs = options.maxDelayMs;
  const flushWhenIdle = options.flushWhenIdle ?? false;
  const metrics = options.metrics ?? noopMetrics;
  const log = options.logger ?? silentLogger;
  const groups = new Map<string, Group>();
  /** Requests waiting, in all and per model. */
  let waiting = 0;
  const waitingByModel = new Map<string, number>();
  let inflight = 0;
  let batchSeq = 0;
  /** Moving average of inner call time, for `retryAfterMs`. */
  let averageBatchMs: number | undefined;

  const countWaiting = (model: string, delta: number): void => {
    waiting += delta;
    const n = (waitingByModel.get(model) ?? 0) + delta;
    if (n === 0) waitingByModel.delete(model);
    else waitingByModel.set(model, n);
    metrics.set('dinfer_queue_length', { model }, n);
  };

  /** True when the batch that would leave now cannot grow any more. */
  const closed = (group: Group): boolean => {
    let rows = 0;
    for (const item of group.items) {
      if (rows > 0 && rows + item.rows > maxRows) return true;
      rows += item.rows;
      if (rows >= maxRows) return true;
    }
    return false;
  };

  const ready = (group: Group, now: number): boolean => {
    const head = group.items[0];
    // With flushWhenIdle, a free slot means waiting would only add latency.
    return (
      head !== undefined &&
      (closed(group) || (flushWhenIdle && inflight < maxConcurrent) || now - head.enqueuedAt >= maxDelayMs)
    );
  };

  /** Re-arms the group's delay timer after a change; drops an empty group. */
  const schedule = (group: Group): void => {
    if (group.timer) clearTimeout(group.timer);
    group.timer = undefined;
    const head = group.items[0];
    if (head === undefined) {
      if (groups.get(group.key) === group) groups.delete(group.key);
      return;
    }
    if (closed(group)) return;
    const wait = Math.max(0, Math.ceil(head.enqueuedAt + maxDelayMs - performance.now()));
    group.timer = setTimeout(() => {
      group.timer = undefined;
      pump();
      // Timers may fire a fraction of a millisecond early: wait again for a batch not yet due.
      if (group.timer === undefined && !ready(group, performance.now())) schedule(group);
    }, wait);
  };

  /** Settles a request once; later calls do nothing. */
  const settle = (item: Pending, outcome: { result: InferResult } | { error: unknown }): void => {
    if (item.state === 'done') return;
    const wasQueued = item.state === 'queued';
    item.state = 'done';
    item.cleanup();
    if (wasQueued) {
      const index = item.group.items.indexOf(item);
      if (index >= 0) item.group.items.splice(index, 1);
      countWaiting(item.model, -1);
      schedule(item.group);
    }
    const batch = item.batch;
    if (batch && --batch.open === 0 && 'error' in outcome) {
      // Every request of this running batch has left: stop the inner call.
      batch.controller.abort(outcome.error);
    }
    if ('result' in outcome) item.resolve(outcome.result);
    else item.reject(outcome.error);
    if (wasQueued) pump();
  };

  const take = (group: Group): Pending[] => {
    const members: Pending[] = [];
    let rows = 0;
    while (group.items.length > 0) {
      const next = group.items[0] as Pending;
      if (members.length > 0 && rows + next.rows > maxRows) break;
      group.items.shift();
      members.push(next);
      rows += next.rows;
      if (rows >= maxRows) break;
    }
    return members;
  };

  const run = async (group: Group, members: Pending[]): Promise<void> => {
    const batch: Batch = { controller: new AbortController(), open: members.length };
    const now = performance.now();
    let rows = 0;
    for (const m of members) {
      m.state = 'running';
      m.batch = batch;
      rows += m.rows;
      metrics.observe('dinfer_queue_wait_seconds', { model: group.model }, (now - m.enqueuedAt) / 1000);
    }
    metrics.observe('dinfer_batch_size', { model: group.model }, rows);
    const single = members.length === 1 ? members[0] : undefined;
    const deadlines = members.map((m) => m.deadline);
    const deadline = deadlines.every((d) => d !== undefined) ? Math.max(...deadlines) : undefined;
    const requestId = single ? single.requestId : `batch-${++batchSeq}`;
    if (!single) {
      log.debug(
        { batch: requestId, model: group.model, rows, requests: members.map((m) => m.requestId ?? null) },
        'running a batch',
      );
    }
    const started = performance.now();
    try {
      const inputs = single
        ? single.inputs
        : (members[0] as Pending).inputs.map((_, i) =>
            concatRows(members.map((m) => m.inputs[i] as TensorData)),
          );
      const result = await inner.infer(group.model, inputs, {
        signal: batch.controller.signal,
        requestId,
        deadline,
      });
      const ms = performance.now() - started;
      averageBatchMs = averageBatchMs === undefined ? ms : 0.8 * averageBatchMs + 0.2 * ms;
      for (const output of result.outputs) {
        if (rowCount(output) !== rows) {
          throw new DinferError(
            DinferErrorCode.INTERNAL,
            `model "${group.model}" answered ${rowCount(output)} rows for a batch of ${rows}`,
            { details: { model: group.model, rows, shape: output.shape } },
          );
        }
      }
      let offset = 0;
      for (const m of members) {
        const outputs = single ? result.outputs : result.outputs.map((t) => sliceRows(t, offset, m.rows));
        offset += m.rows;
        settle(m, { result: { ...result, outputs, processingTimeMs: performance.now() - m.enqueuedAt } });
      }
    } catch (error) {
      if (members.some((m) => m.state !== 'done')) {
        log.warn(
          {
            batch: requestId,
            model: group.model,
            rows,
            err: error instanceof Error ? error.message : String(error),
          },
          'batch failed',
        );
      }
      for (const m of members) settle(m, { error });
    }
  };

  const pump = (): void => {
    while (inflight < maxConcurrent) {
      const now = performance.now();
      let best: Group | undefined;
      for (const group of groups.values()) {
        if (!ready(group, now)) continue;
        if (!best || (group.items[0] as Pending).enqueuedAt < (best.items[0] as Pending).enqueuedAt)
          best = group;
      }
      if (!best) return;
      const group = best;
      const members = take(group);
      countWaiting(group.model, -members.length);
      schedule(group);
      inflight++;
      void run(group, members).finally(() => {
        inflight--;
        pump();
      });
    }
  };

  const retryAfterMs = (): number => {
    const rounds = Math.ceil((waiting + 1) / (maxRows * maxConcurrent));
    return Math.max(1, Math.round((averageBatchMs ?? 1000) * rounds));
  };

  return {
    models: (): readonly ServedModel[] => inner.models(),
    health: (): ServiceHealth => inner.health(),
    queueLength: () => waiting,
    inflightBatches: () => inflight,
    infer(model: string, inputs: readonly TensorData[], infer: InferOptions = {}): Promise<InferResult> {
      const { signal, deadline } = infer;
      if (signal?.aborted) return Promise.reject(aborted(signal.reason));
      if (deadline !== undefined && Date.now() >= deadline) {
        return Promise.reject(timedOut(deadline, 'before it was queued'));
      }
      if (!inner.models().some((m) => m.name === model)) return inner.infer(model, inputs, infer);
      let rows: number;
      try {
        rows = requestRows(inputs);
      } catch (error) {
        return Promise.reject(error);
      }
      if (waiting >= options.maxQueue) {
        const after = retryAfterMs();
        return Promise.reject(
          new DinferError(
            DinferErrorCode.OVERLOADED,
            `the batching queue is full (${waiting} requests waiting); retry in about ${after} ms`,
            { details: { queueLength: waiting, maxQueue: options.maxQueue, retryAfterMs: after } },
          ),
        );
      }
      const key = groupKey(model, inputs);
      let group = groups.get(key);
      if (!group) {
        group = { key, model, items: [], timer: undefined };
        groups.set(key, group);
      }
      const owner = group;
      return new Promise<InferResult>((resolve, reject) => {
        let deadlineTimer: ReturnType<typeof setTimeout> | undefined;
        const onAbort = () => settle(item, { error: aborted(signal?.reason) });
        const item: Pending = {
          model,
          inputs,
          rows,
          requestId: infer.requestId,
          deadline,
          enqueuedAt: performance.now(),
          group: owner,
          state: 'queued',
          batch: undefined,
          resolve,
          reject,
          cleanup: () => {
            if (deadlineTimer) clearTimeout(deadlineTimer);
            signal?.removeEventListener('abort', onAbort);
          },
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        if (deadline !== undefined) {
          deadlineTimer = setTimeout(
            () =>
              settle(item, {
                error: timedOut(deadline, item.state === 'queued' ? 'while queued' : 'while its batch ran'),
              }),
            Math.max(0, deadline - Date.now()),
          );
        }
        owner.items.push(item);
        countWaiting(model, 1);
        schedule(owner);
        pump();
      });
    },
  };
}
