import {
  type ClusterStatus,
  DinferError,
  DinferErrorCode,
  type InferenceService,
  localInferenceService,
} from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpApi, prometheusMetrics } from '../src/index.js';
import { isInferenceRoute, outcomeOf } from '../src/status/inference-recorder.js';
import { createRequestWindow } from '../src/status/request-window.js';
import type { StatusReport } from '../src/status/status-report.js';

/** Exact quantile by counting: the smallest value with at least ceil(q*n) values <= it. */
function quantileByCount(values: readonly number[], q: number): number {
  const need = Math.ceil(q * values.length);
  return Math.min(...values.filter((v) => values.filter((x) => x <= v).length >= need));
}

describe('createRequestWindow', () => {
  it('summarises the last window: counts, throughput, error rate, latency percentiles', () => {
    let now = 1_000_000; // a whole second
    const window = createRequestWindow({ windowSeconds: 10, now: () => now });
    const latencies: number[] = [];
    // 5 seconds, 20 requests each: 1 server error, 2 client errors, 17 successes.
    for (let s = 0; s < 5; s++) {
      for (let i = 0; i < 20; i++) {
        now = 1_000_000 + s * 1000 + i * 10;
        if (i === 0) window.record('server_error', 999);
        else if (i < 3) window.record('client_error', 1);
        else {
          const ms = ((s * 37 + i * 13) % 97) + 0.5;
          latencies.push(ms);
          window.record('success', ms);
        }
      }
    }
    now = 1_000_000 + 4500; // middle of the fifth second
    const snap = window.snapshot();
    expect(snap.requests).toBe(100);
    expect(snap.successes).toBe(85);
    expect(snap.serverErrors).toBe(5);
    expect(snap.clientErrors).toBe(10);
    expect(snap.errorRate).toBeCloseTo(5 / 100, 12);
    expect(snap.windowSeconds).toBeCloseTo(4.5, 9);
    expect(snap.throughputPerSecond).toBeCloseTo(100 / 4.5, 9);
    const sum = latencies.reduce((a, b) => a + b, 0);
    expect(snap.latencyMs).not.toBeNull();
    expect(snap.latencyMs!.min).toBe(Math.min(...latencies));
    expect(snap.latencyMs!.max).toBe(Math.max(...latencies));
    expect(snap.latencyMs!.avg).toBeCloseTo(sum / latencies.length, 9);
    for (const [q, key] of [
      [0.5, 'p50'],
      [0.95, 'p95'],
      [0.99, 'p99'],
    ] as const) {
      expect(snap.latencyMs![key], key).toBe(quantileByCount(latencies, q));
    }
    expect(snap.series.map((p) => p.requests)).toEqual([20, 20, 20, 20, 20]);
    expect(snap.series.map((p) => p.errors)).toEqual([1, 1, 1, 1, 1]);
    expect(snap.series[0]!.time).toBe(1_000_000);
  });

  it('forgets what slid out of the window and reports empty seconds as zeros', () => {
    let now = 50_000;
    const window = createRequestWindow({ windowSeconds: 3, now: () => now });
    window.record('success', 10);
    now += 1000;
    window.record('success', 30);
    now += 3000; // the first two seconds are out
    window.record('server_error', 5);
    const snap = window.snapshot();
    expect(snap.requests).toBe(1);
    expect(snap.serverErrors).toBe(1);
    expect(snap.latencyMs).toBeNull();
    expect(snap.errorRate).toBe(1);
    expect(snap.series.map((p) => p.requests)).toEqual([0, 0, 1]);
    expect(snap.series.map((p) => p.avgLatencyMs)).toEqual([null, null, null]);
  });

  it('keeps memory bounded with a reservoir while min, max and avg stay exact', () => {
    const now = 7_000;
    const window = createRequestWindow({ windowSeconds: 5, samplesPerSecond: 64, now: () => now });
    const values = Array.from({ length: 5000 }, (_, i) => (i * 7919) % 1000);
    for (const v of values) window.record('success', v);
    const snap = window.snapshot();
    expect(snap.successes).toBe(5000);
    expect(snap.latencyMs!.min).toBe(0);
    expect(snap.latencyMs!.max).toBe(999);
    expect(snap.latencyMs!.avg).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length, 9);
    // A uniform sample of 64 from 0..999: its median is near 500 (loose bound, no flakiness).
    expect(snap.latencyMs!.p50).toBeGreaterThan(150);
    expect(snap.latencyMs!.p50).toBeLessThan(850);
  });

  it('refuses bad options with a typed error', () => {
    for (const options of [{ windowSeconds: 0 }, { windowSeconds: 1.5 }, { samplesPerSecond: 0 }]) {
      expect(() => createRequestWindow(options)).toThrowError(
        expect.objectContaining({ code: DinferErrorCode.INVALID_ARGUMENT }),
      );
    }
  });
});

describe('inference route recognition', () => {
  it('classifies routes and statuses', () => {
    expect(isInferenceRoute('POST', '/api/infer')).toBe(true);
    expect(isInferenceRoute('POST', '/v2/models/:name/infer')).toBe(true);
    expect(isInferenceRoute('POST', '/v2/models/:name/versions/:version/infer')).toBe(true);
    expect(isInferenceRoute('GET', '/api/infer')).toBe(false);
    expect(isInferenceRoute('GET', '/api/status')).toBe(false);
    expect(isInferenceRoute('POST', undefined)).toBe(false);
    expect([200, 204, 400, 404, 413, 500, 503, 504].map(outcomeOf)).toEqual([
      'success',
      'success',
      'client_error',
      'client_error',
      'client_error',
      'server_error',
      'server_error',
      'server_error',
    ]);
  });
});

describe('GET /api/status and the ai_inference_* metrics', () => {
  let app: FastifyInstance;
  let fail = false;
  const metrics = prometheusMetrics({ collectDefault: false });
  const cluster: ClusterStatus = {
    ready: true,
    degraded: false,
    workers: [
      {
        id: 'w1',
        name: 'alpha',
        address: '127.0.0.1:5000',
        backend: 'wasm',
        cores: 2,
        score: 1,
        stages: ['tiny@1#0'],
        state: 'ready',
        breaker: 'closed',
        heartbeatAgeMs: 120,
        cpu: 0.5,
        freeMemoryBytes: 1 << 30,
        queueLength: 0,
        inflight: 0,
        completed: 4,
        failed: 0,
      },
    ],
    stages: [
      {
        model: 'tiny',
        version: '1',
        index: 0,
        layers: [0, 3],
        weightBytes: 64,
        replicas: ['w1'],
        degraded: false,
      },
    ],
  };

  beforeAll(async () => {
    await initBackend();
    const input = tf.input({ shape: [4], name: 'x' });
    const out = tf.layers
      .dense({ units: 3, activation: 'softmax', name: 'y' })
      .apply(input) as tf.SymbolicTensor;
    const local = localInferenceService(tf.model({ inputs: input, outputs: out }), {
      name: 'tiny',
      version: '1',
    });
    // A cache-like decorator: stats() is reported, and it can be made to fail.
    const service: InferenceService & { stats(): Record<string, number> } = {
      models: () => local.models(),
      health: () => local.health(),
      infer: (model, inputs, options) =>
        fail
          ? Promise.reject(new DinferError(DinferErrorCode.INTERNAL, 'boom'))
          : local.infer(model, inputs, options),
      stats: () => ({ hits: 3, misses: 1, entries: 2 }),
    };
    app = createHttpApi(service, { metrics, status: () => cluster });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
  });

  const infer = (body: unknown) => app.inject({ method: 'POST', url: '/api/infer', payload: body as object });

  it('records successes, client and server errors per route and model', async () => {
    for (let i = 0; i < 3; i++) expect((await infer({ input: [1, 2, 3, 4] })).statusCode).toBe(200);
    expect((await infer({ input: [1, 2] })).statusCode).toBe(400);
    expect((await infer({ input: [1, 2, 3, 4], model: 'nope' })).statusCode).toBe(404);
    const kserve = await app.inject({
      method: 'POST',
      url: '/v2/models/tiny/infer',
      payload: { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] },
    });
    expect(kserve.statusCode).toBe(200);
    fail = true;
    expect((await infer({ input: [1, 2, 3, 4] })).statusCode).toBe(500);
    fail = false;
    // Not inference routes: not counted.
    expect((await app.inject({ method: 'GET', url: '/v2/health/ready' })).statusCode).toBe(200);

    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const value = (series: string) =>
      Number(
        text
          .split('\n')
          .find((l) => l.startsWith(`${series} `))
          ?.split(' ')[1],
      );
    expect(value('ai_inference_requests_total{model="tiny",status="success"}')).toBe(4);
    expect(value('ai_inference_requests_total{model="tiny",status="client_error"}')).toBe(1);
    // The unknown model name a client sent is not a label value.
    expect(value('ai_inference_requests_total{model="unknown",status="client_error"}')).toBe(1);
    expect(text).not.toContain('model="nope"');
    expect(value('ai_inference_requests_total{model="tiny",status="server_error"}')).toBe(1);
    expect(value('ai_inference_latency_seconds_count{model="tiny"}')).toBe(4);
  });

  it('answers the status JSON: workers, stages, requests of the last minute, cache stats', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/status' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('application/json');
    const status = res.json() as StatusReport;
    expect(Object.keys(status).sort()).toEqual(
      [
        'cache',
        'degraded',
        'live',
        'models',
        'ready',
        'requests',
        'stages',
        'time',
        'uptimeSeconds',
        'workers',
      ].sort(),
    );
    expect(status.models).toEqual([{ name: 'tiny', version: '1' }]);
    expect(status.live).toBe(true);
    expect(status.workers).toEqual([
      {
        id: 'w1',
        name: 'alpha',
        address: '127.0.0.1:5000',
        backend: 'wasm',
        cores: 2,
        stages: ['tiny@1#0'],
        state: 'ready',
        breaker: 'closed',
        heartbeatAgeMs: 120,
        cpu: 0.5,
        freeMemoryBytes: 1 << 30,
        queueLength: 0,
        inflight: 0,
        completed: 4,
        failed: 0,
      },
    ]);
    expect(status.stages).toEqual([
      {
        model: 'tiny',
        version: '1',
        index: 0,
        layers: [0, 3],
        layerCount: 3,
        weightBytes: 64,
        replicas: ['w1'],
        degraded: false,
      },
    ]);
    expect(status.cache).toEqual({ hits: 3, misses: 1, entries: 2 });
    const r = status.requests;
    expect(r.requests).toBe(7);
    expect(r.successes).toBe(4);
    expect(r.clientErrors).toBe(2);
    expect(r.serverErrors).toBe(1);
    expect(r.errorRate).toBeCloseTo(1 / 7, 12);
    expect(r.throughputPerSecond).toBeCloseTo(7 / r.windowSeconds, 9);
    expect(r.latencyMs!.min).toBeLessThanOrEqual(r.latencyMs!.avg);
    expect(r.latencyMs!.avg).toBeLessThanOrEqual(r.latencyMs!.max);
    expect(r.latencyMs!.p95).toBeLessThanOrEqual(r.latencyMs!.p99);
    expect(r.series.reduce((a, p) => a + p.requests, 0)).toBe(7);
  });

  it('serves the status page at / as HTML that polls /api/status', async () => {
    const res = await app.inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toContain('<title>dinfer status</title>');
    expect(res.body).toContain("fetch('api/status'");
  });

  it('has no /metrics without a registry, and no cluster without a status source', async () => {
    const input = tf.input({ shape: [2] });
    const out = tf.layers.dense({ units: 1 }).apply(input) as tf.SymbolicTensor;
    const bare = createHttpApi(
      localInferenceService(tf.model({ inputs: input, outputs: out }), { name: 'b' }),
      {
        statusPage: false,
      },
    );
    try {
      expect((await bare.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(404);
      expect((await bare.inject({ method: 'GET', url: '/' })).statusCode).toBe(404);
      const status = (await bare.inject({ method: 'GET', url: '/api/status' })).json() as StatusReport;
      expect(status.workers).toEqual([]);
      expect(status.stages).toEqual([]);
      expect(status.cache).toBeNull();
      expect(status.requests.requests).toBe(0);
      expect(status.requests.latencyMs).toBeNull();
    } finally {
      await bare.close();
    }
  });
});
