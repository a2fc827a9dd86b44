import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { initBackend } from '../src/node/backend.js';
import { partitionModel } from '../src/partition/partition.js';
import {
  type HeldStageBlobs,
  modelFromBlobs,
  stageTensorHashes,
  stageToBlobs,
  tensorBlobPath,
} from '../src/partition/stage-artifacts.js';
import { rejection } from '../src/testing/suite-helpers.js';
import { disposeAll, expectClose } from './fixtures/compare.js';
import { fixture, sampleInputs } from './fixtures/models.js';
import { joinedWeights } from './fixtures/stage-blobs.js';

beforeAll(async () => {
  await initBackend();
});

const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const tensorsOf = (blobs: HeldStageBlobs): Uint8Array[] => blobs.tensors.map((t) => t.bytes);

describe('stageToBlobs / modelFromBlobs', () => {
  it('round-trips a model: same outputs, standard model.json, one hashed blob per tensor', async () => {
    const model = fixture('small CNN').build();
    const blobs = await stageToBlobs(model);
    expect(blobs.topologySha256).toBe(sha(blobs.topology));
    expect(blobs.tensors).toHaveLength(model.weights.length);
    const json = JSON.parse(new TextDecoder().decode(blobs.topology)) as tf.io.ModelJSON;
    expect(json.format).toBe('layers-model');
    expect(json.weightsManifest).toHaveLength(model.weights.length);
    blobs.tensors.forEach((t, i) => {
      const variable = model.weights[i]!; // TF.js saves trainable weights first, then the others
      expect(t.sha256).toBe(sha(t.bytes));
      expect(t.name).toBe(variable.originalName);
      expect(t.bytes.byteLength).toBe(variable.shape.reduce<number>((a, b) => a * (b ?? 1), 1) * 4);
      expect(json.weightsManifest[i]!.paths).toEqual([tensorBlobPath(t.sha256)]);
      expect(json.weightsManifest[i]!.weights).toEqual([t.entry]);
    });
    expect(stageTensorHashes(blobs.topology)).toEqual(blobs.tensors.map((t) => t.sha256));
    expect(blobs.weightBytes).toBe(blobs.rawWeightBytes);

    const inputs = sampleInputs(model, 3);
    const expected = model.predict(inputs) as tf.Tensor;
    for (const weights of [tensorsOf(blobs), joinedWeights(blobs)]) {
      const rebuilt = await modelFromBlobs(blobs.topology, weights);
      const actual = rebuilt.predict(inputs) as tf.Tensor;
      expectClose(actual, expected, 0);
      actual.dispose();
      rebuilt.dispose();
    }
    disposeAll([expected, ...inputs]);
    model.dispose();
  });

  it('gives byte-identical blobs for the same model and for its rebuilt copy', async () => {
    const model = fixture('sequential MLP').build();
    const a = await stageToBlobs(model);
    const b = await stageToBlobs(model);
    expect(b.topologySha256).toBe(a.topologySha256);
    expect(b.tensors.map((t) => t.sha256)).toEqual(a.tensors.map((t) => t.sha256));
    const rebuilt = await modelFromBlobs(a.topology, tensorsOf(a));
    const c = await stageToBlobs(rebuilt);
    expect(c.tensors.map((t) => t.sha256)).toEqual(a.tensors.map((t) => t.sha256));
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
    const rebuilt = await modelFromBlobs(blobs.topology, tensorsOf(blobs));
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
    const blobs = await stageToBlobs(model);
    const { topology } = blobs;
    const weights = joinedWeights(blobs);
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
    // Per-tensor blobs: one missing, or one of the wrong size.
    const tensors = tensorsOf(blobs);
    expect(
      isDinferError(
        await rejection(modelFromBlobs(topology, tensors.slice(1))),
        DinferErrorCode.MODEL_CORRUPT,
      ),
    ).toBe(true);
    const cut = [tensors[0]!.subarray(4), ...tensors.slice(1)];
    expect(isDinferError(await rejection(modelFromBlobs(topology, cut)), DinferErrorCode.MODEL_CORRUPT)).toBe(
      true,
    );
    const notUtf8 = new Uint8Array([0xff, 0xfe, 0x00]);
    expect(
      isDinferError(await rejection(modelFromBlobs(notUtf8, weights)), DinferErrorCode.MODEL_CORRUPT),
    ).toBe(true);
    model.dispose();
  });
});
