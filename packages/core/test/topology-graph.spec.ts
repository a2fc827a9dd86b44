import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { analyzeModel, analyzeModelJson } from '../src/model/analyze.js';
import { modelToArtifacts } from '../src/model/io.js';
import { modelJsonGraph } from '../src/model/topology-graph.js';
import { initBackend } from '../src/node/backend.js';
import { fixtures } from './fixtures/models.js';

beforeAll(async () => {
  await initBackend();
});

/** The `model.json` a model saves to: its topology and its weights manifest. */
async function modelJsonOf(model: tf.LayersModel): Promise<tf.io.ModelJSON> {
  const artifacts = await modelToArtifacts(model);
  return {
    modelTopology: artifacts.modelTopology as tf.io.ModelJSON['modelTopology'],
    weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
  };
}

async function reload(json: tf.io.ModelJSON): Promise<tf.LayersModel> {
  return tf.loadLayersModel({ load: async () => ({ modelTopology: json.modelTopology }) });
}

describe('analyzeModelJson', () => {
  for (const f of fixtures) {
    it(`${f.name}: the same layers, calls, shapes, FLOPs and cuts as analyzeModel`, async () => {
      const model = f.build();
      const json = await modelJsonOf(model);
      const fromJson = analyzeModelJson(json, f.name);
      expect(fromJson).toEqual(analyzeModel(model));
      // And as TF.js orders the layers of the model it builds from that model.json.
      const rebuilt = await reload(json);
      expect(fromJson.layers.map((l) => l.name)).toEqual(rebuilt.layers.map((l) => l.name));
      expect(fromJson).toEqual(analyzeModel(rebuilt));
      rebuilt.dispose();
    });
  }

  it('orders the layers of a functional model as TF.js does, not as the config lists them', async () => {
    const model = fixtures.find((f) => f.name === 'multi-branch concat')!.build();
    const json = await modelJsonOf(model);
    const topology = json.modelTopology as { config: { layers: unknown[] } };
    topology.config.layers.reverse();
    const rebuilt = await reload(json);
    expect(analyzeModelJson(json).layers.map((l) => l.name)).toEqual(rebuilt.layers.map((l) => l.name));
    rebuilt.dispose();
  });

  it('gives each layer the weights its name prefixes, a nested model those of its own layers', async () => {
    const model = fixtures.find((f) => f.name === 'nested models as layers')!.build();
    const graph = modelJsonGraph(await modelJsonOf(model), 'nested');
    const inner = graph.layers.find((l) => l.name === 'inner')!;
    expect(inner.weights.map((w) => w.name)).toEqual([
      'inner_h/kernel',
      'inner_h/bias',
      'inner_out/kernel',
      'inner_out/bias',
    ]);
    expect(inner.params).toBe(model.getLayer('inner').countParams());
  });

  it('refuses a weight no layer owns and an unknown layer class, naming them', async () => {
    const model = fixtures[0]!.build();
    const json = await modelJsonOf(model);
    const stray = structuredClone(json);
    stray.weightsManifest[0]!.weights.push({ name: 'nowhere/kernel', shape: [2], dtype: 'float32' });
    expect(() => analyzeModelJson(stray)).toThrow(/"nowhere\/kernel" belongs to no layer/);
    const unknown = structuredClone(json);
    (unknown.modelTopology as { config: { layers: { class_name: string }[] } }).config.layers[2]!.class_name =
      'NoSuchLayer';
    let caught: unknown;
    try {
      analyzeModelJson(unknown);
    } catch (error) {
      caught = error;
    }
    expect(isDinferError(caught, DinferErrorCode.MODEL_UNSUPPORTED)).toBe(true);
    expect((caught as Error).message).toMatch(/NoSuchLayer/);
  });

  it('refuses a graph model topology', () => {
    let caught: unknown;
    try {
      analyzeModelJson({ modelTopology: { node: [] }, weightsManifest: [] });
    } catch (error) {
      caught = error;
    }
    expect(isDinferError(caught, DinferErrorCode.MODEL_UNSUPPORTED)).toBe(true);
  });
});
