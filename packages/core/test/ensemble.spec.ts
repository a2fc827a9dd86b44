import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode } from '../src/errors.js';
import { initBackend } from '../src/node/backend.js';
import { combineOutput } from '../src/serving/ensemble-combine.js';
import { type EnsembleDefinition, ensembleService } from '../src/serving/ensemble-service.js';
import type { InferenceService, InferOptions, InferResult } from '../src/serving/inference-service.js';
import { localInferenceService } from '../src/serving/local-service.js';
import { fromTfTensor } from '../src/tensor/tfjs.js';
import type { TensorData } from '../src/tensor/types.js';
import { seededRandom } from '../src/testing/seeded-random.js';

/** A small classifier with seeded weights: differently seeded models disagree. */
function classifier(seed: number, classes = 5): tf.LayersModel {
  const next = seededRandom(seed);
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [6], units: 12, activation: 'relu' }),
      tf.layers.dense({ units: classes, activation: 'softmax' }),
    ],
  });
  for (const layer of model.layers) {
    layer.setWeights(
      layer.getWeights().map((w) =>
        tf.tensor(
          Float32Array.from({ length: w.size }, () => next() * 2 - 1),
          w.shape,
        ),
      ),
    );
  }
  return model;
}

const models = [classifier(1), classifier(2), classifier(3)];
const names = ['a', 'b', 'c'];
let inner: InferenceService;
let x: tf.Tensor;
let input: TensorData;
let predictions: Float32Array[];

beforeAll(async () => {
  await initBackend();
  const services = models.map((model, i) => localInferenceService(model, { name: names[i]! }));
  inner = {
    models: () => services.flatMap((s) => s.models()),
    health: () => services[0]!.health(),
    infer: (model, inputs, options) => services[names.indexOf(model)]!.infer(model, inputs, options),
  };
  x = tf.randomNormal([16, 6], 0, 1, 'float32', 5);
  input = await fromTfTensor(x);
  predictions = models.map((m) => {
    const y = m.predict(x) as tf.Tensor;
    const data = y.dataSync() as Float32Array;
    y.dispose();
    return Float32Array.from(data);
  });
});

afterAll(() => {
  x.dispose();
  for (const m of models) m.dispose();
});

function expectClose(actual: Float32Array, expected: ArrayLike<number>): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) expect(actual[i]!).toBeCloseTo(expected[i]!, 5);
}

describe('ensembleService', () => {
  it('serves an average of two differently initialised models as one model, equal to their local predicts averaged', async () => {
    const service = ensembleService(inner, [
      { name: 'avg', members: [{ model: 'a' }, { model: 'b' }], combiner: 'average' },
    ]);
    const served = service.models().find((m) => m.name === 'avg')!;
    expect(served.inputs).toEqual(inner.models()[0]!.inputs);
    expect(served.outputs[0]!.shape).toEqual([null, 5]);
    expect(service.models().map((m) => m.name)).toEqual(['a', 'b', 'c', 'avg']);
    const result = await service.infer('avg', [input]);
    const expected = tf.tidy(() =>
      tf.mean(tf.stack([tf.tensor(predictions[0]!), tf.tensor(predictions[1]!)]), 0).dataSync(),
    );
    expectClose(result.outputs[0]!.data as Float32Array, expected);
    expect(result.model).toBe('avg');
    expect(result.members!.map((m) => [m.model, m.version])).toEqual([
      ['a', '1'],
      ['b', '1'],
    ]);
    expect(result.nodes.length).toBe(2);
    // The models really disagree, so the average is not either of them.
    expect(Math.max(...predictions[0]!.map((v, i) => Math.abs(v - predictions[1]![i]!)))).toBeGreaterThan(
      0.05,
    );
  });

  it('weights members, and applies a softmax after combining when asked', async () => {
    const service = ensembleService(inner, [
      {
        name: 'w',
        members: [{ model: 'a' }, { model: 'c' }],
        combiner: 'weighted',
        weights: [3, 1],
        softmax: true,
      },
    ]);
    const result = await service.infer('w', [input]);
    const expected = tf.tidy(() =>
      tf
        .softmax(
          tf.add(
            tf.mul(tf.tensor(predictions[0]!, [16, 5]), 0.75),
            tf.mul(tf.tensor(predictions[2]!, [16, 5]), 0.25),
          ),
        )
        .dataSync(),
    );
    expectClose(result.outputs[0]!.data as Float32Array, expected);
  });

  it('votes: each member votes for its argmax; the answer is the share of votes per class', async () => {
    const service = ensembleService(inner, [
      { name: 'v', members: [{ model: 'a' }, { model: 'b' }, { model: 'c' }], combiner: 'vote' },
    ]);
    const result = await service.infer('v', [input]);
    const out = result.outputs[0]!.data as Float32Array;
    for (let row = 0; row < 16; row++) {
      const expected = new Float32Array(5);
      for (const p of predictions) {
        const scores = Array.from(p.subarray(row * 5, row * 5 + 5));
        expected[scores.indexOf(Math.max(...scores))]! += 1 / 3;
      }
      expectClose(out.subarray(row * 5, row * 5 + 5), expected);
    }
  });

  it('concatenates on the last axis and says so in its output shape', async () => {
    const service = ensembleService(inner, [
      { name: 'cat', members: [{ model: 'b' }, { model: 'a' }], combiner: 'concatenate' },
    ]);
    expect(service.models().find((m) => m.name === 'cat')!.outputs[0]!.shape).toEqual([null, 10]);
    const result = await service.infer('cat', [input]);
    expect(result.outputs[0]!.shape).toEqual([16, 10]);
    const out = result.outputs[0]!.data as Float32Array;
    for (let row = 0; row < 16; row++) {
      expectClose(out.subarray(row * 10, row * 10 + 5), predictions[1]!.subarray(row * 5, row * 5 + 5));
      expectClose(out.subarray(row * 10 + 5, row * 10 + 10), predictions[0]!.subarray(row * 5, row * 5 + 5));
    }
  });

  /** The inner service, with member `b` failing every request. */
  function withFailing(member: string): InferenceService {
    return {
      ...inner,
      infer: (model: string, inputs: readonly TensorData[], options?: InferOptions): Promise<InferResult> =>
        model === member
          ? Promise.reject(Object.assign(new Error('no worker'), { code: DinferErrorCode.NO_WORKER }))
          : inner.infer(model, inputs, options),
    };
  }

  it('fails the request with a clear error when a member fails and no quorum is set', async () => {
    const service = ensembleService(withFailing('b'), [
      { name: 'e', members: [{ model: 'a' }, { model: 'b' }], combiner: 'average' },
    ]);
    await expect(service.infer('e', [input])).rejects.toThrow(/ensemble "e": member "b" failed: no worker/);
  });

  it('answers from the members that succeeded when a quorum is set, and names the missing ones', async () => {
    const service = ensembleService(withFailing('b'), [
      {
        name: 'q',
        members: [{ model: 'a' }, { model: 'b' }, { model: 'c' }],
        combiner: 'average',
        quorum: 2,
      },
    ]);
    const result = await service.infer('q', [input]);
    expect(result.missing).toEqual(['b']);
    expect(result.members!.map((m) => m.model)).toEqual(['a', 'c']);
    const expected = predictions[0]!.map((v, i) => (v + predictions[2]![i]!) / 2);
    expectClose(result.outputs[0]!.data as Float32Array, expected);
  });

  it('passes requests for other models through, and refuses broken definitions', async () => {
    const service = ensembleService(inner, []);
    const direct = await service.infer('c', [input]);
    expectClose(direct.outputs[0]!.data as Float32Array, predictions[2]!);
    const bad: [EnsembleDefinition, RegExp][] = [
      [{ name: 'x', members: [{ model: 'a' }], combiner: 'median' as never }, /combiner must be one of/],
      [
        { name: 'x', members: [{ model: 'a' }, { model: 'b' }], combiner: 'weighted' },
        /needs one weight per member/,
      ],
      [
        { name: 'x', members: [{ model: 'a' }], combiner: 'weighted', weights: [1, 2] },
        /2 given for 1 members/,
      ],
      [
        { name: 'x', members: [{ model: 'a' }], combiner: 'average', quorum: 2 },
        /quorum must be an integer in \[1, 1\]/,
      ],
      [{ name: 'x', members: [{ model: 'x' }], combiner: 'average' }, /lists itself/],
      [
        { name: 'x', members: [{ model: 'a' }, { model: 'b' }], combiner: 'concatenate', quorum: 1 },
        /needs every member/,
      ],
    ];
    for (const [definition, message] of bad)
      expect(() => ensembleService(inner, [definition])).toThrow(message);
    const unknown = ensembleService(inner, [{ name: 'u', members: [{ model: 'zzz' }], combiner: 'average' }]);
    expect(unknown.models().map((m) => m.name)).not.toContain('u');
    await expect(unknown.infer('u', [input])).rejects.toMatchObject({ code: DinferErrorCode.UNKNOWN_MODEL });
  });
});

describe('combineOutput', () => {
  it('refuses outputs that do not combine', () => {
    const a: TensorData = { dtype: 'float32', shape: [1, 2], data: Float32Array.of(1, 2) };
    const b: TensorData = { dtype: 'float32', shape: [1, 3], data: Float32Array.of(1, 2, 3) };
    expect(() => combineOutput([a, b], { combiner: 'average' })).toThrow(/differ in shape/);
    expect(() =>
      combineOutput([a, { dtype: 'int32', shape: [1, 2], data: Int32Array.of(1, 2) }], {
        combiner: 'average',
      }),
    ).toThrow(/float32/);
    expect(combineOutput([a, b], { combiner: 'concatenate' }).data).toEqual(Float32Array.of(1, 2, 1, 2, 3));
  });
});
