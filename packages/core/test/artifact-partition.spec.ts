import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { analyzeModel } from '../src/model/analyze.js';
import { openModelArtifacts } from '../src/model/artifact-source.js';
import { disposeModel } from '../src/model/dispose-model.js';
import { fileSystemHandler } from '../src/model/fs-handler.js';
import { initBackend } from '../src/node/backend.js';
import { type ArtifactPartition, partitionArtifacts } from '../src/partition/artifact-partition.js';
import { partitionModel } from '../src/partition/partition.js';
import { type RunnablePartition, runPartition } from '../src/partition/run-partition.js';
import {
  modelFromBlobs,
  type StageBlobs,
  stageToBlobs,
  tensorBlobPath,
} from '../src/partition/stage-artifacts.js';
import { readBlob } from '../src/ship/blob-source.js';
import { disposeAll, expectClose } from './fixtures/compare.js';
import { fixture, fixtures, sampleInputs } from './fixtures/models.js';
import { writeQuantizedArtifacts } from './fixtures/quantized-artifacts.js';

let dir: string;
beforeAll(async () => {
  await initBackend();
  dir = await mkdtemp(join(tmpdir(), 'dinfer-artifact-partition-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes `model` as float32 artifacts in small shards over two groups (weights straddle files). */
async function artifactsOf(model: tf.LayersModel, name: string): Promise<string> {
  const target = join(dir, name.replaceAll(/\W+/g, '-'));
  await rm(target, { recursive: true, force: true });
  await writeQuantizedArtifacts(model, target, () => undefined, { groups: 2, shardBytes: 97 });
  return target;
}

async function loadStageModel(blobs: StageBlobs): Promise<tf.LayersModel> {
  return modelFromBlobs(blobs.topology, await Promise.all(blobs.tensors.map(readBlob)));
}

/** The artifact stages loaded as TF.js models, runnable like a partition. */
async function runnable(partition: ArtifactPartition): Promise<RunnablePartition> {
  const stages = [];
  for (const stage of partition.stages) stages.push({ ...stage, model: await loadStageModel(stage.blobs) });
  return { inputs: partition.inputs, outputs: partition.outputs, stages };
}

function valid(model: tf.LayersModel): number[] {
  return analyzeModel(model)
    .cuts.filter((c) => c.valid)
    .map((c) => c.index);
}

/** Evenly spread `count` cuts among the valid positions. */
function spreadCuts(cuts: readonly number[], count: number): number[] {
  const picks = Array.from(
    { length: count },
    (_, j) => cuts[Math.floor(((j + 1) * cuts.length) / (count + 1))]!,
  );
  return [...new Set(picks)].sort((a, b) => a - b);
}

/**
 * Splits at `cuts` both ways and checks that the artifact stages have the TF.js-object
 * stages' signatures and weight blobs, and that both chains compute the whole model's predict.
 */
async function checkAgreement(
  model: tf.LayersModel,
  path: string,
  cuts: readonly number[],
  inputs: tf.Tensor[],
) {
  const source = await openModelArtifacts(path);
  const fromArtifacts = await partitionArtifacts(source, cuts);
  const fromModel = partitionModel(model, cuts);
  expect(fromArtifacts.stages).toHaveLength(cuts.length + 1);
  fromArtifacts.stages.forEach((stage, i) => {
    const other = fromModel.stages[i]!;
    expect({
      layers: stage.layers,
      inputs: stage.inputs,
      outputs: stage.outputs,
      weightBytes: stage.weightBytes,
    }).toEqual({
      layers: other.layers,
      inputs: other.inputs,
      outputs: other.outputs,
      weightBytes: other.weightBytes,
    });
  });
  for (const [i, stage] of fromArtifacts.stages.entries()) {
    const objectBlobs = await stageToBlobs(fromModel.stages[i]!.model);
    const byName = (blobs: StageBlobs) => Object.fromEntries(blobs.tensors.map((t) => [t.name, t.sha256]));
    expect(byName(stage.blobs)).toEqual(byName(objectBlobs));
  }
  const expected = model.predict(inputs.length === 1 ? inputs[0]! : inputs) as tf.Tensor | tf.Tensor[];
  const chain = await runnable(fromArtifacts);
  const before = tf.memory().numTensors;
  const actual = runPartition(chain, inputs);
  const reference = runPartition(fromModel, inputs);
  expectClose(actual, expected);
  expectClose(actual, reference);
  disposeAll(actual);
  disposeAll(reference);
  expect(tf.memory().numTensors).toBe(before);
  disposeAll(expected);
  for (const stage of chain.stages) disposeModel(stage.model);
}

describe('partitionArtifacts agrees with partitionModel and with predict', () => {
  for (const f of fixtures) {
    it(`${f.name}: every valid 2-stage cut and spread 3- to 5-stage cut sets`, async () => {
      const model = f.build();
      const path = await artifactsOf(model, f.name);
      const inputs = sampleInputs(model, 2, 5);
      const cuts = valid(model);
      expect(cuts.length).toBeGreaterThan(0);
      for (const k of cuts) await checkAgreement(model, path, [k], inputs);
      for (const stages of [3, 4, 5]) {
        const set = spreadCuts(cuts, stages - 1);
        if (set.length !== stages - 1) continue;
        try {
          partitionModel(model, set);
        } catch (error) {
          if (isDinferError(error, DinferErrorCode.PARTITION_INVALID_CUT)) continue; // a stage of InputLayers only
          throw error;
        }
        await checkAgreement(model, path, set, inputs);
      }
      await checkAgreement(model, path, [], inputs);
      tf.dispose(inputs);
    });
  }

  it('refuses the cuts partitionModel refuses, with the same message', async () => {
    const model = fixture('multi-input multi-output').build();
    const source = await openModelArtifacts(await artifactsOf(model, 'refuse'));
    const names = model.layers.map((l) => l.name);
    const b = names.indexOf('b');
    for (const cuts of [[0], [model.layers.length], [2, 2], [1.5], [b, b + 1]]) {
      let fromModel: unknown;
      try {
        partitionModel(model, cuts);
      } catch (error) {
        fromModel = error;
      }
      const fromArtifacts = await partitionArtifacts(source, cuts).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(isDinferError(fromArtifacts, DinferErrorCode.PARTITION_INVALID_CUT)).toBe(true);
      expect((fromArtifacts as Error).message).toBe((fromModel as Error).message);
    }
  });
});

describe('artifact stages as files', () => {
  it('load with plain tf.loadLayersModel from a directory of model.json and <sha256>.bin', async () => {
    const model = fixture('shared Conv2D applied to its own output').build();
    const source = await openModelArtifacts(await artifactsOf(model, 'files'));
    const cut = valid(model)[2]!;
    const partition = await partitionArtifacts(source, [cut]);
    const stages: tf.LayersModel[] = [];
    for (const stage of partition.stages) {
      const target = join(dir, `files-stage-${stage.index}`);
      await mkdir(target, { recursive: true });
      await writeFile(join(target, 'model.json'), stage.blobs.topology);
      for (const t of stage.blobs.tensors)
        await writeFile(join(target, tensorBlobPath(t.sha256)), await readBlob(t));
      stages.push(await tf.loadLayersModel(fileSystemHandler(join(target, 'model.json'))));
    }
    const [x] = sampleInputs(model, 3, 2);
    const expected = model.predict(x!) as tf.Tensor;
    const actual = runPartition(
      { ...partition, stages: partition.stages.map((s, i) => ({ ...s, model: stages[i]! })) },
      x!,
    );
    expectClose(actual, expected);
    tf.dispose([x!, expected, actual as tf.Tensor]);
    for (const stage of stages) disposeModel(stage);
  });
});

describe('weights stored quantized', () => {
  it('keep their stored entries and bytes; float32 weights re-encoded on request read alike in ranges', async () => {
    const model = fixture('small CNN').build();
    const target = join(dir, 'quantized');
    await rm(target, { recursive: true, force: true });
    const written = await writeQuantizedArtifacts(
      model,
      target,
      (name) => (name.includes('conv2d') ? 'uint8' : name.includes('dense') ? 'float16' : undefined),
      { groups: 3, shardBytes: 50 },
    );
    const source = await openModelArtifacts(target);
    const cut = valid(model)[3]!;
    const asStored = await partitionArtifacts(source, [cut]);
    for (const stage of asStored.stages) {
      for (const t of stage.blobs.tensors) {
        const from = written.get(t.name)!;
        expect(t.entry).toEqual(from.entry);
        expect(Buffer.from(await readBlob(t)).equals(Buffer.from(from.bytes))).toBe(true);
      }
    }
    const halves = await partitionArtifacts(source, [cut], { quantization: 'uint8' });
    const reference = await stageToBlobs(
      await modelFromBlobs(
        asStored.stages[0]!.blobs.topology,
        await Promise.all(asStored.stages[0]!.blobs.tensors.map(readBlob)),
      ),
      { quantization: 'uint8' },
    );
    const want = Object.fromEntries(reference.tensors.map((t) => [t.name, t]));
    for (const t of halves.stages[0]!.blobs.tensors) {
      expect(t.entry.quantization?.dtype).toBe('uint8');
      expect(t.sha256).toBe(want[t.name]!.sha256);
      const whole = await readBlob(t);
      const pieces: Uint8Array[] = [];
      for (let at = 0; at < t.byteLength; at += 7)
        pieces.push(await t.read(at, Math.min(at + 7, t.byteLength)));
      expect(Buffer.concat(pieces).equals(Buffer.from(whole))).toBe(true);
    }
  });
});

describe('openModelArtifacts', () => {
  it('refuses shards whose sizes disagree with the manifest, naming the group', async () => {
    const model = fixture('sequential MLP').build();
    const target = await artifactsOf(model, 'short');
    const shard = (await readdir(target)).find((f) => f.startsWith('group2-shard1of'))!;
    await writeFile(join(target, shard), new Uint8Array(3));
    const error = await openModelArtifacts(target).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isDinferError(error, DinferErrorCode.MODEL_CORRUPT)).toBe(true);
    expect((error as Error).message).toMatch(/weight group 1/);
  });

  it('reads any byte range of a weight that straddles shard files', async () => {
    const model = fixture('sequential MLP').build();
    const source = await openModelArtifacts(await artifactsOf(model, 'ranges'));
    const values = new Map(model.weights.map((w) => [w.originalName, w.read().dataSync() as Float32Array]));
    for (const weight of source.weights) {
      const bytes = await weight.read(4, weight.byteLength - 4);
      const expected = values.get(weight.entry.name)!;
      expect([...new Float32Array(bytes.slice().buffer)]).toEqual([
        ...expected.subarray(1, expected.length - 1),
      ]);
    }
    await expect(source.weights[0]!.read(0, source.weights[0]!.byteLength + 1)).rejects.toThrow(
      /not a range/,
    );
  });
});
