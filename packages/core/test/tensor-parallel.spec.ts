import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode } from '../src/errors.js';
import { initBackend } from '../src/node/backend.js';
import { shardUnits, splitDense } from '../src/partition/tensor-parallel.js';
import { seededRandom } from '../src/testing/seeded-random.js';

beforeAll(async () => {
  await initBackend();
});

/** A wide MLP with seeded weights; `activations[i]` for Dense i. */
function mlp(widths: number[], activations: string[], seed: number): tf.LayersModel {
  const next = seededRandom(seed);
  const model = tf.sequential();
  widths.slice(1).forEach((units, i) => {
    model.add(
      tf.layers.dense({
        units,
        activation: activations[i] as never,
        ...(i === 0 ? { inputShape: [widths[0]!] } : {}),
        name: `dense_${i}`,
      }),
    );
  });
  for (const layer of model.layers) {
    layer.setWeights(
      layer.getWeights().map((w) =>
        tf.tensor(
          Float32Array.from({ length: w.size }, () => (next() - 0.5) * 0.3),
          w.shape,
        ),
      ),
    );
  }
  return model;
}

function maxRelativeError(actual: tf.Tensor, expected: tf.Tensor): number {
  const a = actual.dataSync();
  const e = expected.dataSync();
  let scale = 1e-6;
  for (const v of e) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < e.length; i++) worst = Math.max(worst, Math.abs(a[i]! - e[i]!) / scale);
  return worst;
}

describe('shardUnits', () => {
  it('cuts units into contiguous, ordered, near-equal ranges', () => {
    expect(shardUnits(10, 3)).toEqual([
      [0, 4],
      [4, 7],
      [7, 10],
    ]);
    expect(shardUnits(8, 4)).toEqual([
      [0, 2],
      [2, 4],
      [4, 6],
      [6, 8],
    ]);
  });
});

describe('splitDense', () => {
  const activations = ['relu', 'softmax', 'sigmoid', 'tanh', 'linear', 'elu'];

  for (const activation of activations) {
    for (const degree of [2, 3, 4]) {
      it(`a ${activation} Dense split ${degree} ways equals the layer`, () => {
        const model = mlp([24, 37, 11], [activation, 'linear'], degree * 7 + activation.length);
        const layer = model.layers[0]!;
        const before = tf.memory().numTensors;
        const split = splitDense(layer, degree);
        expect(split.shards.map((s) => s.units[1] - s.units[0]).reduce((a, b) => a + b)).toBe(37);
        const x = tf.randomNormal([5, 24], 0, 1, 'float32', 42);
        const whole = layer.apply(x) as tf.Tensor;
        const parts = split.shards.map((s) => s.model.predict(x) as tf.Tensor);
        const joined = split.combine(parts);
        expect(joined.shape).toEqual([5, 37]);
        expect(maxRelativeError(joined, whole)).toBeLessThan(1e-5);
        tf.dispose([x, whole, joined, ...parts]);
        split.dispose();
        expect(tf.memory().numTensors).toBe(before);
        model.dispose();
      });
    }
  }

  it('splits every Dense of a wide MLP and the chained shards equal the model predict', () => {
    const model = mlp([64, 256, 256, 10], ['relu', 'relu', 'softmax'], 3);
    const splits = model.layers.map((layer, i) => splitDense(layer, i + 2));
    const x = tf.randomNormal([3, 64], 0, 1, 'float32', 7);
    let h: tf.Tensor = x;
    for (const split of splits) {
      const parts = split.shards.map((s) => s.model.predict(h) as tf.Tensor);
      const next = split.combine(parts);
      tf.dispose(parts);
      if (h !== x) h.dispose();
      h = next;
    }
    const expected = model.predict(x) as tf.Tensor;
    expect(maxRelativeError(h, expected)).toBeLessThan(1e-5);
    // Softmax applied after the concatenation: rows sum to 1.
    const sums = tf.sum(h, -1).dataSync();
    for (const s of sums) expect(s).toBeCloseTo(1, 5);
    tf.dispose([x, h, expected, tf.sum(h, -1)]);
    for (const split of splits) split.dispose();
    model.dispose();
  });

  it('keeps a shard a plain TF.js model that saves and loads as standard artifacts', async () => {
    const model = mlp([8, 6], ['relu'], 9);
    const split = splitDense(model.layers[0]!, 2);
    let artifacts: tf.io.ModelArtifacts | undefined;
    await split.shards[1]!.model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
    const x = tf.ones([1, 8]);
    const a = loaded.predict(x) as tf.Tensor;
    const b = split.shards[1]!.model.predict(x) as tf.Tensor;
    expect(maxRelativeError(a, b)).toBe(0);
    tf.dispose([x, a, b]);
    loaded.dispose();
    split.dispose();
    model.dispose();
  });

  it('refuses layers that are not Dense and degrees out of range, with clear errors', () => {
    const model = mlp([4, 3], ['relu'], 1);
    expect(() => splitDense(model.layers[0]!, 1)).toThrow(/integer in \[2, 3\]/);
    expect(() => splitDense(model.layers[0]!, 4)).toThrow(/integer in \[2, 3\]/);
    const conv = tf.layers.conv2d({ filters: 2, kernelSize: 1, inputShape: [2, 2, 1] });
    tf.sequential({ layers: [conv] });
    try {
      splitDense(conv, 2);
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: DinferErrorCode.PARTITION_UNSUPPORTED });
      expect((error as Error).message).toMatch(/only Dense layers split/);
    }
    model.dispose();
  });
});
