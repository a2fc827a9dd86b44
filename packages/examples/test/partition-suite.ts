import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  analyzeModel,
  analyzeModelJson,
  disposeModel,
  modelFromBlobs,
  openModelArtifacts,
  type Partition,
  partitionArtifacts,
  partitionModel,
  readBlob,
  runPartition,
  saveLayersModel,
  stageToBlobs,
} from '@dinfer/core';
import { seededRandom } from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** What differs between the big example models in {@link partitionSuite}. */
export interface PartitionSuiteSpec {
  readonly name: string;
  /** Builds the model at `size` x `size` x 3 (both are fully convolutional up to pooling). */
  build(size: number): tf.LayersModel;
  /** Fewer valid cuts than this means the analysis lost some. */
  readonly minValidCuts: number;
  /** Fewer 2-tensor cuts than this means skip connections were not carried. */
  readonly minTwoTensorCuts: number;
  /** 3- to 5-stage cut sets, given `after(layerName)` = the cut right after that layer. */
  cutSets(after: (name: string) => number): number[][];
  /** A block boundary whose activation stage 0 must emit, and its channel count. */
  readonly boundary: { readonly layer: string; readonly channels: number };
}

// The example models run at 64x64 with the same layers and weights, keeping every-cut checks fast.
const SIZE = 64;

/** Max |a - b| over max(1, max |b|), for probabilities and for log-probabilities. */
function relativeErrors(actual: Float32Array, reference: Float32Array): { probs: number; logs: number } {
  let diff = 0;
  let scale = 1;
  let logDiff = 0;
  let logScale = 1;
  for (let i = 0; i < reference.length; i++) {
    const a = actual[i]!;
    const b = reference[i]!;
    diff = Math.max(diff, Math.abs(a - b));
    scale = Math.max(scale, Math.abs(b));
    // Log-probabilities are the logits up to a constant: sensitive where probabilities are tiny.
    logDiff = Math.max(logDiff, Math.abs(Math.log(a) - Math.log(b)));
    logScale = Math.max(logScale, Math.abs(Math.log(b)));
  }
  return { probs: diff / scale, logs: logDiff / logScale };
}

function runAndCompare(
  partition: Partition,
  input: tf.Tensor,
  expected: Float32Array,
): { probs: number; logs: number } {
  const out = runPartition(partition, input);
  if (Array.isArray(out)) throw new Error('expected one output tensor');
  const values = out.dataSync() as Float32Array;
  out.dispose();
  return relativeErrors(values, expected);
}

/**
 * Partition checks for a big example model: every valid 2-stage cut and several 3-5 stage
 * cut sets chained against the whole model, no tensor leaks, and a block boundary activation.
 */
export function partitionSuite(spec: PartitionSuiteSpec): void {
  let model: tf.LayersModel;
  let input: tf.Tensor4D;
  let expected: Float32Array;
  let validCuts: number[];

  describe(`${spec.name} partitions`, () => {
    beforeAll(async () => {
      await initBackend();
      model = spec.build(SIZE);
      const random = seededRandom(11);
      input = tf.tensor4d(random.fillUniform(new Float32Array(SIZE * SIZE * 3), -1, 1), [1, SIZE, SIZE, 3]);
      const out = model.predict(input) as tf.Tensor;
      expected = out.dataSync() as Float32Array;
      out.dispose();
      validCuts = analyzeModel(model)
        .cuts.filter((c) => c.valid)
        .map((c) => c.index);
    });

    afterAll(() => {
      input.dispose();
      model.dispose();
    });

    it('has a non-degenerate reference output', () => {
      expect(expected.every(Number.isFinite)).toBe(true);
      const max = Math.max(...expected);
      // Neither one-hot nor uniform over the 1000 classes.
      expect(max).toBeLessThan(0.5);
      expect(max).toBeGreaterThan(2 / 1000);
    });

    it('splits at every valid cut into 2 stages that chain to the whole model', () => {
      expect(validCuts.length).toBeGreaterThan(spec.minValidCuts);
      const start = tf.memory().numTensors;
      const failures: string[] = [];
      let twoTensorCuts = 0;
      for (const cut of validCuts) {
        const partition = partitionModel(model, [cut]);
        expect(partition.stages.length).toBe(2);
        const crossing = partition.stages[0]!.outputs.length;
        if (crossing >= 2) twoTensorCuts++;
        const err = runAndCompare(partition, input, expected);
        if (!(err.probs <= 1e-4 && err.logs <= 1e-4)) {
          failures.push(`cut ${cut} (${model.layers[cut]!.name}): ${JSON.stringify(err)}`);
        }
      }
      expect(failures).toEqual([]);
      expect(twoTensorCuts).toBeGreaterThan(spec.minTwoTensorCuts);
      expect(tf.memory().numTensors).toBe(start);
    });

    it('chains 3-, 4- and 5-stage cut sets, inside and between blocks', () => {
      const after = (name: string) => model.layers.findIndex((l) => l.name === name) + 1;
      const cutSets = [...spec.cutSets(after), [3, 60, 120]];
      const start = tf.memory().numTensors;
      for (const cuts of cutSets) {
        for (const cut of cuts) expect(validCuts).toContain(cut);
        const partition = partitionModel(model, cuts);
        expect(partition.stages.length).toBe(cuts.length + 1);
        const err = runAndCompare(partition, input, expected);
        expect(err.probs, `cuts ${cuts.join(',')}`).toBeLessThanOrEqual(1e-4);
        expect(err.logs, `cuts ${cuts.join(',')}`).toBeLessThanOrEqual(1e-4);
      }
      expect(tf.memory().numTensors).toBe(start);
    });

    it('is split alike from its artifacts, at 2- to 5-stage cut sets, without building the model', async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'dinfer-partition-suite-'));
      try {
        const saved = await saveLayersModel(model, dir);
        const source = await openModelArtifacts(saved.modelJsonPath);
        expect(analyzeModelJson(source.json, source.path)).toEqual(analyzeModel(model));
        const after = (name: string) => model.layers.findIndex((l) => l.name === name) + 1;
        const start = tf.memory().numTensors;
        for (const cuts of [[spec.boundary.layer].map(after), ...spec.cutSets(after)]) {
          const fromArtifacts = await partitionArtifacts(source, cuts);
          const fromModel = partitionModel(model, cuts);
          const stages = [];
          for (const [i, stage] of fromArtifacts.stages.entries()) {
            const other = fromModel.stages[i]!;
            expect([stage.layers, stage.inputs, stage.outputs, stage.weightBytes]).toEqual([
              other.layers,
              other.inputs,
              other.outputs,
              other.weightBytes,
            ]);
            const hashes = (blobs: { tensors: readonly { name: string; sha256: string }[] }) =>
              Object.fromEntries(blobs.tensors.map((t) => [t.name, t.sha256]));
            expect(hashes(stage.blobs)).toEqual(hashes(await stageToBlobs(other.model)));
            const loaded = await modelFromBlobs(stage.blobs.topology, (g) =>
              readBlob(stage.blobs.tensors[g]!),
            );
            stages.push({ ...stage, model: loaded });
          }
          const out = runPartition({ ...fromArtifacts, stages }, input);
          if (Array.isArray(out)) throw new Error('expected one output tensor');
          const err = relativeErrors(out.dataSync() as Float32Array, expected);
          out.dispose();
          for (const stage of stages) disposeModel(stage.model);
          expect(err.probs, `cuts ${cuts.join(',')}`).toBeLessThanOrEqual(1e-4);
          expect(err.logs, `cuts ${cuts.join(',')}`).toBeLessThanOrEqual(1e-4);
        }
        expect(tf.memory().numTensors).toBe(start);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('emits the same activation at a block boundary as the model itself', () => {
      const cut = model.layers.findIndex((l) => l.name === spec.boundary.layer) + 1;
      const partition = partitionModel(model, [cut]);
      const stage0 = partition.stages[0]!.model;
      // Node 0 is the layer's call in the original model (stage models add more nodes).
      const activation = model.getLayer(spec.boundary.layer).getOutputAt(0) as tf.SymbolicTensor;
      const probe = tf.model({ inputs: model.inputs, outputs: activation });
      const [got, want] = tf.tidy(() => [
        stage0.predict(input) as tf.Tensor,
        probe.predict(input) as tf.Tensor,
      ]);
      expect(got!.shape).toEqual([1, SIZE / 8, SIZE / 8, spec.boundary.channels]);
      expect(got!.shape).toEqual(want!.shape);
      const maxDiff = tf.tidy(() => tf.max(tf.abs(tf.sub(got!, want!))).dataSync()[0]!);
      const scale = tf.tidy(() => tf.max(tf.abs(want!)).dataSync()[0]!);
      expect(scale).toBeGreaterThan(0);
      expect(maxDiff).toBeLessThanOrEqual(1e-4 * Math.max(1, scale));
      tf.dispose([got!, want!]);
    });
  });
}
