import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { createDeployment, type Deployment } from '../src/master/deployment.js';
import { analyzeModel } from '../src/model/analyze.js';
import { disposeModel } from '../src/model/dispose-model.js';
import { fileSystemHandler } from '../src/model/fs-handler.js';
import { loadLayersModel, readModelArtifacts, saveLayersModel } from '../src/model/io.js';
import {
  manifestWeightQuantization,
  sourceWeightQuantization,
  type WeightQuantizationByName,
} from '../src/model/source-quantization.js';
import { initBackend } from '../src/node/backend.js';
import { quantizeWeight } from '../src/partition/weight-quantization.js';
import { readBlob } from '../src/ship/blob-source.js';
import { fromTfTensor } from '../src/tensor/tfjs.js';
import type { TensorData } from '../src/tensor/types.js';
import { expectClose } from './fixtures/compare.js';
import { fixture, sampleInputs } from './fixtures/models.js';
import {
  type SourceForm,
  type WrittenWeight,
  writeQuantizedArtifacts,
} from './fixtures/quantized-artifacts.js';
import { loadShippedStage } from './fixtures/stage-blobs.js';

let root: string;
beforeAll(async () => {
  await initBackend();
  root = await mkdtemp(join(tmpdir(), 'dinfer-source-quant-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Kernels as uint8, depthwise kernels as uint16, biases and gammas as float16, the rest float32. */
const mixedForms = (name: string): SourceForm => {
  if (name.endsWith('/depthwise_kernel')) return 'uint16';
  if (name.endsWith('kernel')) return 'uint8';
  if (name.endsWith('/bias') || name.endsWith('/gamma')) return 'float16';
  return undefined;
};

function middleCut(model: tf.LayersModel): number {
  const valid = analyzeModel(model)
    .cuts.filter((c) => c.valid)
    .map((c) => c.index);
  return valid[Math.floor(valid.length / 2)]!;
}

function snapshot(model: tf.LayersModel): Buffer[] {
  return model.weights.map((w) => Buffer.from((w.read().dataSync() as Float32Array).buffer.slice(0)));
}

/**
 * Runs every stage on a worker's loader (from the shipped blobs) and on the master's copy
 * (`runLocal`), stage after stage; asserts both give the same bits and returns the outputs.
 */
async function workerAgreesWithMaster(deployment: Deployment, input: TensorData): Promise<TensorData[]> {
  let activations = new Map<string, TensorData>([[deployment.served.inputs[0]!.name, input]]);
  for (const stage of deployment.stages) {
    const { blobs, partitionStage } = stage;
    const loaded = await loadShippedStage(stage.key, blobs, partitionStage);
    const inputs = partitionStage.inputs.map((s) => activations.get(s.name)!);
    const remote = await loaded.run(inputs);
    const local = await deployment.runLocal(stage.index, inputs);
    loaded.dispose();
    expect(remote.length).toBe(local.length);
    remote.forEach((t, i) => {
      expect(
        Buffer.from((t.data as Float32Array).buffer).equals(
          Buffer.from((local[i]!.data as Float32Array).buffer),
        ),
      ).toBe(true);
    });
    activations = new Map([
      ...activations,
      ...partitionStage.outputs.map((s, i) => [s.name, local[i]!] as const),
    ]);
  }
  return deployment.served.outputs.map((s) => activations.get(s.name)!);
}

async function sampleData(model: tf.LayersModel): Promise<TensorData> {
  const [x] = sampleInputs(model, 2, 13);
  const data = await fromTfTensor(x!);
  x!.dispose();
  return data;
}

describe('a model whose own artifacts store quantized weights', () => {
  let source: string;
  let written: Map<string, WrittenWeight>;
  beforeAll(async () => {
    const original = fixture('small CNN').build();
    source = join(root, 'mixed');
    written = await writeQuantizedArtifacts(original, source, mixedForms);
    disposeModel(original);
  });

  it('core loaders remember how each weight was stored', async () => {
    const model = await loadLayersModel(source);
    const expected: Record<string, unknown> = {};
    for (const [name, w] of written) if (w.entry.quantization) expected[name] = w.entry.quantization;
    expect(Object.keys(expected).length).toBeGreaterThan(4);
    expect(sourceWeightQuantization(model)).toEqual(expected);
    const artifacts = await readModelArtifacts(source);
    expect(manifestWeightQuantization(artifacts.weightSpecs ?? [])).toEqual(expected);
    // A model TF.js loads by itself, or one built in memory, has nothing remembered.
    const plain = await tf.loadLayersModel(fileSystemHandler(source));
    expect(sourceWeightQuantization(plain)).toEqual({});
    disposeModel(plain);
    disposeModel(model);
  });

  it('ships each weight with the very codes and bytes it came in; workers compute what the master does', async () => {
    const model = await loadLayersModel(source);
    const before = snapshot(model);
    const deployment = await createDeployment({ name: 'cnn', model, cuts: [middleCut(model)] });
    expect(deployment.stages).toHaveLength(2);
    let shipped = 0;
    let raw = 0;
    for (const stage of deployment.stages) {
      for (const t of stage.blobs.tensors) {
        const from = written.get(t.name)!;
        expect(t.entry).toEqual(from.entry);
        expect(Buffer.from(await readBlob(t)).equals(Buffer.from(from.bytes))).toBe(true);
      }
      shipped += stage.blobs.weightBytes;
      raw += stage.blobs.rawWeightBytes;
    }
    const sourceBytes = [...written.values()].reduce((n, w) => n + w.bytes.byteLength, 0);
    expect(shipped).toBe(sourceBytes);
    expect(raw).toBe(model.countParams() * 4);
    expect(shipped).toBeLessThan(0.5 * raw);
    console.log(`shipped ${shipped} weight bytes for ${raw} float32 bytes (${(shipped / raw).toFixed(3)})`);
    // Rounding to the stored form changed nothing: the weights already were its values.
    expect(snapshot(model).every((b, i) => b.equals(before[i]!))).toBe(true);

    const input = await sampleData(model);
    const outputs = await workerAgreesWithMaster(deployment, input);
    const plain = await tf.loadLayersModel(fileSystemHandler(source));
    const x = tf.tensor(input.data as Float32Array, [...input.shape]);
    const whole = plain.predict(x) as tf.Tensor;
    const split = tf.tensor(outputs[0]!.data as Float32Array, whole.shape);
    expectClose(split, whole);
    tf.dispose([x, whole, split]);
    disposeModel(plain);
    disposeModel(model);
  });

  it('an explicit weightQuantization wins over the stored form', async () => {
    const model = await loadLayersModel(source);
    const deployment = await createDeployment({
      name: 'cnn',
      model,
      cuts: [middleCut(model)],
      weightQuantization: 'float16',
    });
    for (const stage of deployment.stages) {
      for (const t of stage.blobs.tensors) expect(t.entry.quantization).toEqual({ dtype: 'float16' });
      expect(stage.blobs.weightBytes * 2).toBe(stage.blobs.rawWeightBytes);
    }
    await workerAgreesWithMaster(deployment, await sampleData(model));
    disposeModel(model);
  });

  it('an empty sourceWeightQuantization ships float32; a given one ships a plainly loaded model quantized', async () => {
    const model = await loadLayersModel(source);
    const float32 = await createDeployment({ name: 'cnn', model, cuts: [], sourceWeightQuantization: {} });
    const blobs = float32.stages[0]!.blobs;
    expect(blobs.tensors.every((t) => t.entry.quantization === undefined)).toBe(true);
    expect(blobs.weightBytes).toBe(blobs.rawWeightBytes);
    disposeModel(model);

    const plain = await tf.loadLayersModel(fileSystemHandler(source));
    const artifacts = await readModelArtifacts(source);
    const deployment = await createDeployment({
      name: 'cnn',
      model: plain,
      cuts: [],
      sourceWeightQuantization: manifestWeightQuantization(artifacts.weightSpecs ?? []),
    });
    for (const t of deployment.stages[0]!.blobs.tensors) {
      expect(Buffer.from(await readBlob(t)).equals(Buffer.from(written.get(t.name)!.bytes))).toBe(true);
    }
    await workerAgreesWithMaster(deployment, await sampleData(plain));
    disposeModel(plain);
  });

  it('weights changed since loading get new affine parameters, and still agree bit for bit', async () => {
    const model = await loadLayersModel(source);
    const dense = model.layers.find((l) => l.getClassName() === 'Dense')!;
    const [kernel, bias] = dense.getWeights();
    const widened = tf.mul(kernel!, 3);
    dense.setWeights([widened, bias!]);
    widened.dispose();
    const name = dense.weights[0]!.originalName;
    const deployment = await createDeployment({ name: 'cnn', model, cuts: [] });
    const shipped = deployment.stages[0]!.blobs.tensors.find((t) => t.name === name)!;
    const stored = written.get(name)!.entry.quantization as { scale: number; min: number };
    expect(shipped.entry.quantization?.dtype).toBe('uint8');
    expect((shipped.entry.quantization as { scale: number }).scale).toBeCloseTo(3 * stored.scale, 6);
    await workerAgreesWithMaster(deployment, await sampleData(model));
    disposeModel(model);
  });

  it('refuses a sourceWeightQuantization naming an unknown weight or a form TF.js cannot decode', async () => {
    const model = await loadLayersModel(source);
    const kernel = model.weights.find((w) => w.originalName.endsWith('kernel'))!.originalName;
    const bad: WeightQuantizationByName[] = [
      { 'no_such_layer/kernel': { dtype: 'float16' } },
      { [kernel]: { dtype: 'int4' } as never },
      { [kernel]: { dtype: 'uint8', scale: 0.1 } },
      { [kernel]: { dtype: 'uint16', scale: Number.NaN, min: 0 } },
    ];
    for (const sourceWeightQuantization of bad) {
      const error = await createDeployment({ name: 'cnn', model, cuts: [], sourceWeightQuantization }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isDinferError(error, DinferErrorCode.INVALID_ARGUMENT)).toBe(true);
      expect((error as Error).message).toContain(Object.keys(sourceWeightQuantization)[0]!);
    }
    disposeModel(model);
  });
});

describe('a model whose artifacts store float32 weights', () => {
  it('still ships float32', async () => {
    const original = fixture('small CNN').build();
    const dir = join(root, 'float32');
    await saveLayersModel(original, dir);
    disposeModel(original);
    const model = await loadLayersModel(dir);
    expect(sourceWeightQuantization(model)).toEqual({});
    const deployment = await createDeployment({ name: 'cnn', model, cuts: [middleCut(model)] });
    for (const stage of deployment.stages) {
      expect(stage.blobs.tensors.every((t) => t.entry.quantization === undefined)).toBe(true);
      expect(stage.blobs.weightBytes).toBe(stage.blobs.rawWeightBytes);
    }
    await workerAgreesWithMaster(deployment, await sampleData(model));
    disposeModel(model);
  });
});

describe('quantizeWeight with a stored form', () => {
  it('keeps the stored scale and min when the values fit them, so the codes come back unchanged', () => {
    const codes = Uint8Array.from({ length: 300 }, (_, i) => (i * 37) % 256);
    const scale = 0.013;
    const min = -1.7;
    const decoded = Float32Array.from(codes, (q) => q * scale + min);
    const again = quantizeWeight(decoded, { dtype: 'uint8', scale, min });
    expect(again.quantization).toEqual({ dtype: 'uint8', scale, min });
    expect([...again.bytes]).toEqual([...codes]);
    const wide = quantizeWeight(decoded, { dtype: 'uint16', scale: scale / 256, min });
    expect(wide.bytes.byteLength).toBe(2 * decoded.length);
    expect(wide.quantization).toEqual({ dtype: 'uint16', scale: scale / 256, min });
    // Out of the stored range: new parameters, within half a step of every value.
    const values = Float32Array.from([min - 1, 0, 5]);
    const outside = quantizeWeight(values, { dtype: 'uint8', scale, min });
    const fresh = outside.quantization as { scale: number; min: number };
    expect(fresh.scale).toBeGreaterThan(scale);
    values.forEach((v, i) => {
      expect(Math.abs(outside.bytes[i]! * fresh.scale + fresh.min - v)).toBeLessThanOrEqual(
        fresh.scale / 2 + 1e-6,
      );
    });
  });
});
