import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { graphRunner } from '../src/model/graph-runner.js';
import { initBackend } from '../src/node/backend.js';
import { disposeAll } from './fixtures/compare.js';
import { fixtures, prng, randomizeWeights, sampleInputs } from './fixtures/models.js';

beforeAll(async () => {
  await initBackend();
});

function predictList(model: tf.LayersModel, inputs: tf.Tensor[]): tf.Tensor[] {
  const y = model.predict(inputs.length === 1 ? inputs[0]! : inputs) as tf.Tensor | tf.Tensor[];
  return Array.isArray(y) ? y : [y];
}

/** Asserts bit-for-bit equal values, shapes and dtypes. */
function expectSame(actual: readonly tf.Tensor[], expected: readonly tf.Tensor[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    const b = expected[i]!;
    expect(a.shape).toEqual(b.shape);
    expect(a.dtype).toBe(b.dtype);
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
  });
}

/** Resolves on the next macrotask, counting calls. */
function countingPause(): { pause: () => Promise<void>; readonly count: number } {
  let count = 0;
  return {
    pause: () => {
      count++;
      return new Promise<void>((resolve) => setImmediate(resolve));
    },
    get count() {
      return count;
    },
  };
}

function deepMlp(depth: number): tf.LayersModel {
  const layers: tf.layers.Layer[] = [tf.layers.dense({ units: 8, activation: 'relu', inputShape: [8] })];
  for (let i = 1; i < depth; i++) layers.push(tf.layers.dense({ units: 8, activation: 'tanh' }));
  const model = tf.sequential({ layers });
  randomizeWeights(model, 3);
  return model;
}

describe('graphRunner', () => {
  for (const f of fixtures) {
    it(`computes what predict computes, bit for bit, and leaks nothing: ${f.name}`, async () => {
      const model = f.build();
      const inputs = sampleInputs(model, 3);
      const expected = predictList(model, inputs);
      const before = tf.memory().numTensors;
      const runner = graphRunner(model);
      const sync = runner.run(inputs);
      const paused = countingPause();
      const async = await runner.runAsync(inputs, { pause: paused.pause, sliceMs: 0 });
      expectSame(sync, expected);
      expectSame(async, expected);
      expect(paused.count).toBeGreaterThan(0);
      disposeAll(sync);
      disposeAll(async);
      expect(tf.memory().numTensors).toBe(before);
      for (const x of inputs) expect(x.isDisposed).toBe(false);
      disposeAll(expected);
      disposeAll(inputs);
      model.dispose();
    });
  }

  it('passes masks on as predict does (embedding with mask_zero into a recurrent layer)', () => {
    const input = tf.input({ shape: [6], dtype: 'int32' });
    let h = tf.layers
      .embedding({ inputDim: 10, outputDim: 4, maskZero: true })
      .apply(input) as tf.SymbolicTensor;
    h = tf.layers.simpleRNN({ units: 5, returnSequences: true }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.gru({ units: 3 }).apply(h) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: h });
    randomizeWeights(model, 5);
    // Trailing zeros are masked: the recurrent layers skip those steps.
    const ids = tf.tensor2d(
      [
        [3, 1, 4, 0, 0, 0],
        [5, 9, 2, 6, 5, 0],
      ],
      [2, 6],
      'int32',
    );
    const expected = predictList(model, [ids]);
    const before = tf.memory().numTensors;
    const actual = graphRunner(model).run([ids]);
    expectSame(actual, expected);
    // The mask matters: unmasked, the zeros would change the result.
    const call = (i: number, x: tf.Tensor) => model.layers[i]!.apply(x) as tf.Tensor;
    const unmasked = tf.tidy(() => call(3, call(2, call(1, ids))));
    expect(Array.from(unmasked.dataSync())).not.toEqual(Array.from(actual[0]!.dataSync()));
    disposeAll(actual);
    unmasked.dispose();
    expect(tf.memory().numTensors).toBe(before);
    disposeAll(expected);
    ids.dispose();
    model.dispose();
  });

  it('frees every intermediate after its last use', async () => {
    const model = deepMlp(24);
    const [x] = sampleInputs(model, 2);
    const base = tf.memory().numTensors;
    let peak = 0;
    const outputs = await graphRunner(model).runAsync([x!], {
      pause: async () => {
        peak = Math.max(peak, tf.memory().numTensors - base);
      },
      sliceMs: 0,
    });
    // At a pause only the last layer's output is alive, never the 20-odd before it.
    expect(peak).toBe(1);
    disposeAll(outputs);
    expect(tf.memory().numTensors).toBe(base);
    x!.dispose();
    model.dispose();
  });

  it('stops an aborted run at its next pause, freeing what it made', async () => {
    const model = deepMlp(12);
    const [x] = sampleInputs(model, 2);
    const base = tf.memory().numTensors;
    const controller = new AbortController();
    let pauses = 0;
    const run = graphRunner(model).runAsync([x!], {
      pause: async () => {
        if (++pauses === 3) controller.abort();
      },
      sliceMs: 0,
      signal: controller.signal,
    });
    await expect(run).rejects.toMatchObject({ code: DinferErrorCode.ABORTED });
    expect(pauses).toBe(3);
    expect(tf.memory().numTensors).toBe(base);
    expect(x!.isDisposed).toBe(false);
    x!.dispose();
    model.dispose();
  });

  it('returns copies for outputs that are inputs or appear twice', () => {
    const a = tf.input({ shape: [3] });
    const d = tf.layers.dense({ units: 2 }).apply(a) as tf.SymbolicTensor;
    const model = tf.model({ inputs: a, outputs: [a, d, d] });
    const x = tf.tensor2d([[1, 2, 3]]);
    const before = tf.memory().numTensors;
    const [pass, first, second] = graphRunner(model).run([x]);
    expect(pass).not.toBe(x);
    expect(second).not.toBe(first);
    expect(Array.from(pass!.dataSync())).toEqual([1, 2, 3]);
    expect(Array.from(second!.dataSync())).toEqual(Array.from(first!.dataSync()));
    disposeAll([pass!, first!, second!]);
    expect(tf.memory().numTensors).toBe(before);
    expect(x.isDisposed).toBe(false);
    x.dispose();
    model.dispose();
  });

  it('refuses inputs whose count, dtype or shape do not fit, with TENSOR_INVALID', () => {
    const model = deepMlp(2);
    const runner = graphRunner(model);
    const next = prng(11);
    const cases = [
      [] as tf.Tensor[],
      [tf.tensor2d([[next(), next()]])],
      [tf.zeros([1, 8], 'int32')],
      [tf.zeros([1, 8, 1])],
    ];
    for (const inputs of cases) {
      try {
        runner.run(inputs);
        expect.unreachable('the run should have failed');
      } catch (error) {
        expect(isDinferError(error) && error.code).toBe(DinferErrorCode.TENSOR_INVALID);
      }
      disposeAll(inputs);
    }
    model.dispose();
  });
});
