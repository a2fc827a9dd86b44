/**
 * The worker's bounded FIFO of compute tasks: one runs at a time (a TF.js backend computes
 * one thing at a time anyway), at most `limit` wait, and a task whose requester gave up
 * leaves the queue without running.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';

/** Timing of one task run through a {@link WorkQueue}. */
export interface QueuedResult<T> {
  readonly result: T;
  /** Milliseconds the task waited before it started. */
  readonly queueMs: number;
}

/** A bounded FIFO that runs one task at a time. */
export interface WorkQueue {
  /** Tasks waiting (not counting the running one). */
  readonly length: number;
  /** True while a task runs. */
  readonly busy: boolean;
  /** The most tasks allowed to wait. */
  readonly limit: number;
  /**
   * Queues `task`. Rejects with `DINFER_ERR_OVERLOADED` when `limit` tasks already wait,
   * `DINFER_ERR_NOT_READY` once the queue is closed, and `DINFER_ERR_ABORTED` when `signal`
   * aborts before the task starts (the task then never runs).
   */
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<QueuedResult<T>>;
  /** Refuses new tasks from now on; with `reject`, also fails the waiting ones with `NOT_READY`. */
  close(options?: { reject?: boolean }): void;
  /** Resolves once no task waits or runs. */
  idle(): Promise<void>;
}

interface Job {
  readonly start: () => void;
  readonly fail: (error: DinferError) => void;
}

class FifoWorkQueue implements WorkQueue {
  readonly limit: number;
  readonly #waiting: Job[] = [];
  readonly #idleWaiters: (() => void)[] = [];
  #running = false;
  #closed = false;

  constructor(limit: number) {
    this.limit = limit;
  }

  get length(): number {
    return this.#waiting.length;
  }

  get busy(): boolean {
    return this.#running;
  }

  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<QueuedResult<T>> {
    if (this.#closed) {
      return Promise.reject(new DinferError(DinferErrorCode.NOT_READY, 'the worker is shutting down'));
    }
    if (signal?.aborted) {
      return Promise.reject(new DinferError(DinferErrorCode.ABORTED, 'request aborted before it ran'));
    }
    if (this.#running && this.#waiting.length >= this.limit) {
      return Promise.reject(
        new DinferError(DinferErrorCode.OVERLOADED, `worker queue is full (${this.limit} waiting)`, {
          details: { queueLength: this.#waiting.length, limit: this.limit },
        }),
      );
    }
    const queuedAt = performance.now();
    return new Promise<QueuedResult<T>>((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.#waiting.indexOf(job);
        if (index < 0) return;
        this.#waiting.splice(index, 1);
        reject(new DinferError(DinferErrorCode.ABORTED, 'request aborted while queued'));
        this.#settleIdle();
      };
      const job: Job = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          const queueMs = performance.now() - queuedAt;
          let pending: Promise<T>;
          try {
            pending = task();
          } catch (error) {
            pending = Promise.reject(error);
          }
          pending
            .then(
              (result) => resolve({ result, queueMs }),
              (error: unknown) => reject(error),
            )
            .finally(() => {
              this.#running = false;
              this.#next();
            });
        },
        fail: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(job);
      this.#next();
    });
  }

  close(options: { reject?: boolean } = {}): void {
    this.#closed = true;
    if (options.reject) {
      for (const job of this.#waiting.splice(0)) {
        job.fail(new DinferError(DinferErrorCode.NOT_READY, 'the worker stopped before the request ran'));
      }
      this.#settleIdle();
    }
  }

  idle(): Promise<void> {
    if (!this.#running && this.#waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #next(): void {
    if (this.#running) return;
    const job = this.#waiting.shift();
    if (job === undefined) {
      this.#settleIdle();
      return;
    }
    this.#running = true;
    job.start();
  }

  #settleIdle(): void {
    if (this.#running || this.#waiting.length > 0) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }
}

/**
 * Creates a {@link WorkQueue} where at most `limit` tasks wait behind the running one.
 *
 * @throws DinferError INVALID_ARGUMENT when `limit` is not a non-negative integer.
 */
export function createWorkQueue(limit: number): WorkQueue {
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'queue limit must be a non-negative integer', {
      details: { limit },
    });
  }
  return new FifoWorkQueue(limit);
}
