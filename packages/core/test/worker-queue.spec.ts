import { describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { createLoadMonitor } from '../src/worker/load-monitor.js';
import { createWorkQueue } from '../src/worker/worker-queue.js';

/** A promise with its resolve function exposed. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

const codeOf = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'resolved',
    (error: unknown) => (isDinferError(error) ? error.code : 'other'),
  );

describe('createWorkQueue', () => {
  it('runs tasks one at a time in FIFO order and reports the wait', async () => {
    const queue = createWorkQueue(8);
    const log: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const first = gate();
    const task = (name: string, wait?: Promise<void>) => async () => {
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      log.push(`start ${name}`);
      await wait;
      log.push(`end ${name}`);
      running -= 1;
      return name;
    };
    const a = queue.run(task('a', first.promise));
    const b = queue.run(task('b'));
    const c = queue.run(task('c'));
    expect(queue.busy).toBe(true);
    expect(queue.length).toBe(2);
    await new Promise((r) => setTimeout(r, 150));
    first.open();
    const results = await Promise.all([a, b, c]);
    expect(results.map((r) => r.result)).toEqual(['a', 'b', 'c']);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(maxRunning).toBe(1);
    expect(results[0]!.queueMs).toBeLessThan(75);
    expect(results[1]!.queueMs).toBeGreaterThanOrEqual(140);
    await queue.idle();
    expect(queue.busy).toBe(false);
  });

  it('refuses work beyond the limit with OVERLOADED', async () => {
    const queue = createWorkQueue(2);
    const hold = gate();
    const running = queue.run(() => hold.promise);
    const waiting = [queue.run(async () => 1), queue.run(async () => 2)];
    expect(await codeOf(queue.run(async () => 3))).toBe(DinferErrorCode.OVERLOADED);
    hold.open();
    await running;
    expect((await Promise.all(waiting)).map((r) => r.result)).toEqual([1, 2]);
    // A zero limit still runs one task when idle.
    const strict = createWorkQueue(0);
    const only = gate();
    const one = strict.run(() => only.promise);
    expect(await codeOf(strict.run(async () => 0))).toBe(DinferErrorCode.OVERLOADED);
    only.open();
    await one;
  });

  it('drops a queued task whose signal aborts, without running it', async () => {
    const queue = createWorkQueue(4);
    const hold = gate();
    const running = queue.run(() => hold.promise);
    const controller = new AbortController();
    let ran = false;
    const doomed = codeOf(
      queue.run(async () => {
        ran = true;
      }, controller.signal),
    );
    controller.abort();
    expect(await doomed).toBe(DinferErrorCode.ABORTED);
    expect(queue.length).toBe(0);
    hold.open();
    await running;
    await queue.idle();
    expect(ran).toBe(false);
  });

  it('after close refuses new work with NOT_READY, finishing or rejecting the waiting work', async () => {
    const queue = createWorkQueue(4);
    const hold = gate();
    const running = queue.run(() => hold.promise);
    const kept = queue.run(async () => 'kept');
    queue.close();
    expect(await codeOf(queue.run(async () => 'late'))).toBe(DinferErrorCode.NOT_READY);
    hold.open();
    expect((await kept).result).toBe('kept');
    await running;

    const other = createWorkQueue(4);
    const hold2 = gate();
    const running2 = other.run(() => hold2.promise);
    const dropped = codeOf(other.run(async () => 'dropped'));
    other.close({ reject: true });
    expect(await dropped).toBe(DinferErrorCode.NOT_READY);
    hold2.open();
    await running2;
    await other.idle();
  });
});

describe('createLoadMonitor', () => {
  it('reports queue length, free memory, CPU share and an EWMA of compute times', async () => {
    let queued = 3;
    const memoryBytes = 64 * 1024 ** 3;
    const monitor = createLoadMonitor({ cores: 1, memoryBytes, queueLength: () => queued, minSampleMs: 0 });
    expect(monitor.sample().latencyMs).toBe(0);
    monitor.recordCompute(100);
    monitor.recordCompute(200);
    // EWMA with alpha 0.2: 100 + 0.2 * (200 - 100).
    expect(monitor.sample().latencyMs).toBeCloseTo(120, 9);
    queued = 5;
    expect(monitor.sample().queueLength).toBe(5);

    monitor.sample();
    const spinUntil = performance.now() + 80;
    let x = 0;
    while (performance.now() < spinUntil) x += Math.sqrt(x + 1);
    const load = monitor.sample();
    expect(x).toBeGreaterThan(0);
    // A busy loop on one core: most of the wall time was CPU time (shared machine: loose).
    expect(load.cpu).toBeGreaterThan(0.1);
    expect(load.cpu).toBeLessThanOrEqual(1);
    const rss = process.memoryUsage.rss();
    expect(Math.abs(load.freeMemoryBytes - (memoryBytes - rss))).toBeLessThan(64 * 1024 * 1024);

    const tiny = createLoadMonitor({ cores: 2, memoryBytes: 1, queueLength: () => 0 });
    expect(tiny.sample().freeMemoryBytes).toBe(0);
    expect(() => createLoadMonitor({ cores: 0, memoryBytes: 1, queueLength: () => 0 })).toThrow(/cores/);
  });
});
