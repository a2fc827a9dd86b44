import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { initBackend } from '../src/node/backend.js';
import { clockReader, profileLayers } from '../src/plan/profile.js';
import { residualModel } from './fixtures/profile-models.js';

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

describe('profileLayers', () => {
  beforeAll(async () => {
    await initBackend();
  });

  it('times every layer, disposes every tensor, and sums close to a whole predict', async () => {
    const model = residualModel(96);
    const x = tf.randomUniform([1, 96, 96, 3]);
    // CPU time of this process: other processes on a shared machine do not inflate it.
    const cpu = clockReader('cpu');
    const predict = (): number => {
      const start = cpu();
      (model.predict(x) as tf.Tensor).dispose();
      return cpu() - start;
    };
    predict();
    const before = tf.memory().numTensors;
    const predictBefore = median(Array.from({ length: 5 }, predict));
    const times = await profileLayers(model, { runs: 5, warmup: 1, clock: 'cpu' });
    const predictAfter = median(Array.from({ length: 5 }, predict));
    expect(tf.memory().numTensors).toBe(before);
    expect(times).toHaveLength(model.layers.length);
    expect(model.layers[0]!.getClassName()).toBe('InputLayer');
    expect(times[0]).toBe(0);
    for (const t of times.slice(1)) expect(t).toBeGreaterThanOrEqual(0);
    // The 3x3 convolutions dominate a global pool.
    const byName = new Map(model.layers.map((l, i) => [l.name, times[i]!]));
    expect(byName.get('branch_a')!).toBeGreaterThan(byName.get('pool')!);

    const predictMs = (predictBefore + predictAfter) / 2;
    const sum = times.reduce((a, b) => a + b, 0);
    const ratio = sum / predictMs;
    console.log(
      `profile sum ${sum.toFixed(2)} ms, predict ${predictMs.toFixed(2)} ms (cpu), ratio ${ratio.toFixed(2)} (${tf.getBackend()})`,
    );
    expect(ratio).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
    x.dispose();
    model.dispose();
  });

  it('times with the wall clock and with a read-back sync, consistently', async () => {
    const model = residualModel(48);
    const before = tf.memory().numTensors;
    const wall = await profileLayers(model, { runs: 3 });
    expect(wall).toHaveLength(model.layers.length);
    for (const t of wall) expect(t).toBeGreaterThanOrEqual(0);
    // Same clock (cpu, immune to other processes), with and without a read-back per layer.
    const sum = (times: readonly number[]): number => times.reduce((a, b) => a + b, 0);
    const auto = sum(await profileLayers(model, { runs: 5, clock: 'cpu' }));
    const synced = sum(await profileLayers(model, { runs: 5, clock: 'cpu', sync: 'always' }));
    console.log(`profile sums (cpu): auto ${auto.toFixed(2)} ms, sync always ${synced.toFixed(2)} ms`);
    expect(synced / auto).toBeGreaterThan(0.5);
    expect(synced / auto).toBeLessThan(2);
    expect(tf.memory().numTensors).toBe(before);
    await expect(profileLayers(model, { clock: 'gpu' as 'cpu' })).rejects.toThrowError(/unknown clock/);
    model.dispose();
  });

  it('profiles Sequential models and larger batches', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [16], units: 64, activation: 'relu' }),
        tf.layers.dense({ units: 4 }),
      ],
    });
    const before = tf.memory().numTensors;
    const times = await profileLayers(model, { runs: 1, warmup: 0, batchSize: 8 });
    expect(times).toHaveLength(2);
    for (const t of times) expect(t).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('rejects bad options and honours an aborted signal', async () => {
    const model = residualModel(8);
    const before = tf.memory().numTensors;
    await expect(profileLayers(model, { runs: 0 })).rejects.toThrowError(/runs must be an integer >= 1/);
    const controller = new AbortController();
    controller.abort();
    const error = await profileLayers(model, { signal: controller.signal }).catch((e: unknown) => e);
    expect(isDinferError(error, DinferErrorCode.ABORTED)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});
