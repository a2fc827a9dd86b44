import {
  DinferError,
  DinferErrorCode,
  type InferenceService,
  type InferOptions,
  type InferResult,
  localInferenceService,
  type ServedModel,
  type TensorData,
} from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpApi } from '../src/index.js';
import { prng, randomizeWeights } from './fixtures/random-weights.js';

/** [null,224,224,3] -> pool -> dense(10, softmax). */
function imageModel(): tf.LayersModel {
  const input = tf.input({ shape: [224, 224, 3], name: 'image' });
  const pooled = tf.layers.averagePooling2d({ poolSize: 28, strides: 28 }).apply(input) as tf.SymbolicTensor;
  const flat = tf.layers.flatten().apply(pooled) as tf.SymbolicTensor;
  const probs = tf.layers
    .dense({ units: 10, activation: 'softmax', name: 'probs' })
    .apply(flat) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: probs, name: 'image_model' });
  randomizeWeights(model, 3);
  return model;
}

/** Two inputs (float32 features, int32 ids) and two outputs (probabilities, raw scores). */
function multiModel(): tf.LayersModel {
  const x = tf.input({ shape: [4], name: 'x' });
  const ids = tf.input({ shape: [3], dtype: 'int32', name: 'ids' });
  const embedded = tf.layers.embedding({ inputDim: 10, outputDim: 2 }).apply(ids) as tf.SymbolicTensor;
  const flat = tf.layers.flatten().apply(embedded) as tf.SymbolicTensor;
  const joined = tf.layers.concatenate().apply([x, flat]) as tf.SymbolicTensor;
  const probs = tf.layers
    .dense({ units: 5, activation: 'softmax', name: 'probs' })
    .apply(joined) as tf.SymbolicTensor;
  const raw = tf.layers.dense({ units: 2, name: 'raw' }).apply(joined) as tf.SymbolicTensor;
  const model = tf.model({ inputs: [x, ids], outputs: [probs, raw], name: 'multi' });
  randomizeWeights(model, 5);
  return model;
}

const LABELS = Array.from({ length: 10 }, (_, i) => `class-${i}`);

/** Deterministic values in [0, 1) with a nested [224,224,3] form and the flat Float32Array. */
function image(seed: number): { nested: number[][][]; flat: Float32Array } {
  const next = prng(seed);
  const flat = new Float32Array(224 * 224 * 3);
  const nested: number[][][] = [];
  let i = 0;
  for (let y = 0; y < 224; y++) {
    const row: number[][] = [];
    for (let x = 0; x < 224; x++) {
      const px: number[] = [];
      for (let c = 0; c < 3; c++) {
        const v = Math.round(next() * 1000) / 1000;
        px.push(v);
        flat[i++] = v;
      }
      row.push(px);
    }
    nested.push(row);
  }
  return { nested, flat };
}

/** `nested` with its second value (`[0][0][1]`) replaced by the string `"NaN"`. */
function withNaNString(nested: number[][][]): unknown[][][] {
  const copy: unknown[][][] = nested.map((row) => row.map((px) => [...px]));
  copy[0]![0]![1] = 'NaN';
  return copy;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    expect(Math.abs(actual[i]! - e)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(e)));
  }
}

/** Top-5 by a full sort of one example's row (an independent computation). */
function sortedTop5(row: ArrayLike<number>): number[] {
  return Array.from(row, (score, index) => ({ index, score }))
    .sort((a, b) => b.score - a.score || a.index - b.index)
    .slice(0, 5)
    .map((c) => c.index);
}

let imageNet: tf.LayersModel;
let multi: tf.LayersModel;
let app: FastifyInstance;
let multiApp: FastifyInstance;

beforeAll(async () => {
  await initBackend();
  imageNet = imageModel();
  multi = multiModel();
  app = createHttpApi(localInferenceService(imageNet, { name: 'img', version: '7', labels: LABELS }), {
    serverName: 'test-server',
    version: '1.2.3',
  });
  multiApp = createHttpApi(localInferenceService(multi, { name: 'multi' }));
});

afterAll(async () => {
  await app.close();
  await multiApp.close();
  imageNet.dispose();
  multi.dispose();
});

describe('POST /api/infer', () => {
  it('answers one nested 224x224x3 example with the top-5 of model.predict', async () => {
    const { nested, flat } = image(11);
    const before = tf.memory().numTensors;
    const res = await app.inject({ method: 'POST', url: '/api/infer', payload: { input: nested } });
    expect(res.statusCode).toBe(200);
    expect(tf.memory().numTensors).toBe(before);
    expect(res.headers['x-request-id']).toBeDefined();
    const body = res.json();
    const expected = tf.tidy(() =>
      (imageNet.predict(tf.tensor(flat, [1, 224, 224, 3])) as tf.Tensor).dataSync(),
    );
    expect(body.model).toBe('img');
    expect(body.version).toBe('7');
    expect(body.outputShape).toEqual([1, 10]);
    expect(body.degraded).toBe(false);
    expect(body.predictions).toHaveLength(1);
    const top = body.predictions[0].top as { index: number; label: string; score: number }[];
    expect(top.map((c) => c.index)).toEqual(sortedTop5(expected));
    expect(top.map((c) => c.label)).toEqual(top.map((c) => `class-${c.index}`));
    expectClose(
      top.map((c) => c.score),
      top.map((c) => expected[c.index]!),
    );
    expect(body.nodes).toEqual([{ stage: 0, worker: 'local', ms: expect.any(Number) }]);
    expect(body.processingTimeMs).toBeGreaterThan(0);
  });

  it('answers a batch [N,224,224,3] per example, with an explicit model name', async () => {
    const a = image(1);
    const b = image(2);
    const res = await app.inject({
      method: 'POST',
      url: '/api/infer',
      payload: { model: 'img', input: [a.nested, b.nested] },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    const batch = new Float32Array(a.flat.length * 2);
    batch.set(a.flat);
    batch.set(b.flat, a.flat.length);
    const expected = tf.tidy(() =>
      (imageNet.predict(tf.tensor(batch, [2, 224, 224, 3])) as tf.Tensor).dataSync(),
    );
    expect(body.outputShape).toEqual([2, 10]);
    expect(body.predictions).toHaveLength(2);
    for (let n = 0; n < 2; n++) {
      const row = expected.slice(n * 10, n * 10 + 10);
      const top = body.predictions[n].top as { index: number; score: number }[];
      expect(top.map((c) => c.index)).toEqual(sortedTop5(row));
      expectClose(
        top.map((c) => c.score),
        top.map((c) => row[c.index]!),
      );
    }
  });

  it('refuses bad input with 400 and a message that says what was expected', async () => {
    const cases: [unknown, RegExp][] = [
      [
        {
          input: [
            [1, 2, 3],
            [4, 5, 6],
          ],
        },
        /input shape \[2,3\] does not match model input \[null,224,224,3\]/,
      ],
      [
        // A batch of one image of the model's shape (checked first) whose second value is "NaN".
        { input: [withNaNString(image(4).nested)] },
        /input\[0\]\[0\]\[0\]\[1\] is the string "NaN"; expected a finite number/,
      ],
      // An image of the model's shape but for one short row.
      [{ input: [image(5).nested.map((row, y) => (y === 5 ? row.slice(0, 100) : row))] }, /ragged/],
      [{ input: 'pixels' }, /input must be an array/],
      [{}, /no "input"/],
      [[1, 2, 3], /body must be a JSON object/],
      [{ input: [1], model: 5 }, /"model" must be a string/],
    ];
    for (const [payload, message] of cases) {
      const res = await app.inject({ method: 'POST', url: '/api/infer', payload: payload as object });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error).toMatch(message);
      expect(res.json().code).toBe(DinferErrorCode.INVALID_ARGUMENT);
    }
  });

  it('answers 404 for an unknown model, listing the served ones', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/infer',
      payload: { model: 'nope', input: [1] },
    });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toBe('unknown model "nope"; served models: "img"');
  });

  it('sends multi-input models to the v2 route', async () => {
    const res = await multiApp.inject({
      method: 'POST',
      url: '/api/infer',
      payload: { input: [1, 2, 3, 4] },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(/takes 2 inputs; use POST \/v2\/models\/multi\/infer/);
  });

  it('answers 413 with a JSON message when the body is over the limit, and 400 for bad JSON', async () => {
    const small = createHttpApi(localInferenceService(imageNet, { name: 'img' }), { bodyLimitBytes: 1024 });
    const res = await small.inject({
      method: 'POST',
      url: '/api/infer',
      payload: { input: Array.from({ length: 1000 }, () => 0.5) },
    });
    expect(res.statusCode).toBe(413);
    expect(res.json().error).toBe('request body exceeds the limit of 1024 bytes');
    const broken = await small.inject({
      method: 'POST',
      url: '/api/infer',
      headers: { 'content-type': 'application/json' },
      payload: '{"input": [1, 2',
    });
    expect(broken.statusCode).toBe(400);
    expect(broken.json().error).toEqual(expect.any(String));
    await small.close();
  });
});

describe('KServe v2', () => {
  const multiInputs = (batch: number) => {
    const next = prng(9);
    const x = Float32Array.from({ length: batch * 4 }, () => Math.round(next() * 1000) / 500 - 1);
    const ids = Int32Array.from({ length: batch * 3 }, () => Math.floor(next() * 10));
    return { x, ids };
  };

  it('runs a multi-input, multi-output model (flat and nested data) like model.predict', async () => {
    const { x, ids } = multiInputs(2);
    const res = await multiApp.inject({
      method: 'POST',
      url: '/v2/models/multi/infer',
      payload: {
        id: 'req-1',
        inputs: [
          {
            name: 'ids',
            shape: [2, 3],
            datatype: 'INT32',
            data: [Array.from(ids.slice(0, 3)), Array.from(ids.slice(3))],
          },
          { name: 'x', shape: [2, 4], datatype: 'FP32', data: Array.from(x) },
        ],
      },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    const [probs, raw] = tf.tidy(() =>
      (multi.predict([tf.tensor(x, [2, 4]), tf.tensor(ids, [2, 3], 'int32')]) as tf.Tensor[]).map((t) =>
        t.dataSync(),
      ),
    );
    expect(body.model_name).toBe('multi');
    expect(body.model_version).toBe('1');
    expect(body.id).toBe('req-1');
    expect(body.parameters.degraded).toBe(false);
    expect(body.outputs.map((o: { name: string }) => o.name)).toEqual(['probs', 'raw']);
    expect(body.outputs[0]).toMatchObject({ shape: [2, 5], datatype: 'FP32' });
    expect(body.outputs[1]).toMatchObject({ shape: [2, 2], datatype: 'FP32' });
    expectClose(body.outputs[0].data, probs!);
    expectClose(body.outputs[1].data, raw!);
  });

  it('accepts UINT8 for an int32 input, the versioned route, and a subset of outputs', async () => {
    const { x, ids } = multiInputs(1);
    const res = await multiApp.inject({
      method: 'POST',
      url: '/v2/models/multi/versions/1/infer',
      payload: {
        inputs: [
          { name: 'x', shape: [1, 4], datatype: 'FP32', data: [Array.from(x)] },
          { name: 'ids', shape: [1, 3], datatype: 'UINT8', data: Array.from(ids) },
        ],
        outputs: [{ name: 'raw' }],
      },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.id).toBeUndefined();
    const raw = tf.tidy(() =>
      (multi.predict([tf.tensor(x, [1, 4]), tf.tensor(ids, [1, 3], 'int32')]) as tf.Tensor[])[1]!.dataSync(),
    );
    expect(body.outputs).toHaveLength(1);
    expect(body.outputs[0].name).toBe('raw');
    expectClose(body.outputs[0].data, raw);
  });

  it('refuses bad requests with 400 and what was expected', async () => {
    const x = { name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] };
    const ids = { name: 'ids', shape: [1, 3], datatype: 'INT32', data: [1, 2, 3] };
    const cases: [unknown, RegExp][] = [
      [{ inputs: [x] }, /missing input\(s\) \["ids"\]; model "multi" expects inputs \["x", "ids"\]/],
      [{ inputs: [x, ids, { ...x, name: 'y' }] }, /unknown input "y"/],
      [{ inputs: [x, x, ids] }, /input "x" is given twice/],
      [
        { inputs: [{ ...x, shape: [1, 5], data: [1, 2, 3, 4, 5] }, ids] },
        /input "x" shape \[1,5\] does not match model input \[null,4\]/,
      ],
      [
        { inputs: [{ ...x, data: [1, 2, 3] }, ids] },
        /inputs\[0\]\.data has shape \[3\] \(3 values\); shape \[1,4\] needs 4 values/,
      ],
      [
        {
          inputs: [
            {
              ...x,
              shape: [2, 4],
              data: [
                [1, 2, 3, 4],
                [5, 6, 7],
              ],
            },
            ids,
          ],
        },
        /ragged/,
      ],
      [{ inputs: [{ ...x, data: [1, 2, 'NaN', 4] }, ids] }, /inputs\[0\]\.data\[2\] is the string "NaN"/],
      [
        { inputs: [{ ...x, datatype: 'INT32', data: [1, 2, 3, 4] }, ids] },
        /datatype INT32; the model expects FP32/,
      ],
      [
        { inputs: [{ ...x, datatype: 'FP64' }, ids] },
        /FP64 is not supported; use one of FP32, INT32, UINT8, BOOL/,
      ],
      [{ inputs: [{ ...x, datatype: 'FLOAT' }, ids] }, /"FLOAT" is not a protocol datatype/],
      [{ inputs: [x, { ...ids, data: [1.5, 2, 3] }] }, /inputs\[1\]\.data\[0\] is 1.5; expected an integer/],
      [{ inputs: [x, { ...ids, shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }] }, /disagree on the batch size/],
      [{ inputs: [{ ...x, shape: [0, 4], data: [] }, ids] }, /empty batch/],
      [{ inputs: [{ ...x, shape: [1, -4] }, ids] }, /must hold non-negative integers/],
      [
        { inputs: [x, ids], outputs: [{ name: 'logits' }] },
        /unknown output "logits"; model "multi" has outputs \["probs", "raw"\]/,
      ],
      [{ inputs: [] }, /"inputs" must be a non-empty array/],
      [{ inputs: [x, ids], id: 3 }, /"id" must be a string/],
      [{ inputs: [{ ...x, parameters: { binary_data_size: 16 } }, ids] }, /binary tensor data extension/],
    ];
    for (const [payload, message] of cases) {
      const res = await multiApp.inject({
        method: 'POST',
        url: '/v2/models/multi/infer',
        payload: payload as object,
      });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error).toMatch(message);
    }
  });

  it('answers 404 for an unknown model, version or route', async () => {
    const unknown = await multiApp.inject({
      method: 'POST',
      url: '/v2/models/other/infer',
      payload: { inputs: [] },
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error).toBe('unknown model "other"; served models: "multi"');
    const version = await multiApp.inject({
      method: 'POST',
      url: '/v2/models/multi/versions/9/infer',
      payload: { inputs: [] },
    });
    expect(version.statusCode).toBe(404);
    expect(version.json().error).toBe('model "multi" has no version "9"; available: 1 (active: 1)');
    const route = await multiApp.inject({ method: 'GET', url: '/v3/anything?x=1' });
    expect(route.statusCode).toBe(404);
    expect(route.json()).toEqual({ error: 'no route GET /v3/anything' });
  });

  it('serves health, server metadata, model metadata and model readiness', async () => {
    expect((await app.inject({ method: 'GET', url: '/v2/health/live' })).statusCode).toBe(200);
    const ready = await app.inject({ method: 'GET', url: '/v2/health/ready' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ ready: true, degraded: false });
    expect((await app.inject({ method: 'GET', url: '/v2' })).json()).toEqual({
      name: 'test-server',
      version: '1.2.3',
      extensions: ['binary_tensor_data'],
    });
    expect((await app.inject({ method: 'GET', url: '/v2/models/img/ready' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v2/models/img/versions/7/ready' })).statusCode).toBe(
      200,
    );
    expect((await app.inject({ method: 'GET', url: '/v2/models/img/versions/8/ready' })).statusCode).toBe(
      404,
    );
    expect((await app.inject({ method: 'GET', url: '/v2/models/zzz/ready' })).statusCode).toBe(404);
    const meta = await multiApp.inject({ method: 'GET', url: '/v2/models/multi' });
    expect(meta.json()).toEqual({
      name: 'multi',
      versions: ['1'],
      platform: 'tensorflowjs_layers',
      inputs: [
        { name: 'x', datatype: 'FP32', shape: [-1, 4] },
        { name: 'ids', datatype: 'INT32', shape: [-1, 3] },
      ],
      outputs: [
        { name: 'probs', datatype: 'FP32', shape: [-1, 5] },
        { name: 'raw', datatype: 'FP32', shape: [-1, 2] },
      ],
    });
  });
});

/** A service whose behaviour each test sets: a fixed error, a health, or an echo. */
function stubService(): InferenceService & {
  error?: unknown;
  health_: { live: boolean; ready: boolean; degraded: boolean };
} {
  const model: ServedModel = {
    name: 'stub',
    version: '1',
    inputs: [{ name: 'in', shape: [null, 2], dtype: 'float32' }],
    outputs: [{ name: 'out', shape: [null, 3], dtype: 'bool' }],
  };
  const service = {
    error: undefined as unknown,
    health_: { live: true, ready: true, degraded: false },
    models: () => [model],
    health: () => service.health_,
    async infer(_name: string, inputs: readonly TensorData[]): Promise<InferResult> {
      if (service.error !== undefined) throw service.error;
      const batch = inputs[0]!.shape[0]!;
      return {
        model: 'stub',
        version: '1',
        outputs: [
          {
            name: 'out',
            dtype: 'bool',
            shape: [batch, 3],
            data: Uint8Array.from({ length: batch * 3 }, (_, i) => i % 2),
          },
        ],
        nodes: [
          { stage: 0, worker: 'w1', ms: 1.234, retries: 0 },
          { stage: 1, worker: 'master', ms: 2, retries: 1 },
        ],
        degraded: true,
        processingTimeMs: 3.3,
      };
    },
  };
  return service;
}

describe('service errors and health over HTTP', () => {
  const service = stubService();
  const api = createHttpApi(service);
  afterAll(() => api.close());
  const infer = () =>
    api.inject({
      method: 'POST',
      url: '/v2/models/stub/infer',
      payload: { inputs: [{ name: 'in', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] },
    });

  it('maps service errors to statuses, with Retry-After on 503', async () => {
    const cases: [unknown, number, string | undefined][] = [
      [
        new DinferError(DinferErrorCode.OVERLOADED, 'queue full', { details: { retryAfterMs: 1500 } }),
        503,
        '2',
      ],
      [new DinferError(DinferErrorCode.NO_WORKER, 'no worker for stage 1'), 503, '1'],
      [new DinferError(DinferErrorCode.NOT_READY, 'starting'), 503, '1'],
      [new DinferError(DinferErrorCode.TIMEOUT, 'deadline passed'), 504, undefined],
      [new DinferError(DinferErrorCode.TENSOR_INVALID, 'bad tensor'), 400, undefined],
      [new DinferError(DinferErrorCode.REMOTE, 'worker failed'), 500, undefined],
      [new TypeError('oops'), 500, undefined],
    ];
    for (const [error, status, retryAfter] of cases) {
      service.error = error;
      const res = await infer();
      expect(res.statusCode).toBe(status);
      expect(res.json().error).toBe((error as Error).message);
      expect(res.headers['retry-after']).toBe(retryAfter);
      expect(res.body).not.toMatch(/\n\s+at /);
    }
    service.error = undefined;
  });

  it('returns BOOL outputs as booleans and reports degraded answers and traces', async () => {
    const v2 = await infer();
    expect(v2.statusCode).toBe(200);
    expect(v2.json().outputs).toEqual([
      { name: 'out', shape: [1, 3], datatype: 'BOOL', data: [false, true, false] },
    ]);
    expect(v2.json().parameters).toEqual({ degraded: true, processing_time_ms: 3.3 });
    const simple = await api.inject({
      method: 'POST',
      url: '/api/infer',
      headers: { 'x-request-id': 'abc-123' },
      payload: { input: [5, 6] },
    });
    expect(simple.statusCode).toBe(200);
    expect(simple.headers['x-request-id']).toBe('abc-123');
    expect(simple.json()).toMatchObject({
      degraded: true,
      outputShape: [1, 3],
      predictions: [
        {
          top: [
            { index: 1, score: 1 },
            { index: 0, score: 0 },
            { index: 2, score: 0 },
          ],
        },
      ],
      nodes: [
        { stage: 0, worker: 'w1', ms: 1.23 },
        { stage: 1, worker: 'master', ms: 2 },
      ],
    });
  });

  it('answers 503 with Retry-After when the service is not ready or not live', async () => {
    service.health_ = { live: true, ready: false, degraded: false };
    const ready = await api.inject({ method: 'GET', url: '/v2/health/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.headers['retry-after']).toBe('1');
    expect(ready.json().error).toBe('server is not ready');
    const modelReady = await api.inject({ method: 'GET', url: '/v2/models/stub/ready' });
    expect(modelReady.statusCode).toBe(503);
    expect((await api.inject({ method: 'GET', url: '/v2/health/live' })).statusCode).toBe(200);
    service.health_ = { live: false, ready: false, degraded: false };
    expect((await api.inject({ method: 'GET', url: '/v2/health/live' })).statusCode).toBe(503);
    service.health_ = { live: true, ready: true, degraded: true };
    expect((await api.inject({ method: 'GET', url: '/v2/health/ready' })).json()).toEqual({
      ready: true,
      degraded: true,
    });
  });

  it('passes the request id, a deadline and a live abort signal to the service', async () => {
    const model = multiModel();
    const local = localInferenceService(model, { name: 'multi' });
    const seen: InferOptions[] = [];
    const delayed: InferenceService = {
      models: () => local.models(),
      health: () => local.health(),
      async infer(name, inputs, options = {}) {
        seen.push(options);
        await new Promise((r) => setTimeout(r, 30)); // e.g. queued behind other requests
        return local.infer(name, inputs, options);
      },
    };
    const timed = createHttpApi(delayed, { requestTimeoutMs: 10 });
    const payload = {
      inputs: [
        { name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] },
        { name: 'ids', shape: [1, 3], datatype: 'INT32', data: [1, 2, 3] },
      ],
    };
    const before = Date.now();
    const res = await timed.inject({
      method: 'POST',
      url: '/v2/models/multi/infer',
      headers: { 'x-request-id': 'req-42' },
      payload,
    });
    expect(res.statusCode).toBe(504);
    expect(res.json()).toEqual({
      error: 'request deadline passed before it ran',
      code: DinferErrorCode.TIMEOUT,
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.requestId).toBe('req-42');
    expect(seen[0]!.deadline).toBeGreaterThanOrEqual(before + 10);
    expect(seen[0]!.deadline).toBeLessThanOrEqual(Date.now() + 10);
    expect(seen[0]!.signal?.aborted).toBe(false);

    const untimed = createHttpApi(delayed);
    const ok = await untimed.inject({ method: 'POST', url: '/v2/models/multi/infer', payload });
    expect(ok.statusCode).toBe(200);
    expect(seen[1]!.deadline).toBeUndefined();
    await timed.close();
    await untimed.close();
    model.dispose();
  });

  it('aborts the service call when the client disconnects', async () => {
    let signal: AbortSignal | undefined;
    let settled: (aborted: boolean) => void = () => {};
    const outcome = new Promise<boolean>((resolve) => {
      settled = resolve;
    });
    const waiting: InferenceService = {
      ...stubService(),
      infer(_name, _inputs, options = {}) {
        signal = options.signal;
        return new Promise((_resolve, reject) => {
          const timer = setTimeout(() => {
            settled(false);
            reject(new DinferError(DinferErrorCode.TIMEOUT, 'never aborted'));
          }, 3000);
          options.signal?.addEventListener('abort', () => {
            clearTimeout(timer);
            settled(true);
            reject(new DinferError(DinferErrorCode.ABORTED, 'aborted'));
          });
        });
      },
    };
    const server = createHttpApi(waiting);
    const address = await server.listen({ port: 0, host: '127.0.0.1' });
    const { request } = await import('node:http');
    const body = JSON.stringify({ input: [1, 2] });
    const req = request(`${address}/api/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    req.on('error', () => {});
    req.end(body);
    const started = Date.now();
    while (signal === undefined && Date.now() - started < 3000) await new Promise((r) => setTimeout(r, 5));
    expect(signal?.aborted).toBe(false);
    req.destroy();
    expect(await outcome).toBe(true);
    await server.close();
  });

  it('logs failures through an injected pino logger with the request id', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const failing = stubService();
    failing.error = new Error('disk on fire');
    const logged = createHttpApi(failing, { logger });
    const res = await logged.inject({
      method: 'POST',
      url: '/api/infer',
      headers: { 'x-request-id': 'r-9' },
      payload: { input: [1, 2] },
    });
    expect(res.statusCode).toBe(500);
    const failure = lines.find((l) => l.level === 50);
    expect(failure).toMatchObject({ requestId: 'r-9', msg: 'request failed: disk on fire' });
    await logged.close();
  });
});
