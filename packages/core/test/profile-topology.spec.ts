import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { modelToArtifacts } from '../src/model/io.js';
import { initBackend } from '../src/node/backend.js';
import { profileLayers } from '../src/plan/profile.js';
import { profileTopology } from '../src/plan/profile-topology.js';
import { fixtures } from './fixtures/models.js';
import { residualModel } from './fixtures/profile-models.js';

async function modelJsonOf(model: tf.LayersModel): Promise<tf.io.ModelJSON> {
  const artifacts = await modelToArtifacts(model);
  return {
    modelTopology: artifacts.modelTopology as tf.io.ModelJSON['modelTopology'],
    weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
  };
}

const sum = (times: readonly number[]) => times.reduce((a, b) => a + b, 0);

describe('profileTopology', () => {
  beforeAll(async () => {
    await initBackend();
  });

  it('times each layer built alone from model.json about as profileLayers times the model', async () => {
    const model = residualModel(96);
    const json = await modelJsonOf(model);
    const before = tf.memory().numTensors;
    const fromJson = await profileTopology(json, { runs: 5, warmup: 1, clock: 'cpu' });
    expect(tf.memory().numTensors).toBe(before);
    const inMemory = await profileLayers(model, { runs: 5, warmup: 1, clock: 'cpu' });
    expect(fromJson).toHaveLength(model.layers.length);
    expect(fromJson[0]).toBe(0); // the InputLayer
    for (const t of fromJson.slice(1)) expect(t).toBeGreaterThan(0);
    const byName = new Map(model.layers.map((l, i) => [l.name, fromJson[i]!]));
    expect(byName.get('branch_a')!).toBeGreaterThan(byName.get('pool')!);
    const ratio = sum(fromJson) / sum(inMemory);
    console.log(
      `profileTopology sum ${sum(fromJson).toFixed(2)} ms, profileLayers ${sum(inMemory).toFixed(2)} ms (cpu)`,
    );
    expect(ratio).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
    model.dispose();
  });

  it('profiles every fixture (shared layers, nested models, several inputs) without leaking', async () => {
    for (const f of fixtures) {
      const model = f.build();
      const json = await modelJsonOf(model);
      const before = tf.memory().numTensors;
      const times = await profileTopology(json, { runs: 1, warmup: 0, batchSize: 2 });
      expect(tf.memory().numTensors).toBe(before);
      expect(times).toHaveLength(model.layers.length);
      model.layers.forEach((layer, i) => {
        if (layer.getClassName() === 'InputLayer') expect(times[i]).toBe(0);
        else expect(times[i]).toBeGreaterThanOrEqual(0);
      });
      model.dispose();
    }
  });

  it("times with the process' CPU clock on a synchronous backend when asked for 'auto'", async () => {
    const json = await modelJsonOf(residualModel(32));
    const times = await profileTopology(json, { runs: 1, warmup: 0, clock: 'auto' });
    expect(times.slice(1).every((t) => t >= 0)).toBe(true);
    await expect(profileTopology(json, { clock: 'sundial' as 'cpu' })).rejects.toThrowError(/unknown clock/);
  });

  it('honours an aborted signal', async () => {
    const json = await modelJsonOf(residualModel(8));
    const controller = new AbortController();
    controller.abort();
    const error = await profileTopology(json, { signal: controller.signal }).catch((e: unknown) => e);
    expect(isDinferError(error, DinferErrorCode.ABORTED)).toBe(true);
  });
});
