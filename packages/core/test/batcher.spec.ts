import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DinferError, DinferErrorCode, isDinferError } from '../src/errors.js';
import type { Metrics } from '../src/metrics.js';
import { initBackend } from '../src/node/backend.js';
import { concatRows, sliceRows } from '../src/serving/batch-tensors.js';
import { batchingService } from '../src/serving/batching-service.js';
import type {
  InferenceService,
  InferOptions,
  InferResult,
  ServedModel,
} from '../src/serving/inference-service.js';
import { localInferenceService } from '../src/serving/local-service.js';
import type { TensorData } from '../src/tensor/types.js';

/** One call the fake inner service received. */
interface Call {
  readonly model: string;
  readonly inputs: readonly TensorData[];
  readonly options: InferOptions;
  readonly rows: number;
  release(): void;
}

const MODEL: ServedModel = {
  name: 'm',
  version: '7',
  // A free second dimension, so requests of different widths are valid and must not be mixed.
  inputs: [{ name: 'x', shape: [null, null], dtype: 'float32' }],
  outputs: [
    { name: 'sum', shape: [null, 2], dtype: 'float32' },
    { name: 'first', shape: [null], dtype: 'int32' },
  ],
};

/** What the fake computes for one row: [sum, 10 * x0] and trunc(x0); the tests recompute it per request. */
function expectedOutputs(input: TensorData): { sum: number[]; first: number[] } {
  const [rows, width] = input.shape as [number, number];
  const sum: number[] = [];
  const first: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = Array.from(input.data.subarray(r * width, (r + 1) * width));
    sum.push(Math.fround(row.reduce((a, b) => a + b, 0)), Math.fround(10 * row[0]!));
    first.push(Math.trunc(row[0]!));
  }
  return { sum, first };
}

/**
 * A fake inner service that records its calls. With `manual`, each call waits for
 * `release()`; otherwise it answers on the next macrotask.
 */
function fakeService(options: { manual?: boolean; fail?: Error } = {}) {
  const calls: Call[] = [];
  let inflight = 0;
  let maxInflight = 0;
  const service: InferenceService = {
    models: () => [MODEL],
    health: () => ({ live: true, ready: true, degraded: false }),
    async infer(model, inputs, infer = {}) {
      if (model !== MODEL.name)
        throw new DinferError(DinferErrorCode.UNKNOWN_MODEL, `unknown model ${model}`);
      let release!: () => void;
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      const x = inputs[0]!;
      calls.push({ model, inputs, options: infer, rows: x.shape[0]!, release });
      inflight++;
      maxInflight = Math.max(maxInflight, inflight);
      try {
        if (options.manual) await released;
        else await new Promise((resolve) => setTimeout(resolve, 1));
      } finally {
        inflight--;
      }
      if (options.fail) throw options.fail;
      const rows = x.shape[0]!;
      const { sum, first } = expectedOutputs(x);
      return {
        model,
        version: MODEL.version,
        outputs: [
          { name: 'sum', dtype: 'float32', shape: [rows, 2], data: Float32Array.from(sum) },
          { name: 'first', dtype: 'int32', shape: [rows], data: Int32Array.from(first) },
        ],
        nodes: [{ stage: 0, worker: 'fake', ms: 1, retries: 0 }],
        degraded: false,
        processingTimeMs: 1,
      } satisfies InferResult;
    },
  };
  return { service, calls, maxInflight: () => maxInflight };
}

let seed = 1;
/** A float32 request of `rows` rows and `width` columns with distinct values. */
function request(rows: number, width = 3): TensorData {
  const data = new Float32Array(rows * width);
  for (let i = 0; i < data.length; i++) data[i] = seed++ + i / 8;
  return { name: 'x', dtype: 'float32', shape: [rows, width], data };
}

function expectOwnRows(result: InferResult, input: TensorData): void {
  const rows = input.shape[0]!;
  const { sum, first } = expectedOutputs(input);
  expect(result.outputs[0]!.shape).toEqual([rows, 2]);
  expect(Array.from(result.outputs[0]!.data)).toEqual(sum);
  expect(result.outputs[1]!.shape).toEqual([rows]);
  expect(Array.from(result.outputs[1]!.data)).toEqual(first);
}

function expectEachOwnRows(results: readonly InferResult[], inputs: readonly TensorData[]): void {
  expect(results).toHaveLength(inputs.length);
  for (const [i, result] of results.entries()) expectOwnRows(result, inputs[i]!);
}

const codeOf = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'resolved',
    (error: unknown) => (isDinferError(error) ? error.code : `other: ${String(error)}`),
  );

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `check()` holds (polling), failing after `ms`. */
async function until(check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await tick(1);
  }
}

describe('row helpers', () => {
  it('concatenates along dimension 0 and slices rows back', () => {
    const a = request(2);
    const b = request(1);
    const joined = concatRows([a, b]);
    expect(joined.shape).toEqual([3, 3]);
    expect(Array.from(joined.data)).toEqual([...a.data, ...b.data]);
    expect(Array.from(sliceRows(joined, 2, 1).data)).toEqual(Array.from(b.data));
    expect(() => concatRows([a, request(1, 4)])).toThrow(/cannot batch/);
    expect(() => sliceRows(joined, 2, 2)).toThrow(DinferError);
  });
});

describe('batchingService', () => {
  it('joins requests of mixed row counts into one call and gives each caller its own rows', async () => {
    const fake = fakeService();
    const batcher = batchingService(fake.service, { maxBatchSize: 8, maxDelayMs: 30, maxQueue: 16 });
    const inputs = [request(1), request(3), request(2), request(1)];
    const results = await Promise.all(
      inputs.map((x) => batcher.infer('m', [x], { requestId: `r${x.data[0]}` })),
    );
    expect(fake.calls).toHaveLength(1);
    expect(fake.calls[0]!.rows).toBe(7);
    expect(fake.calls[0]!.options.requestId).toMatch(/^batch-/);
    results.forEach((result, i) => {
      expectOwnRows(result, inputs[i]!);
      expect(result.version).toBe('7');
      expect(result.nodes).toEqual([{ stage: 0, worker: 'fake', ms: 1, retries: 0 }]);
    });
    expect(batcher.models()).toEqual([MODEL]);
    expect(batcher.health()).toEqual({ live: true, ready: true, degraded: false });
  });

  it('flushes as soon as a batch is full, and the rest after the delay', async () => {
    const fake = fakeService();
    const batcher = batchingService(fake.service, { maxBatchSize: 4, maxDelayMs: 800, maxQueue: 16 });
    const started = performance.now();
    const inputs = Array.from({ length: 6 }, () => request(1));
    const pending = inputs.map((x) => batcher.infer('m', [x]));
    // The first four fill a batch: dispatched at once, not after the delay.
    expect(fake.calls.map((c) => c.rows)).toEqual([4]);
    const firstFour = await Promise.all(pending.slice(0, 4));
    expect(performance.now() - started).toBeLessThan(400); // well before the 800 ms delay
    expect(batcher.queueLength()).toBe(2);
    const lastTwo = await Promise.all(pending.slice(4));
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
    expect(fake.calls.map((c) => c.rows)).toEqual([4, 2]);
    expectEachOwnRows([...firstFour, ...lastTwo], inputs);
  });

  it('flushes a lone request after maxDelayMs', async () => {
    const fake = fakeService();
    const batcher = batchingService(fake.service, { maxBatchSize: 8, maxDelayMs: 40, maxQueue: 16 });
    const started = performance.now();
    const x = request(2);
    const result = await batcher.infer('m', [x]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(38);
    expect(fake.calls).toHaveLength(1);
    expect(fake.calls[0]!.inputs[0]).toBe(x);
    expectOwnRows(result, x);
  });

  it('with flushWhenIdle, dispatches a lone request at once and batches while busy', async () => {
    const fake = fakeService({ manual: true });
    const batcher = batchingService(fake.service, {
      maxBatchSize: 8,
      maxDelayMs: 10_000,
      maxQueue: 16,
      maxConcurrentBatches: 1,
      flushWhenIdle: true,
    });
    const first = request(1);
    const pendingFirst = batcher.infer('m', [first]);
    await new Promise((r) => setTimeout(r, 5));
    expect(fake.calls.map((c) => c.rows)).toEqual([1]); // no 10 s wait
    // While it runs, three more queue up and leave together when it finishes.
    const rest = [request(1), request(2), request(1)];
    const pendingRest = rest.map((x) => batcher.infer('m', [x]));
    await new Promise((r) => setTimeout(r, 5));
    expect(fake.calls).toHaveLength(1);
    fake.calls[0]!.release();
    expectOwnRows(await pendingFirst, first);
    await new Promise((r) => setTimeout(r, 5));
    expect(fake.calls.map((c) => c.rows)).toEqual([1, 4]);
    fake.calls[1]!.release();
    expectEachOwnRows(await Promise.all(pendingRest), rest);
  });

  it('with flushWhenIdle, dispatches at once while a slot is free, and batches once all are busy', async () => {
    const fake = fakeService({ manual: true });
    const batcher = batchingService(fake.service, {
      maxBatchSize: 8,
      maxDelayMs: 10_000,
      maxQueue: 16,
      maxConcurrentBatches: 2,
      flushWhenIdle: true,
    });
    // Two slots: the first two requests leave alone, at once, though a batch is running.
    const early = [request(1), request(1)];
    const pendingEarly: Promise<InferResult>[] = [];
    for (const x of early) {
      pendingEarly.push(batcher.infer('m', [x]));
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(fake.calls.map((c) => c.rows)).toEqual([1, 1]);
    // Both slots busy: the next ones wait, and leave together when a slot frees.
    const rest = [request(1), request(2)];
    const pendingRest = rest.map((x) => batcher.infer('m', [x]));
    await new Promise((r) => setTimeout(r, 5));
    expect(fake.calls).toHaveLength(2);
    fake.calls[0]!.release();
    await new Promise((r) => setTimeout(r, 5));
    expect(fake.calls.map((c) => c.rows)).toEqual([1, 1, 3]);
    fake.calls[1]!.release();
    fake.calls[2]!.release();
    expectEachOwnRows(await Promise.all(pendingEarly), early);
    expectEachOwnRows(await Promise.all(pendingRest), rest);
  });

  it('never exceeds maxBatchSize rows, except a request that alone is larger', async () => {
    const fake = fakeService();
    const batcher = batchingService(fake.service, { maxBatchSize: 4, maxDelayMs: 20, maxQueue: 16 });
    const inputs = [request(3), request(2), request(5), request(1), request(1), request(2)];
    const results = await Promise.all(inputs.map((x) => batcher.infer('m', [x])));
    // FIFO: [3] cannot take the 2 -> alone; [2] cannot take the 5; [5] alone; [1,1,2] fill 4.
    expect(fake.calls.map((c) => c.rows)).toEqual([3, 2, 5, 4]);
    expectEachOwnRows(results, inputs);
  });

  it('keeps requests of different example shapes in different batches', async () => {
    const fake = fakeService();
    const batcher = batchingService(fake.service, { maxBatchSize: 8, maxDelayMs: 10, maxQueue: 16 });
    const inputs = [request(1, 3), request(1, 4), request(2, 3), request(1, 4)];
    const results = await Promise.all(inputs.map((x) => batcher.infer('m', [x])));
    expect(fake.calls.map((c) => c.inputs[0]!.shape).sort()).toEqual([
      [2, 4],
      [3, 3],
    ]);
    expectEachOwnRows(results, inputs);
  });

  it('passes requests through one by one at maxBatchSize 1', async () => {
    const fake = fakeService();
    const batcher = batchingService(fake.service, { maxBatchSize: 1, maxDelayMs: 1000, maxQueue: 16 });
    const inputs = [request(1), request(2), request(1)];
    const started = performance.now();
    const results = await Promise.all(inputs.map((x) => batcher.infer('m', [x], { requestId: 'id' })));
    expect(performance.now() - started).toBeLessThan(500); // no waiting for the 1 s delay
    expect(fake.calls).toHaveLength(3);
    fake.calls.forEach((call, i) => {
      expect(call.inputs[0]).toBe(inputs[i]);
      expect(call.options.requestId).toBe('id');
    });
    expectEachOwnRows(results, inputs);
  });

  it('refuses requests beyond maxQueue with OVERLOADED and a retryAfterMs', async () => {
    const fake = fakeService({ manual: true });
    const batcher = batchingService(fake.service, {
      maxBatchSize: 1,
      maxDelayMs: 0,
      maxQueue: 2,
      maxConcurrentBatches: 1,
    });
    const accepted = [
      batcher.infer('m', [request(1)]),
      batcher.infer('m', [request(1)]),
      batcher.infer('m', [request(1)]),
    ];
    expect(batcher.inflightBatches()).toBe(1);
    expect(batcher.queueLength()).toBe(2);
    const refused = await batcher.infer('m', [request(1)]).catch((error: unknown) => error);
    expect(isDinferError(refused, DinferErrorCode.OVERLOADED)).toBe(true);
    const retryAfterMs = (refused as DinferError).details.retryAfterMs;
    expect(typeof retryAfterMs === 'number' && retryAfterMs > 0).toBe(true);
    for (let i = 0; i < 3; i++) {
      await until(() => fake.calls.length > i);
      fake.calls[i]!.release();
    }
    expect((await Promise.all(accepted)).length).toBe(3);
    expect(batcher.queueLength()).toBe(0);
  });

  it('fails a request whose deadline passes in the queue with TIMEOUT, without calling inner', async () => {
    const fake = fakeService({ manual: true });
    const batcher = batchingService(fake.service, {
      maxBatchSize: 1,
      maxDelayMs: 0,
      maxQueue: 8,
      maxConcurrentBatches: 1,
    });
    const first = batcher.infer('m', [request(1)]);
    const started = Date.now();
    const late = await codeOf(batcher.infer('m', [request(1)], { deadline: Date.now() + 30 }));
    expect(late).toBe(DinferErrorCode.TIMEOUT);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    expect(batcher.queueLength()).toBe(0);
    fake.calls[0]!.release();
    await first;
    await tick(5);
    expect(fake.calls).toHaveLength(1);

    // Also while waiting for batch-mates, and when the deadline has already passed.
    const slow = batchingService(fake.service, { maxBatchSize: 8, maxDelayMs: 500, maxQueue: 8 });
    expect(await codeOf(slow.infer('m', [request(1)], { deadline: Date.now() + 20 }))).toBe(
      DinferErrorCode.TIMEOUT,
    );
    expect(await codeOf(slow.infer('m', [request(1)], { deadline: Date.now() - 1 }))).toBe(
      DinferErrorCode.TIMEOUT,
    );
    expect(fake.calls).toHaveLength(1);
  });

  it('gives the inner call the latest deadline of its requests', async () => {
    const fake = fakeService();
    const batcher = batchingService(fake.service, { maxBatchSize: 2, maxDelayMs: 100, maxQueue: 8 });
    const now = Date.now();
    await Promise.all([
      batcher.infer('m', [request(1)], { deadline: now + 5000 }),
      batcher.infer('m', [request(1)], { deadline: now + 9000 }),
    ]);
    expect(fake.calls[0]!.options.deadline).toBe(now + 9000);
  });

  it('lets aborted requests leave the queue and a running batch; aborts the inner call once all left', async () => {
    const fake = fakeService({ manual: true });
    const batcher = batchingService(fake.service, {
      maxBatchSize: 2,
      maxDelayMs: 0,
      maxQueue: 8,
      maxConcurrentBatches: 1,
    });
    const a = new AbortController();
    const b = new AbortController();
    const c = new AbortController();
    const first = batcher.infer('m', [request(1)], { signal: a.signal });
    const second = batcher.infer('m', [request(1)], { signal: b.signal });
    const queued = batcher.infer('m', [request(1)], { signal: c.signal });
    // The first leaves at once; the other two wait for the only slot.
    expect(fake.calls.map((x) => x.rows)).toEqual([1]);
    c.abort();
    expect(await codeOf(queued)).toBe(DinferErrorCode.ABORTED);
    expect(batcher.queueLength()).toBe(1);
    a.abort();
    expect(await codeOf(first)).toBe(DinferErrorCode.ABORTED);
    expect(fake.calls[0]!.options.signal?.aborted).toBe(true);
    fake.calls[0]!.release();
    await until(() => fake.calls.length === 2);
    expect(fake.calls[1]!.rows).toBe(1); // the aborted third request never reached inner

    // A running batch of two: one leaves, the other still gets its rows.
    const x = request(1);
    const y = request(1);
    const stay = batcher.infer('m', [x]);
    const d = new AbortController();
    const leave = batcher.infer('m', [y], { signal: d.signal });
    fake.calls[1]!.release();
    expect(await second).toBeDefined();
    await until(() => fake.calls.length === 3);
    expect(fake.calls[2]!.rows).toBe(2);
    d.abort();
    expect(await codeOf(leave)).toBe(DinferErrorCode.ABORTED);
    expect(fake.calls[2]!.options.signal?.aborted).toBe(false);
    fake.calls[2]!.release();
    expectOwnRows(await stay, x);
  });

  it('caps the inner calls in flight and grows batches while they are busy', async () => {
    const fake = fakeService({ manual: true });
    const batcher = batchingService(fake.service, {
      maxBatchSize: 4,
      maxDelayMs: 0,
      maxQueue: 32,
      maxConcurrentBatches: 2,
    });
    const inputs = Array.from({ length: 9 }, () => request(1));
    const pending: Promise<InferResult>[] = [];
    for (const x of inputs) {
      pending.push(batcher.infer('m', [x]));
      await tick(2); // arrive one by one: each leaves at once while a slot is free
    }
    expect(fake.calls.map((c) => c.rows)).toEqual([1, 1]);
    expect(batcher.queueLength()).toBe(7);
    fake.calls[0]!.release();
    await until(() => fake.calls.length === 3);
    expect(fake.calls[2]!.rows).toBe(4); // the waiting requests joined one full batch
    fake.calls[1]!.release();
    await until(() => fake.calls.length === 4);
    expect(fake.calls[3]!.rows).toBe(3);
    fake.calls[2]!.release();
    fake.calls[3]!.release();
    const results = await Promise.all(pending);
    expectEachOwnRows(results, inputs);
    expect(fake.maxInflight()).toBe(2);
  });

  it('fails every request of a failed batch with its error', async () => {
    const boom = new DinferError(DinferErrorCode.NO_WORKER, 'no worker for stage 1');
    const fake = fakeService({ fail: boom });
    const batcher = batchingService(fake.service, { maxBatchSize: 4, maxDelayMs: 5, maxQueue: 8 });
    const outcomes = await Promise.allSettled([
      batcher.infer('m', [request(1)]),
      batcher.infer('m', [request(2)]),
    ]);
    expect(fake.calls).toHaveLength(1);
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      expect((outcome as PromiseRejectedResult).reason).toBe(boom);
    }
  });

  it('refuses malformed requests before queueing and passes unknown models through', async () => {
    const fake = fakeService();
    const batcher = batchingService(fake.service, { maxBatchSize: 4, maxDelayMs: 5, maxQueue: 8 });
    const two = { name: 'x', dtype: 'float32', shape: [2, 3], data: new Float32Array(5) } as const;
    expect(await codeOf(batcher.infer('m', [two]))).toBe(DinferErrorCode.TENSOR_INVALID);
    expect(await codeOf(batcher.infer('m', [request(1), request(2)]))).toBe(DinferErrorCode.TENSOR_INVALID);
    expect(await codeOf(batcher.infer('m', []))).toBe(DinferErrorCode.TENSOR_INVALID);
    expect(fake.calls).toHaveLength(0);
    expect(await codeOf(batcher.infer('other', [request(1)]))).toBe(DinferErrorCode.UNKNOWN_MODEL);
    for (const bad of [
      { maxBatchSize: 0, maxDelayMs: 5, maxQueue: 8 },
      { maxBatchSize: 2.5, maxDelayMs: 5, maxQueue: 8 },
      { maxBatchSize: 2, maxDelayMs: -1, maxQueue: 8 },
      { maxBatchSize: 2, maxDelayMs: 5, maxQueue: 0 },
      { maxBatchSize: 2, maxDelayMs: 5, maxQueue: 8, maxConcurrentBatches: 0 },
    ]) {
      expect(() => batchingService(fake.service, bad)).toThrow(/batching option/);
    }
  });

  it('reports batch sizes, queue waits and the queue length', async () => {
    const recorded: { kind: string; name: string; value: number }[] = [];
    const metrics: Metrics = {
      increment: (name, _labels, value = 1) => recorded.push({ kind: 'inc', name, value }),
      observe: (name, _labels, value) => recorded.push({ kind: 'obs', name, value }),
      set: (name, _labels, value) => recorded.push({ kind: 'set', name, value }),
    };
    const fake = fakeService();
    const batcher = batchingService(fake.service, { maxBatchSize: 8, maxDelayMs: 20, maxQueue: 8, metrics });
    await Promise.all([batcher.infer('m', [request(2)]), batcher.infer('m', [request(3)])]);
    const sizes = recorded.filter((r) => r.name === 'dinfer_batch_size').map((r) => r.value);
    expect(sizes).toEqual([5]);
    const waits = recorded.filter((r) => r.name === 'dinfer_queue_wait_seconds').map((r) => r.value);
    expect(waits).toHaveLength(2);
    for (const w of waits) expect(w).toBeGreaterThanOrEqual(0.015);
    const lengths = recorded.filter((r) => r.name === 'dinfer_queue_length').map((r) => r.value);
    expect(lengths).toEqual([1, 2, 0]);
  });
});

describe('batchingService over localInferenceService', () => {
  let model: tf.LayersModel;

  beforeAll(async () => {
    await initBackend();
    const input = tf.input({ shape: [6, 6, 2] });
    const conv = tf.layers.conv2d({ filters: 3, kernelSize: 3, activation: 'relu' }).apply(input);
    const flat = tf.layers.flatten().apply(conv);
    const out = tf.layers.dense({ units: 4, activation: 'softmax' }).apply(flat) as tf.SymbolicTensor;
    model = tf.model({ inputs: input, outputs: out });
  });

  afterAll(() => model.dispose());

  it('answers each request as model.predict would on that request alone', async () => {
    const local = localInferenceService(model, { name: 'small' });
    const rowsSeen: number[] = [];
    const counting: InferenceService = {
      models: () => local.models(),
      health: () => local.health(),
      infer: (name, inputs, options) => {
        rowsSeen.push(inputs[0]!.shape[0]!);
        return local.infer(name, inputs, options);
      },
    };
    const batcher = batchingService(counting, { maxBatchSize: 8, maxDelayMs: 20, maxQueue: 16 });
    const before = tf.memory().numTensors;
    const inputs: TensorData[] = [1, 2, 1, 3, 1].map((rows, r) => {
      const data = new Float32Array(rows * 72);
      for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37 + r);
      return { name: 'x', dtype: 'float32', shape: [rows, 6, 6, 2], data };
    });
    const results = await Promise.all(inputs.map((x) => batcher.infer('small', [x])));
    expect(rowsSeen).toEqual([8]);
    results.forEach((result, i) => {
      const x = inputs[i]!;
      const expected = tf.tidy(() =>
        (model.predict(tf.tensor(x.data, [...x.shape])) as tf.Tensor).dataSync(),
      );
      const got = result.outputs[0]!;
      expect(got.shape).toEqual([x.shape[0], 4]);
      expect(got.data.length).toBe(expected.length);
      let worst = 0;
      for (const [k, v] of expected.entries()) {
        worst = Math.max(worst, Math.abs(got.data[k]! - v) - 1e-4 * Math.abs(v));
      }
      expect(worst).toBeLessThanOrEqual(1e-5);
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});
