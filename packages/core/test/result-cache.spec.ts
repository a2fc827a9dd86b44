import { describe, expect, it } from 'vitest';
import { DinferError, DinferErrorCode, isDinferError } from '../src/errors.js';
import type { Metrics } from '../src/metrics.js';
import { batchingService } from '../src/serving/batching-service.js';
import { resultCacheKey } from '../src/serving/cache-key.js';
import { cachingService } from '../src/serving/caching-service.js';
import type {
  InferenceService,
  InferOptions,
  InferResult,
  ServedModel,
} from '../src/serving/inference-service.js';
import type { TensorData } from '../src/tensor/types.js';

interface Call {
  readonly inputs: readonly TensorData[];
  readonly options: InferOptions;
  release(): void;
}

/**
 * A fake inner service: output = each value doubled plus the version number, so answers of
 * different versions differ. Records its calls; with `manual`, each waits for `release()`.
 */
function fakeService(options: { manual?: boolean } = {}) {
  const calls: Call[] = [];
  let version = '1';
  const model = (): ServedModel => ({
    name: 'm',
    version,
    inputs: [{ name: 'x', shape: [null, null], dtype: 'float32' }],
    outputs: [{ name: 'y', shape: [null, null], dtype: 'float32' }],
  });
  const service: InferenceService = {
    models: () => [model()],
    health: () => ({ live: true, ready: true, degraded: true }),
    async infer(name, inputs, infer = {}) {
      if (name !== 'm') throw new DinferError(DinferErrorCode.UNKNOWN_MODEL, `unknown model ${name}`);
      const computedBy = version;
      let release!: () => void;
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      calls.push({ inputs, options: infer, release });
      if (options.manual) {
        await new Promise<void>((resolve, reject) => {
          void released.then(resolve);
          infer.signal?.addEventListener('abort', () =>
            reject(new DinferError(DinferErrorCode.ABORTED, 'aborted')),
          );
        });
      }
      const x = inputs[0]!;
      return {
        model: name,
        version: computedBy,
        outputs: [
          {
            name: 'y',
            dtype: 'float32',
            shape: [...x.shape],
            data: Float32Array.from(x.data, (v) => 2 * v + Number(computedBy)),
          },
        ],
        nodes: [{ stage: 0, worker: 'fake', ms: 3, retries: 0 }],
        degraded: false,
        processingTimeMs: 3,
      } satisfies InferResult;
    },
  };
  return {
    service,
    calls,
    setVersion: (v: string) => {
      version = v;
    },
  };
}

function tensor(shape: number[], values: number[]): TensorData {
  return { name: 'x', dtype: 'float32', shape, data: Float32Array.from(values) };
}

const expected = (values: number[], version = 1) => values.map((v) => 2 * v + version);

const codeOf = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'resolved',
    (error: unknown) => (isDinferError(error) ? error.code : `other: ${String(error)}`),
  );

describe('resultCacheKey', () => {
  it('changes with the model, version, dtype, shape and bytes, not with the tensor name', () => {
    const x = tensor([1, 6], [1, 2, 3, 4, 5, 6]);
    const key = resultCacheKey('m', '1', [x]);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(resultCacheKey('m', '1', [{ ...x, name: 'other' }])).toBe(key);
    const variants = [
      resultCacheKey('n', '1', [x]),
      resultCacheKey('m', '2', [x]),
      resultCacheKey('m', '1', [{ ...x, shape: [6, 1] }]),
      resultCacheKey('m', '1', [{ ...x, shape: [2, 3] }]),
      resultCacheKey('m', '1', [tensor([1, 6], [1, 2, 3, 4, 5, 7])]),
      resultCacheKey('m', '1', [
        { name: 'x', dtype: 'int32', shape: [1, 6], data: new Int32Array(x.data.buffer) },
      ]),
      resultCacheKey('m', '1', [tensor([1, 3], [1, 2, 3]), tensor([1, 3], [4, 5, 6])]),
    ];
    expect(new Set([key, ...variants]).size).toBe(variants.length + 1);
  });
});

describe('cachingService', () => {
  it('lets requests pinned to another version than the active one bypass the cache', async () => {
    const fake = fakeService();
    fake.setVersion('2');
    const cache = cachingService(fake.service, { maxBytes: 1 << 20 });
    const x = tensor([1, 2], [1, 2]);
    const first = await cache.infer('m', [x], { version: '1' });
    const second = await cache.infer('m', [x], { version: '1' });
    expect(fake.calls).toHaveLength(2);
    expect(first.cached).not.toBe(true);
    expect(second.cached).not.toBe(true);
    expect(fake.calls.every((c) => c.options.version === '1')).toBe(true);
    expect(cache.stats().entries).toBe(0);
  });

  it('answers a repeated request from the cache without calling inner', async () => {
    const fake = fakeService();
    const cache = cachingService(fake.service, { maxBytes: 1024 });
    const values = [1, 2, 3, 4];
    const miss = await cache.infer('m', [tensor([2, 2], values)]);
    expect(miss.cached).toBeUndefined();
    expect(Array.from(miss.outputs[0]!.data)).toEqual(expected(values));
    const hit = await cache.infer('m', [tensor([2, 2], values)]);
    expect(fake.calls).toHaveLength(1);
    expect(hit.cached).toBe(true);
    expect(hit.version).toBe('1');
    expect(hit.outputs[0]!.shape).toEqual([2, 2]);
    expect(Array.from(hit.outputs[0]!.data)).toEqual(expected(values));
    expect(hit.nodes).toEqual([]);
    expect(hit.processingTimeMs).toBeLessThan(1000);
    expect(cache.stats()).toEqual({ entries: 1, bytes: 16, hits: 1, misses: 1, evictions: 0 });
    expect(cache.models()[0]!.name).toBe('m');
    expect(cache.health().degraded).toBe(true);
  });

  it('hands out copies: a caller changing its answer does not change later hits', async () => {
    const fake = fakeService();
    const cache = cachingService(fake.service, { maxBytes: 1024 });
    const first = await cache.infer('m', [tensor([1, 2], [5, 6])]);
    (first.outputs[0]!.data as Float32Array).fill(0);
    const hit = await cache.infer('m', [tensor([1, 2], [5, 6])]);
    (hit.outputs[0]!.data as Float32Array).fill(-1);
    const again = await cache.infer('m', [tensor([1, 2], [5, 6])]);
    expect(Array.from(again.outputs[0]!.data)).toEqual(expected([5, 6]));
  });

  it('keeps different shapes over the same bytes apart', async () => {
    const fake = fakeService();
    const cache = cachingService(fake.service, { maxBytes: 1024 });
    const values = [1, 2, 3, 4, 5, 6];
    const wide = await cache.infer('m', [tensor([1, 6], values)]);
    const tall = await cache.infer('m', [tensor([2, 3], values)]);
    expect(fake.calls).toHaveLength(2);
    expect(wide.outputs[0]!.shape).toEqual([1, 6]);
    expect(tall.outputs[0]!.shape).toEqual([2, 3]);
    expect(tall.cached).toBeUndefined();
    expect(cache.stats().entries).toBe(2);
  });

  it('evicts the least recently used entries to stay within maxBytes', async () => {
    const fake = fakeService();
    // Each answer holds 2 float32 values = 8 bytes: room for two.
    const cache = cachingService(fake.service, { maxBytes: 16 });
    const a = () => cache.infer('m', [tensor([1, 2], [1, 1])]);
    const b = () => cache.infer('m', [tensor([1, 2], [2, 2])]);
    const c = () => cache.infer('m', [tensor([1, 2], [3, 3])]);
    await a();
    await b();
    expect((await a()).cached).toBe(true); // a is now more recent than b
    await c(); // evicts b
    expect(cache.stats()).toMatchObject({ entries: 2, bytes: 16, evictions: 1 });
    expect((await a()).cached).toBe(true);
    expect((await c()).cached).toBe(true);
    expect((await b()).cached).toBeUndefined();
    expect(fake.calls).toHaveLength(4);
    // An answer larger than the whole budget is not stored (and evicts nothing).
    const before = cache.stats();
    await cache.infer('m', [tensor([1, 6], [1, 2, 3, 4, 5, 6])]);
    expect(cache.stats()).toMatchObject({ entries: before.entries, evictions: before.evictions });
    cache.clear();
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
  });

  it('drops the entries of a model version once the version changes', async () => {
    const fake = fakeService();
    const cache = cachingService(fake.service, { maxBytes: 1024 });
    await cache.infer('m', [tensor([1, 2], [1, 2])]);
    await cache.infer('m', [tensor([1, 2], [3, 4])]);
    expect(cache.stats().entries).toBe(2);
    fake.setVersion('2');
    const fresh = await cache.infer('m', [tensor([1, 2], [1, 2])]);
    expect(fresh.cached).toBeUndefined();
    expect(fresh.version).toBe('2');
    expect(Array.from(fresh.outputs[0]!.data)).toEqual(expected([1, 2], 2));
    expect(cache.stats().entries).toBe(1); // both version-1 entries are gone
    expect((await cache.infer('m', [tensor([1, 2], [1, 2])])).cached).toBe(true);
    expect(fake.calls).toHaveLength(3);
  });

  it('lets identical requests in flight share one inner call', async () => {
    const fake = fakeService({ manual: true });
    const cache = cachingService(fake.service, { maxBytes: 1024 });
    const first = cache.infer('m', [tensor([1, 2], [7, 8])]);
    const second = cache.infer('m', [tensor([1, 2], [7, 8])]);
    const other = cache.infer('m', [tensor([1, 2], [7, 9])]);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(fake.calls).toHaveLength(2);
    for (const call of fake.calls) call.release();
    const [a, b] = await Promise.all([first, second, other]);
    expect(a!.cached).toBeUndefined();
    expect(b!.cached).toBe(true);
    expect(Array.from(b!.outputs[0]!.data)).toEqual(expected([7, 8]));
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 2 });
  });

  it('runs its own call when the shared call is aborted by its caller, and honours its own signal', async () => {
    const fake = fakeService({ manual: true });
    const cache = cachingService(fake.service, { maxBytes: 1024 });
    const leader = new AbortController();
    const first = cache.infer('m', [tensor([1, 2], [1, 1])], { signal: leader.signal });
    const follower = cache.infer('m', [tensor([1, 2], [1, 1])]);
    await new Promise((resolve) => setTimeout(resolve, 2));
    leader.abort();
    expect(await codeOf(first)).toBe(DinferErrorCode.ABORTED);
    await new Promise((resolve) => setTimeout(resolve, 2));
    expect(fake.calls).toHaveLength(2);
    fake.calls[1]!.release();
    expect(Array.from((await follower).outputs[0]!.data)).toEqual(expected([1, 1]));

    const lead = cache.infer('m', [tensor([1, 2], [2, 2])]);
    const mine = new AbortController();
    const waiting = cache.infer('m', [tensor([1, 2], [2, 2])], { signal: mine.signal });
    const late = cache.infer('m', [tensor([1, 2], [2, 2])], { deadline: Date.now() + 10 });
    mine.abort();
    expect(await codeOf(waiting)).toBe(DinferErrorCode.ABORTED);
    expect(await codeOf(late)).toBe(DinferErrorCode.TIMEOUT);
    fake.calls[2]!.release();
    expect((await lead).cached).toBeUndefined();
    expect(fake.calls).toHaveLength(3);
  });

  it('passes unknown models through, refuses a bad budget, and counts hits and misses', async () => {
    const counts: Record<string, number> = {};
    const metrics: Metrics = {
      increment: (name, _labels, value = 1) => {
        counts[name] = (counts[name] ?? 0) + value;
      },
      observe: () => {},
      set: () => {},
    };
    const fake = fakeService();
    const cache = cachingService(fake.service, { maxBytes: 64, metrics });
    expect(await codeOf(cache.infer('other', [tensor([1, 1], [1])]))).toBe(DinferErrorCode.UNKNOWN_MODEL);
    await cache.infer('m', [tensor([1, 1], [1])]);
    await cache.infer('m', [tensor([1, 1], [1])]);
    await cache.infer('m', [tensor([1, 1], [1])]);
    expect(counts).toEqual({ dinfer_cache_misses_total: 1, dinfer_cache_hits_total: 2 });
    for (const maxBytes of [0, -1, 1.5, Number.NaN]) {
      expect(() => cachingService(fake.service, { maxBytes })).toThrow(/maxBytes/);
    }
  });

  it('in front of a batcher, answers hits without queueing', async () => {
    const fake = fakeService();
    const batcher = batchingService(fake.service, { maxBatchSize: 4, maxDelayMs: 600, maxQueue: 8 });
    const cache = cachingService(batcher, { maxBytes: 1024 });
    const [p, q] = await Promise.all([
      cache.infer('m', [tensor([1, 2], [1, 2])]),
      cache.infer('m', [tensor([1, 2], [3, 4])]),
    ]);
    expect(fake.calls).toHaveLength(1); // one batch of two rows
    expect(fake.calls[0]!.inputs[0]!.shape).toEqual([2, 2]);
    expect(Array.from(p!.outputs[0]!.data)).toEqual(expected([1, 2]));
    expect(Array.from(q!.outputs[0]!.data)).toEqual(expected([3, 4]));
    const started = performance.now();
    const hit = await cache.infer('m', [tensor([1, 2], [3, 4])]);
    expect(performance.now() - started).toBeLessThan(300); // no 600 ms batching delay
    expect(hit.cached).toBe(true);
    expect(fake.calls).toHaveLength(1);
  });
});
