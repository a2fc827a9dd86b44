import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeModel } from '../src/model/analyze.js';
import { disposeModel } from '../src/model/dispose-model.js';
import { stageTotals } from '../src/model/stage-totals.js';
import { initBackend } from '../src/node/backend.js';
import { loadPartition, savePartition } from '../src/partition/manifest.js';
import { type Partition, partitionModel } from '../src/partition/partition.js';
import { type RunnablePartition, runPartition } from '../src/partition/run-partition.js';
import { modelFromBlobs, stageToBlobs } from '../src/partition/stage-artifacts.js';
import { evaluateCuts, planCuts } from '../src/plan/planner.js';
import { stageKey } from '../src/protocol/messages.js';
import { disposeAll, expectClose } from './fixtures/compare.js';
import { fixture, fixtures, sampleInputs } from './fixtures/models.js';
import { loadShippedStage } from './fixtures/stage-blobs.js';

let dir: string;
beforeAll(async () => {
  await initBackend();
  dir = await mkdtemp(join(tmpdir(), 'dinfer-shared-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Fixtures with a shared layer whose calls some valid cut puts in different stages. */
const splitFixtures = [
  'shared layer re-applied in series',
  'shared Dense across branches of unequal depth',
  'shared Conv2D applied to its own output',
  'shared Dense called three times',
  'nested model called twice',
];

function validCuts(model: tf.LayersModel): number[] {
  return analyzeModel(model)
    .cuts.filter((c) => c.valid)
    .map((c) => c.index);
}

/** Layer objects that more than one stage model holds. */
function layersInSeveralStages(partition: Partition): tf.layers.Layer[] {
  const count = new Map<tf.layers.Layer, number>();
  for (const stage of partition.stages) {
    for (const layer of stage.model.layers) count.set(layer, (count.get(layer) ?? 0) + 1);
  }
  return [...count].filter(([, n]) => n > 1).map(([layer]) => layer);
}

function expectUniqueLayerNames(model: tf.LayersModel): void {
  const names = model.layers.map((l) => l.name);
  expect(new Set(names).size).toBe(names.length);
}

/** Every stage serialised to model.json + weight blobs and rebuilt by tf.loadLayersModel. */
async function shipped(partition: Partition): Promise<RunnablePartition> {
  const stages = [];
  for (const stage of partition.stages) {
    const blobs = await stageToBlobs(stage.model);
    const model = await modelFromBlobs(
      blobs.topology,
      blobs.tensors.map((t) => t.bytes),
    );
    expectUniqueLayerNames(model);
    stages.push({ index: stage.index, model, inputs: stage.inputs, outputs: stage.outputs });
  }
  return { inputs: partition.inputs, outputs: partition.outputs, stages };
}

/**
 * Partitions at `cuts`, runs the partition in process and as shipped stage artifacts, and
 * compares both with the whole model's predict; no tensor is left behind. Returns how many
 * layers the cuts split between stages.
 */
async function checkCuts(
  model: tf.LayersModel,
  cuts: readonly number[],
  inputs: tf.Tensor[],
): Promise<number> {
  const expected = model.predict(inputs.length === 1 ? inputs[0]! : inputs) as tf.Tensor | tf.Tensor[];
  const before = tf.memory().numTensors;
  const partition = partitionModel(model, cuts);
  for (const stage of partition.stages) expectUniqueLayerNames(stage.model);
  const inProcess = runPartition(partition, inputs);
  expectClose(inProcess, expected);
  disposeAll(inProcess);
  const remote = await shipped(partition);
  const fromArtifacts = runPartition(remote, inputs);
  expectClose(fromArtifacts, expected);
  disposeAll(fromArtifacts);
  for (const stage of remote.stages) disposeModel(stage.model);
  expect(tf.memory().numTensors).toBe(before);
  disposeAll(expected);
  return layersInSeveralStages(partition).length;
}

describe('shared layers whose calls fall on both sides of a cut', () => {
  for (const name of splitFixtures) {
    describe(name, () => {
      it('every valid cut reproduces model.predict, in process and from shipped stage artifacts', async () => {
        const model = fixture(name).build();
        const inputs = sampleInputs(model);
        const valid = validCuts(model);
        let splitting = 0;
        for (const k of valid) if ((await checkCuts(model, [k], inputs)) > 0) splitting++;
        expect(splitting).toBeGreaterThan(0);
        tf.dispose(inputs);
      });

      it('every 3-stage cut set reproduces model.predict', async () => {
        const model = fixture(name).build();
        const inputs = sampleInputs(model, 3, 5);
        const valid = validCuts(model);
        let sets = 0;
        for (const a of valid) {
          for (const b of valid) {
            if (b <= a) continue;
            await checkCuts(model, [a, b], inputs);
            sets++;
          }
        }
        expect(sets).toBeGreaterThan(0);
        tf.dispose(inputs);
      });

      it('partition, analysis and planner count each stage the weight bytes its artifacts hold', async () => {
        const model = fixture(name).build();
        const analysis = analyzeModel(model);
        const totals = stageTotals(analysis);
        const valid = validCuts(model);
        const cutSets = [...valid.map((k) => [k]), ...valid.slice(1).map((k) => [valid[0]!, k])];
        for (const cuts of cutSets) {
          const partition = partitionModel(model, cuts);
          const plan = evaluateCuts(analysis, cuts);
          for (const stage of partition.stages) {
            const blobs = await stageToBlobs(stage.model);
            const [start, end] = stage.layers;
            expect(stage.weightBytes).toBe(blobs.rawWeightBytes);
            expect(stage.weightBytes).toBe(stage.model.countParams() * 4);
            expect(plan.stages[stage.index]!.weightBytes).toBe(blobs.rawWeightBytes);
            expect(totals.weightBytes(start, end)).toBe(blobs.rawWeightBytes);
          }
        }
      });
    });
  }

  it('a layer called in three stages ships its weights with each of them', async () => {
    const model = fixture('shared Dense called three times').build();
    const names = model.layers.map((l) => l.name);
    const cuts = [names.indexOf('act1'), names.indexOf('act2')];
    expect(cuts).toEqual([2, 3]);
    const partition = partitionModel(model, cuts);
    const shared = model.getLayer('shared');
    for (const stage of partition.stages) {
      expect(stage.model.layers).toContain(shared);
      const blobs = await stageToBlobs(stage.model);
      expect(blobs.tensors.map((t) => t.name)).toEqual(
        expect.arrayContaining(['shared/kernel', 'shared/bias']),
      );
    }
    // Each stage runs exactly one of the three calls.
    expect(partition.stages[1]!.inputs.map((s) => s.name)).toEqual(['shared/0:0']);
    expect(partition.stages[2]!.inputs.map((s) => s.name)).toEqual(['shared/1:0']);
    const inputs = sampleInputs(model, 4);
    expect(await checkCuts(model, cuts, inputs)).toBe(1);
    tf.dispose(inputs);
  });

  it('a partition with split shared layers saves to and loads from disk as standard artifacts', async () => {
    const model = fixture('shared Conv2D applied to its own output').build();
    const valid = validCuts(model);
    const cuts = [valid[0]!, valid[valid.length - 1]!];
    const partition = partitionModel(model, cuts);
    expect(layersInSeveralStages(partition).map((l) => l.name)).toEqual(['shared_conv']);
    const target = join(dir, 'shared-conv');
    const manifest = await savePartition(partition, target);
    manifest.stages.forEach((stage, i) => {
      expect(stage.weightBytes).toBe(partition.stages[i]!.weightBytes);
    });
    const [x] = sampleInputs(model, 2);
    const expected = model.predict(x!) as tf.Tensor;
    const before = tf.memory().numTensors;
    const loaded = await loadPartition(target);
    const actual = runPartition(loaded, x!);
    expectClose(actual, expected);
    disposeAll(actual);
    for (const stage of loaded.stages) disposeModel(stage.model);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x!, expected]);
  });

  it('the planner keeps every real stage within the memory limit when a shared layer is split', () => {
    const model = fixture('shared Dense called three times').build();
    const analysis = analyzeModel(model);
    expect(analysis.layers.map((l) => l.name)).toEqual(['x', 'shared', 'act1', 'act2', 'out']);
    const layerCostsMs = [0, 1, 5, 5, 1];
    // Unconstrained, the balanced cut splits the shared layer's calls 2 + 1.
    expect(planCuts(analysis, { stages: 2, layerCostsMs }).cuts).toEqual([3]);
    const sharedBytes = model.getLayer('shared').countParams() * 4;
    const limit = sharedBytes + 12;
    const plan = planCuts(analysis, { stages: 2, layerCostsMs, memoryLimitBytes: limit });
    const partition = partitionModel(model, plan.cuts);
    partition.stages.forEach((stage, i) => {
      const real = stage.model.countParams() * 4;
      expect(plan.stages[i]!.weightBytes).toBe(real);
      expect(real).toBeLessThanOrEqual(limit);
    });
    expect(plan.cuts).toEqual([4]);
  });
});

describe('shared layers whose calls stay in one stage', () => {
  it('a layer shared by two branches of equal depth is never split', () => {
    const f = fixtures.find((x) => x.name === 'shared layer on two branches')!;
    const model = f.build();
    for (const k of validCuts(model)) {
      expect(layersInSeveralStages(partitionModel(model, [k]))).toEqual([]);
    }
  });

  it('a worker unloading a stage that calls a layer twice frees all its weights', async () => {
    const model = fixture('shared layer on two branches').build();
    const names = model.layers.map((l) => l.name);
    const partition = partitionModel(model, [names.indexOf('shared')]);
    const stage = partition.stages[1]!;
    expect(stage.model.layers.map((l) => l.name)).toContain('shared');
    const blobs = await stageToBlobs(stage.model);
    const before = tf.memory().numTensors;
    const loaded = await loadShippedStage(stageKey('shared', '1', 1), blobs, stage);
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    loaded.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
