import { describe, expect, it } from 'vitest';
import {
  createBackoff,
  DEFAULT_RECONNECT,
  resolveReconnectOptions,
  retryWithBackoff,
} from '../src/connection/backoff.js';
import { DinferError, DinferErrorCode } from '../src/errors.js';

function delays(options: Parameters<typeof createBackoff>[0], count: number): number[] {
  const out: number[] = [];
  let backoff = createBackoff(options).next(undefined);
  for (let i = 0; i < count; i++) {
    out.push(backoff.duration);
    backoff = backoff.next(undefined);
  }
  return out;
}

describe('createBackoff', () => {
  it('doubles exactly without jitter, capped at maxDelayMs', () => {
    expect(delays({ initialDelayMs: 100, maxDelayMs: 1000, jitter: false }, 6)).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
  });

  it('spreads delays with jitter, never above maxDelayMs, growing on average', () => {
    const runs = Array.from({ length: 200 }, () =>
      delays({ initialDelayMs: 100, maxDelayMs: 5000, jitter: true }, 8),
    );
    for (const run of runs) for (const delay of run) expect(delay).toBeGreaterThanOrEqual(0);
    for (const run of runs) for (const delay of run) expect(delay).toBeLessThanOrEqual(5000);
    const mean = (i: number) => runs.reduce((sum, run) => sum + run[i]!, 0) / runs.length;
    expect(mean(4)).toBeGreaterThan(mean(0) * 4);
    expect(new Set(runs.map((run) => run[2])).size).toBeGreaterThan(100);
  });
});

describe('resolveReconnectOptions', () => {
  it('applies the defaults and refuses bad values by name', () => {
    expect(resolveReconnectOptions({})).toEqual(DEFAULT_RECONNECT);
    expect(resolveReconnectOptions({ initialDelayMs: 20_000 }).maxDelayMs).toBe(20_000);
    expect(() => resolveReconnectOptions({ initialDelayMs: 10, maxDelayMs: 1 })).toThrow(/maxDelayMs/);
    expect(() => resolveReconnectOptions({ initialDelayMs: -1 })).toThrow(/initialDelayMs/);
    expect(() => resolveReconnectOptions({ maxAttempts: 0 })).toThrow(/maxAttempts/);
    expect(() => resolveReconnectOptions({ jitter: 'yes' as never })).toThrow(/jitter/);
  });
});

describe('retryWithBackoff', () => {
  const fast = resolveReconnectOptions({ initialDelayMs: 1, maxDelayMs: 2, jitter: false });

  it('retries until the attempt succeeds, reporting each retry', async () => {
    const retries: number[] = [];
    const result = await retryWithBackoff(
      async (attempt) => {
        if (attempt < 3) throw new Error(`fail ${attempt}`);
        return attempt;
      },
      fast,
      { onRetry: (_error, _delay, attempt) => retries.push(attempt) },
    );
    expect(result).toBe(3);
    expect(retries).toEqual([1, 2]);
  });

  it('stops at a non-retryable error and after maxAttempts', async () => {
    let calls = 0;
    await expect(
      retryWithBackoff(
        async () => {
          calls += 1;
          throw new DinferError(DinferErrorCode.AUTH_FAILED, 'no');
        },
        fast,
        {
          retryable: (error) => !(error instanceof DinferError && error.code === DinferErrorCode.AUTH_FAILED),
        },
      ),
    ).rejects.toMatchObject({ code: DinferErrorCode.AUTH_FAILED });
    expect(calls).toBe(1);
    calls = 0;
    await expect(
      retryWithBackoff(
        async () => {
          calls += 1;
          throw new Error('down');
        },
        { ...fast, maxAttempts: 4 },
      ),
    ).rejects.toThrow('down');
    expect(calls).toBe(4);
  });

  it('rejects with ABORTED when its signal aborts during a wait', async () => {
    const controller = new AbortController();
    const slow = resolveReconnectOptions({ initialDelayMs: 10_000, maxDelayMs: 10_000, jitter: false });
    const retrying = retryWithBackoff(
      async () => {
        throw new Error('down');
      },
      slow,
      { signal: controller.signal },
    );
    setTimeout(() => controller.abort(), 20);
    const started = Date.now();
    await expect(retrying).rejects.toMatchObject({ code: DinferErrorCode.ABORTED });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
