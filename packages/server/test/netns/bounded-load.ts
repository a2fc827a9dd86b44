/**
 * Bounded request loads for the cluster tests: a fixed number of requests, a fixed number of
 * them in flight, and a deadline. Every request's outcome is kept, so a test can check that
 * none was lost.
 *
 * @module
 */

/** Options of {@link runLoad}. */
export interface LoadOptions {
  /** Requests to send (the load stops earlier only when `stop` is aborted). */
  readonly total: number;
  /** Requests in flight at once. */
  readonly concurrency: number;
  /** Sends request `i`; rejects when its answer is wrong. */
  readonly send: (i: number) => Promise<unknown>;
  /** Stops sending new requests (those in flight still finish). */
  readonly stop?: AbortSignal;
  /** Bound on the whole load, in ms. */
  readonly deadlineMs: number;
}

/** What a load did. */
export interface LoadResult {
  readonly sent: number;
  readonly succeeded: number;
  /** Failures, each `request <i>: <message>`. */
  readonly failures: readonly string[];
  readonly elapsedMs: number;
}

/** A load running now: counts so far, and its end. */
export interface RunningLoad {
  /** Requests answered correctly so far. */
  succeeded(): number;
  readonly done: Promise<LoadResult>;
}

/** Starts a bounded load (see the module comment). */
export function runLoad(options: LoadOptions): RunningLoad {
  const { total, concurrency, send, stop, deadlineMs } = options;
  const started = performance.now();
  const deadline = started + deadlineMs;
  let next = 0;
  let succeeded = 0;
  const failures: string[] = [];
  const lane = async (): Promise<void> => {
    while (next < total && !stop?.aborted && performance.now() < deadline) {
      const i = next++;
      try {
        await send(i);
        succeeded++;
      } catch (error) {
        failures.push(`request ${i}: ${(error as Error).message}`);
      }
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, lane)).then(() => {
    if (next < total && !stop?.aborted)
      failures.push(`deadline of ${deadlineMs} ms passed after ${next} of ${total} requests`);
    return { sent: next, succeeded, failures, elapsedMs: performance.now() - started };
  });
  return { succeeded: () => succeeded, done };
}
