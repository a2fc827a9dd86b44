import {
  type InferenceService,
  type InferOptions,
  localInferenceService,
  type TensorData,
} from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../src/cli/bench.js';
import { runCli } from '../src/cli/program.js';
import { createHttpApi } from '../src/index.js';

/** [null,6,6,3] -> flatten -> dense(4, softmax); and a two-input model for the v2 path. */
function models(): { image: tf.LayersModel; pair: tf.LayersModel } {
  const input = tf.input({ shape: [6, 6, 3], name: 'pixels' });
  const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
  const probs = tf.layers.dense({ units: 4, activation: 'softmax' }).apply(flat) as tf.SymbolicTensor;
  const a = tf.input({ shape: [3], name: 'a' });
  const b = tf.input({ shape: [3], name: 'b' });
  const sum = tf.layers.add().apply([a, b]) as tf.SymbolicTensor;
  return {
    image: tf.model({ inputs: input, outputs: probs, name: 'tiny' }),
    pair: tf.model({ inputs: [a, b], outputs: sum, name: 'pair' }),
  };
}

/** Records what reaches the service, to check that bench sends valid, well-formed inputs. */
function recording(service: InferenceService, seen: TensorData[][]): InferenceService {
  return {
    ...service,
    models: () => service.models(),
    health: () => service.health(),
    infer: (model: string, inputs: readonly TensorData[], options?: InferOptions) => {
      seen.push([...inputs]);
      return service.infer(model, inputs, options);
    },
  };
}

async function serve(service: InferenceService): Promise<{ app: FastifyInstance; url: string }> {
  const app = createHttpApi(service);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { app, url: `http://127.0.0.1:${address.port}` };
}

async function bench(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['node', 'dinfer', 'bench', ...args], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
  });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

describe('dinfer bench', () => {
  let image: { app: FastifyInstance; url: string };
  let pair: { app: FastifyInstance; url: string };
  const seenImage: TensorData[][] = [];
  const seenPair: TensorData[][] = [];

  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
    const m = models();
    image = await serve(recording(localInferenceService(m.image, { name: 'tiny' }), seenImage));
    pair = await serve(recording(localInferenceService(m.pair, { name: 'pair' }), seenPair));
  });

  afterAll(async () => {
    await image?.app.close();
    await pair?.app.close();
  });

  it('finds the only model, sends valid /api/infer bodies and reports one JSON object', async () => {
    seenImage.length = 0;
    const result = await bench('--url', image.url, '--requests', '40', '--connections', '4', '--json');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as BenchReport;
    expect(report.model).toBe('tiny');
    expect(report.protocol).toBe('simple');
    expect(report.path).toBe('/api/infer');
    expect(report.inputShape).toEqual([1, 6, 6, 3]);
    expect(report.requests).toBe(40);
    expect(report.status['2xx']).toBe(40);
    expect(report.errors).toBe(0);
    expect(report.non2xx).toBe(0);
    expect(report.throughputPerSecond).toBeGreaterThan(0);
    const l = report.latencyMs;
    expect(l.p50).toBeLessThanOrEqual(l.p90);
    expect(l.p90).toBeLessThanOrEqual(l.p99);
    expect(l.p99).toBeLessThanOrEqual(l.max);
    // The probe plus the 40 measured requests reached the model, each a valid random image.
    expect(seenImage).toHaveLength(41);
    for (const [tensor] of seenImage) {
      expect(tensor!.shape).toEqual([1, 6, 6, 3]);
      const values = Array.from(tensor!.data);
      expect(values.every((v) => v >= 0 && v < 1)).toBe(true);
      expect(new Set(values).size).toBeGreaterThan(50);
    }
  });

  it('prints a table, and uses v2 JSON for a model with several inputs', async () => {
    seenPair.length = 0;
    const result = await bench('--url', pair.url, '--model', 'pair', '--requests', '10', '--input', 'zeros');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('pair at');
    expect(result.stdout).toContain('/v2/models/pair/infer (v2-json');
    expect(result.stdout).toMatch(/throughput\s+p50\s+p90\s+p99\s+max\s+errors\s+non-2xx/);
    expect(result.stdout).toMatch(/req\/s .* ms .* ms .* ms .* ms\s+0\s+0/);
    expect(seenPair).toHaveLength(11);
    for (const inputs of seenPair) {
      expect(inputs.map((t) => t.name)).toEqual(['a', 'b']);
      expect(inputs.every((t) => Array.from(t.data).every((v) => v === 0))).toBe(true);
    }
  });

  it('sends the KServe binary extension with --binary', async () => {
    seenImage.length = 0;
    const result = await bench(
      '--url',
      image.url,
      '--binary',
      '--requests',
      '12',
      '--connections',
      '2',
      '--json',
    );
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as BenchReport;
    expect(report.protocol).toBe('v2-binary');
    // JSON header + 6*6*3 float32 values.
    expect(report.bodyBytes).toBeGreaterThan(6 * 6 * 3 * 4);
    expect(report.status['2xx']).toBe(12);
    expect(seenImage).toHaveLength(13);
    expect(seenImage.every(([t]) => t!.dtype === 'float32' && t!.data.length === 108)).toBe(true);
  });

  it('fails with exit 1 and a clear message for an unknown model or an unreachable server', async () => {
    const unknown = await bench('--url', image.url, '--model', 'nope', '--requests', '1');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('GET /v2/models/nope answered 404');
    const closed = await bench('--url', 'http://127.0.0.1:9', '--requests', '1');
    expect(closed.code).toBe(1);
    expect(closed.stderr).toContain('cannot reach http://127.0.0.1:9');
    const usage = await bench('--url', image.url, '--requests', '5', '--duration', '3');
    expect(usage.code).toBe(2);
  });
});
