import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { partitionModel } from '../src/model/partition.js';
import { modelFromBlobs, STAGE_WEIGHTS_FILE, stageToBlobs } from '../src/runtime/stage-artifacts.js';
import { disposeAll, expectClose } from './fixtures/compare.js';
import { fixture, sampleInputs } from './fixtures/models.js';

beforeAll(async () => {
  await initBackend();
});

const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('stageToBlobs / modelFromBlobs', () => {
  it('round-trips a model: same outputs, standard model.json, hashes of the bytes', async () => {
    const model = fixture('small CNN').build();
    const blobs = await stageToBlobs(model);
    expect(blobs.topologySha256).toBe(sha(blobs.topology));
    expect(blobs.weightsSha256).toBe(sha(blobs.weights));
    const json = JSON.parse(new TextDecoder().decode(blobs.topology)) as tf.io.ModelJSON;
    expect(json.format).toBe('layers-model');
    expect(json.weightsManifest).toHaveLength(1);
    expect(json.weightsManifest[0]!.paths).toEqual([STAGE_WEIGHTS_FILE]);
    const declared = json.weightsManifest[0]!.weights.reduce(
      (s, w) => s + w.shape.reduce((a, b) => a * b, 1) * 4,
      0,
    );
    expect(blobs.weights.byteLength).toBe(declared);

    const rebuilt = await modelFromBlobs(blobs.topology, blobs.weights);
    const inputs = sampleInputs(model, 3);
    const expected = model.predict(inputs) as tf.Tensor;
    const actual = rebuilt.predict(inputs) as tf.Tensor;
    expectClose(actual, expected, 0);
    disposeAll([actual, expected, ...inputs]);
    rebuilt.dispose();
    model.dispose();
  });

  it('gives byte-identical blobs for the same model and for its rebuilt copy', async () => {
    const model = fixture('sequential MLP').build();
    const a = await stageToBlobs(model);
    const b = await stageToBlobs(model);
    expect(b.topologySha256).toBe(a.topologySha256);
    expect(b.weightsSha256).toBe(a.weightsSha256);
    const rebuilt = await modelFromBlobs(a.topology, a.weights);
    const c = await stageToBlobs(rebuilt);
    expect(c.weightsSha256).toBe(a.weightsSha256);
    expect(c.topologySha256).toBe(a.topologySha256);
    rebuilt.dispose();
    model.dispose();
  });

  it('ships a multi-input partition stage that computes like the in-process stage', async () => {
    const model = fixture('residual add block').build();
    const partition = partitionModel(model, [4]);
    const stage = partition.stages[1]!;
    expect(stage.inputs.length).toBe(2);
    const blobs = await stageToBlobs(stage.model);
    const before = tf.memory().numTensors;
    const rebuilt = await modelFromBlobs(blobs.topology, blobs.weights);
    const inputs = sampleInputs(stage.model, 2);
    const expected = stage.model.predict(inputs) as tf.Tensor;
    const actual = rebuilt.predict(inputs) as tf.Tensor;
    expectClose(actual, expected, 0);
    disposeAll([actual, expected, ...inputs]);
    rebuilt.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('refuses weights of the wrong size and broken topologies with MODEL_CORRUPT', async () => {
    const model = fixture('sequential MLP').build();
    const { topology, weights } = await stageToBlobs(model);
    const short = await rejection(modelFromBlobs(topology, weights.subarray(0, weights.byteLength - 4)));
    expect(isDinferError(short, DinferErrorCode.MODEL_CORRUPT)).toBe(true);
    const long = new Uint8Array(weights.byteLength + 4);
    long.set(weights);
    expect(
      isDinferError(await rejection(modelFromBlobs(topology, long)), DinferErrorCode.MODEL_CORRUPT),
    ).toBe(true);
    const garbage = new TextEncoder().encode('{"modelTopology": ');
    expect(
      isDinferError(await rejection(modelFromBlobs(garbage, weights)), DinferErrorCode.MODEL_CORRUPT),
    ).toBe(true);
    const notUtf8 = new Uint8Array([0xff, 0xfe, 0x00]);
    expect(
      isDinferError(await rejection(modelFromBlobs(notUtf8, weights)), DinferErrorCode.MODEL_CORRUPT),
    ).toBe(true);
    model.dispose();
  });
});
