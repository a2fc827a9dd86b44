import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { analyzeModel } from '../src/model/analyze.js';
import { initBackend } from '../src/node/backend.js';
import { partitionModel } from '../src/partition/partition.js';
import { runPartition } from '../src/partition/run-partition.js';
import { disposeAll, expectClose } from './fixtures/compare.js';
import { fixture, fixtures, sampleInputs } from './fixtures/models.js';

beforeAll(async () => {
  await initBackend();
});

/** Cut positions with a non-InputLayer layer on both sides, computed from model.layers alone. */
function cutsWithComputingLayers(model: tf.LayersModel): number[] {
  const computing = model.layers.map((l) => l.getClassName() !== 'InputLayer');
  const result: number[] = [];
  for (let k = 1; k < model.layers.length; k++) {
    if (computing.slice(0, k).some(Boolean) && computing.slice(k).some(Boolean)) result.push(k);
  }
  return result;
}

/** Every stage `[bounds[i], bounds[i+1])` holds a non-InputLayer layer. */
function everyStageComputes(model: tf.LayersModel, cuts: readonly number[]): boolean {
  const bounds = [0, ...cuts, model.layers.length];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const slice = model.layers.slice(bounds[i], bounds[i + 1]);
    if (!slice.some((l) => l.getClassName() !== 'InputLayer')) return false;
  }
  return true;
}

/** Evenly spread `count` cuts among the valid positions. */
function spreadCuts(valid: readonly number[], count: number): number[] {
  const picks = Array.from(
    { length: count },
    (_, j) => valid[Math.floor(((j + 1) * valid.length) / (count + 1))]!,
  );
  return [...new Set(picks)].sort((a, b) => a - b);
}

/** Runs the partition and the whole model on the same inputs; checks outputs and tensor counts. */
function checkPartition(model: tf.LayersModel, cuts: readonly number[], inputs: tf.Tensor[]): void {
  const expected = model.predict(inputs.length === 1 ? inputs[0]! : inputs) as tf.Tensor | tf.Tensor[];
  const before = tf.memory().numTensors;
  const partition = partitionModel(model, cuts);
  expect(partition.stages.length).toBe(cuts.length + 1);
  const actual = runPartition(partition, inputs);
  expectClose(actual, expected);
  disposeAll(actual);
  expect(tf.memory().numTensors).toBe(before);
  disposeAll(expected);
}

describe('partitionModel + runPartition on synthetic models', () => {
  for (const f of fixtures) {
    describe(f.name, () => {
      it('every valid 2-stage cut reproduces model.predict with no tensor leak', () => {
        const model = f.build();
        const inputs = sampleInputs(model);
        const analysis = analyzeModel(model);
        const valid = analysis.cuts.filter((c) => c.valid).map((c) => c.index);
        expect(valid).toEqual(cutsWithComputingLayers(model));
        expect(valid.length).toBeGreaterThan(0);
        for (const k of valid) checkPartition(model, [k], inputs);
        tf.dispose(inputs);
      });

      it('3, 4 and 5-stage cut sets reproduce model.predict', () => {
        const model = f.build();
        const inputs = sampleInputs(model, 3, 11);
        const valid = analyzeModel(model)
          .cuts.filter((c) => c.valid)
          .map((c) => c.index);
        let tried = 0;
        for (const stages of [3, 4, 5]) {
          const cuts = spreadCuts(valid, stages - 1);
          if (cuts.length !== stages - 1 || !everyStageComputes(model, cuts)) continue;
          checkPartition(model, cuts, inputs);
          tried++;
        }
        if (valid.length >= 4) expect(tried).toBeGreaterThan(0);
        tf.dispose(inputs);
      });

      it('one stage (no cuts) equals the model', () => {
        const model = f.build();
        const inputs = sampleInputs(model, 1, 3);
        checkPartition(model, [], inputs);
        tf.dispose(inputs);
      });
    });
  }

  it('every 3-stage cut pair of the long skip model works (tensors passed through a middle stage)', () => {
    const model = fixture('skip connection over several stages').build();
    const inputs = sampleInputs(model);
    const valid = cutsWithComputingLayers(model);
    let pairs = 0;
    for (const a of valid) {
      for (const b of valid) {
        if (b <= a) continue;
        checkPartition(model, [a, b], inputs);
        pairs++;
      }
    }
    expect(pairs).toBe((valid.length * (valid.length - 1)) / 2);
    tf.dispose(inputs);
  });

  it('every 3-stage cut pair of the multi-input multi-output model works', () => {
    const model = fixture('multi-input multi-output').build();
    const inputs = sampleInputs(model);
    const valid = analyzeModel(model)
      .cuts.filter((c) => c.valid)
      .map((c) => c.index);
    for (const a of valid) {
      for (const b of valid) {
        if (b > a && everyStageComputes(model, [a, b])) checkPartition(model, [a, b], inputs);
      }
    }
    tf.dispose(inputs);
  });

  it('accepts inputs by name and returns outputs in model order', () => {
    const model = fixture('multi-input multi-output').build();
    const [a, b] = sampleInputs(model);
    const valid = analyzeModel(model).cuts.filter((c) => c.valid);
    const partition = partitionModel(model, [valid[0]!.index]);
    const expected = model.predict([a!, b!]) as tf.Tensor[];
    const actual = runPartition(partition, { b: b!, a: a! }) as tf.Tensor[];
    expect(Array.isArray(actual)).toBe(true);
    expectClose(actual, expected);
    tf.dispose([a!, b!, ...actual, ...expected]);
  });
});

describe('stage signatures', () => {
  it('a stage between two cuts passes a long skip through (input and output of the stage)', () => {
    const model = fixture('skip connection over several stages').build();
    const names = model.layers.map((l) => l.name);
    const cuts = [names.indexOf('d3'), names.indexOf('d5')];
    const partition = partitionModel(model, cuts);
    const middle = partition.stages[1]!;
    const middleIn = middle.inputs.map((s) => s.name);
    const middleOut = middle.outputs.map((s) => s.name);
    expect(middleIn).toEqual(expect.arrayContaining(['x', 'd1/0:0', 'd2/0:0']));
    expect(middleOut).toEqual(expect.arrayContaining(['x', 'd1/0:0', 'd4/0:0']));
    expect(middle.model.inputs.length).toBe(middleIn.length);
    expect(middle.model.outputs.length).toBe(middleOut.length);
    // Shared weights: the stage model holds the very same variables as the original layers.
    const d3 = model.getLayer('d3');
    expect(middle.model.getLayer('d3')).toBe(d3);
    expect(partition.stages[0]!.inputs.map((s) => s.name)).toEqual(['x']);
    expect(partition.stages[2]!.outputs.map((s) => s.name)).toEqual(model.outputNames);
  });

  it('a residual block cut inside carries two tensors, at its end one', () => {
    const model = fixture('residual add block').build();
    const index = (name: string) => model.layers.findIndex((l) => l.name === name);
    const inside = partitionModel(model, [index('c2')]);
    expect(inside.stages[0]!.outputs.map((s) => s.name).sort()).toEqual(['image', 'relu1/0:0']);
    const after = partitionModel(model, [index('relu2')]);
    expect(after.stages[0]!.outputs.map((s) => s.name)).toEqual(['add/0:0']);
    expect(after.stages[1]!.inputs[0]!.shape).toEqual([null, 8, 8, 4]);
  });

  it('the early model output of a multi-output model leaves through every later stage', () => {
    const model = fixture('multi-input multi-output').build();
    const names = model.layers.map((l) => l.name);
    const k = names.indexOf('early') + 1;
    const last = model.layers.length - 1;
    expect(k).toBeLessThan(last);
    const partition = partitionModel(model, [k, last]);
    expect(partition.stages[0]!.outputs.map((s) => s.name)).toContain('early');
    expect(partition.stages[1]!.outputs.map((s) => s.name)).toContain('early');
    expect(partition.stages[2]!.outputs.map((s) => s.name)).toEqual(['main', 'early']);
  });

  it('a model output that nothing else reads crosses the cuts after it', () => {
    const model = fixture('two output heads').build();
    const names = model.layers.map((l) => l.name);
    const k = names.indexOf('head_a') + 1;
    expect(k).toBeGreaterThan(0);
    expect(k).toBeLessThan(names.length);
    const partition = partitionModel(model, [k]);
    expect(partition.stages[0]!.outputs.map((s) => s.name)).toContain('head_a');
    expect(partition.stages[1]!.outputs.map((s) => s.name)).toEqual(['head_a', 'head_b']);
  });

  it('stage weight bytes add up to the model weight bytes, plus each copy of a layer split by a cut', () => {
    for (const f of fixtures) {
      const model = f.build();
      const valid = analyzeModel(model)
        .cuts.filter((c) => c.valid)
        .map((c) => c.index);
      const partition = partitionModel(model, [valid[0]!]);
      const total = partition.stages.reduce((s, st) => s + st.weightBytes, 0);
      // A layer object inside several stage models ships once with each of them.
      const copies = new Map<tf.layers.Layer, number>();
      for (const stage of partition.stages) {
        expect(stage.weightBytes).toBe(stage.model.countParams() * 4);
        for (const layer of stage.model.layers) copies.set(layer, (copies.get(layer) ?? 0) + 1);
      }
      const extra = [...copies].reduce((sum, [layer, n]) => sum + (n - 1) * layer.countParams() * 4, 0);
      if (!f.sharesLayers) expect(extra).toBe(0);
      expect(total).toBe(model.countParams() * 4 + extra);
    }
  });
});

describe('invalid cuts', () => {
  const model = fixture('sequential MLP').build();
  const L = model.layers.length;
  const cases: [string, number[]][] = [
    ['zero', [0]],
    ['the layer count', [L]],
    ['negative', [-1]],
    ['fractional', [1.5]],
    ['not increasing', [2, 1]],
    ['repeated', [2, 2]],
    ['NaN', [Number.NaN]],
  ];
  for (const [label, cuts] of cases) {
    it(`rejects a ${label} cut with PARTITION_INVALID_CUT naming it`, () => {
      let caught: unknown;
      try {
        partitionModel(model, cuts);
      } catch (error) {
        caught = error;
      }
      expect(isDinferError(caught, DinferErrorCode.PARTITION_INVALID_CUT)).toBe(true);
      const error = caught as { details: { cut: unknown }; message: string };
      expect(cuts.some((c) => Object.is(c, error.details.cut))).toBe(true);
      expect(error.message).toMatch(/valid cut positions/);
      expect(error.message).toMatch(new RegExp(`1\\.\\.${L - 1}`));
    });
  }

  it('rejects a cut that leaves only an InputLayer in the first stage, saying so', () => {
    const functional = fixture('residual add block').build();
    expect(functional.layers[0]!.getClassName()).toBe('InputLayer');
    expect(() => partitionModel(functional, [1])).toThrow(/no computing layer/);
    expect(() => partitionModel(functional, [1])).toThrow(
      /stage \[0, 1\) would hold no computing layer: it would hold only the InputLayer\(s\) "image"/,
    );
  });

  it('rejects a cut set that leaves only a model input between two cuts, naming that stage', () => {
    const multi = fixture('multi-input multi-output').build();
    const names = multi.layers.map((l) => l.name);
    const b = names.indexOf('b');
    expect(multi.layers[b]!.getClassName()).toBe('InputLayer');
    expect(analyzeModel(multi).cuts[b - 1]!.valid).toBe(true);
    let caught: unknown;
    try {
      partitionModel(multi, [b, b + 1]);
    } catch (error) {
      caught = error;
    }
    expect(isDinferError(caught, DinferErrorCode.PARTITION_INVALID_CUT)).toBe(true);
    const error = caught as { message: string; details: { cut: unknown } };
    expect(error.details.cut).toBe(b + 1);
    expect(error.message).toContain(`stage [${b}, ${b + 1}) would hold no computing layer`);
    expect(error.message).toContain('"b"');
  });

  it('accepts every cut between the calls of a serially shared layer', () => {
    const serial = fixture('shared layer re-applied in series').build();
    const names = serial.layers.map((l) => l.name);
    // `shared` is applied before and after `mid`: cutting between them gives both stages a copy.
    const between = names.indexOf('mid');
    expect(names.indexOf('shared')).toBeLessThan(between);
    const analysis = analyzeModel(serial);
    expect(analysis.cuts[between - 1]!.valid).toBe(true);
    const partition = partitionModel(serial, [between]);
    expect(partition.stages.map((s) => s.model.layers.some((l) => l.name === 'shared'))).toEqual([
      true,
      true,
    ]);
    const good = names.indexOf('out');
    expect(analysis.cuts[good - 1]!.valid).toBe(true);
  });
});
