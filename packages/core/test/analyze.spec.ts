import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeModel } from '../src/model/analyze.js';
import {
  intermediateTensorName,
  kerasSafeName,
  parseIntermediateTensorName,
} from '../src/model/tensor-names.js';
import { initBackend } from '../src/node/backend.js';
import { fixture, fixtures } from './fixtures/models.js';

beforeAll(async () => {
  await initBackend();
});

describe('analyzeModel', () => {
  it('reports one entry per layer and one cut per position, with params from TF.js', () => {
    for (const f of fixtures) {
      const model = f.build();
      const analysis = analyzeModel(model);
      expect(analysis.layers.map((l) => l.name)).toEqual(model.layers.map((l) => l.name));
      expect(analysis.layers.map((l) => l.className)).toEqual(model.layers.map((l) => l.getClassName()));
      expect(analysis.cuts.map((c) => c.index)).toEqual(
        Array.from({ length: model.layers.length - 1 }, (_, i) => i + 1),
      );
      expect(analysis.totalParams).toBe(model.countParams());
      expect(analysis.totalWeightBytes).toBe(model.countParams() * 4);
      for (const cut of analysis.cuts) {
        expect(cut.bytesPerExample).toBe(cut.tensors.reduce((s, t) => s + t.bytesPerExample, 0));
      }
    }
  });

  it('names inputs and outputs after the model and intermediates <layer>/<node>:<output>', () => {
    const model = fixture('multi-input multi-output').build();
    const analysis = analyzeModel(model);
    expect(analysis.inputs.map((t) => t.name)).toEqual(model.inputNames);
    expect(analysis.outputs.map((t) => t.name)).toEqual(model.outputNames);
    expect(analysis.inputs[0]).toEqual({ name: 'a', shape: [null, 6], dtype: 'float32' });
    const names = model.layers.map((l) => l.name);
    const afterH2 = analysis.cuts[names.indexOf('h2')]!;
    // `a` is read only by h1; `b` is read by cat, later; h1's output is read by `early`.
    expect(afterH2.index).toBe(names.indexOf('h2') + 1);
    expect(afterH2.tensors.map((t) => t.name)).toEqual(['b', 'h1/0:0', 'h2/0:0']);
  });

  it('a sequential MLP crosses each cut with one tensor of units * 4 bytes', () => {
    const model = fixture('sequential MLP').build();
    const analysis = analyzeModel(model);
    const units = [16, 16, 8];
    analysis.cuts.forEach((cut, i) => {
      expect(cut.tensors.length).toBe(1);
      expect(cut.tensors[0]!.bytesPerExample).toBe(units[i]! * 4);
      expect(cut.tensors[0]!.shape).toEqual([null, units[i]]);
    });
  });

  it('counts a skip connection and a model input read late in every cut they span', () => {
    const model = fixture('skip connection over several stages').build();
    const analysis = analyzeModel(model);
    const names = model.layers.map((l) => l.name);
    for (let k = names.indexOf('d2'); k <= names.indexOf('skip'); k++) {
      const crossing = analysis.cuts[k - 1]!.tensors.map((t) => t.name);
      expect(crossing).toContain('d1/0:0');
      expect(crossing).toContain('x');
    }
    const afterSkip = analysis.cuts[names.indexOf('cat') - 1]!.tensors.map((t) => t.name);
    expect(afterSkip).toEqual(['x', 'skip/0:0']);
  });

  it('names both applications of a shared layer by node index', () => {
    const model = fixture('shared layer on two branches').build();
    const analysis = analyzeModel(model);
    const names = model.layers.map((l) => l.name);
    const cut = analysis.cuts[names.indexOf('sum') - 1]!;
    expect(cut.tensors.map((t) => t.name)).toEqual(['shared/0:0', 'shared/1:0']);
    const shared = analysis.layers[names.indexOf('shared')]!;
    expect(shared.outputShapes).toEqual([
      [null, 5],
      [null, 5],
    ]);
    // Two applications of an 8 -> 5 dense layer with bias and relu.
    expect(shared.flops).toBe(2 * (2 * 8 * 5 + 5 + 5));
  });

  it('runs each call of a shared layer where its inputs are computed', () => {
    const thrice = analyzeModel(fixture('shared Dense called three times').build());
    const shared = thrice.layers.find((l) => l.name === 'shared')!;
    // x, shared, act1, act2, out: the second call reads act1's output, the third act2's.
    expect(shared.index).toBe(1);
    const perCall = 2 * 8 * 8 + 8 + 8;
    expect(shared.calls).toEqual([
      { position: 1, flops: perCall },
      { position: 2, flops: perCall },
      { position: 3, flops: perCall },
    ]);
    expect(shared.flops).toBe(3 * perCall);
    expect(thrice.cuts.map((c) => c.valid)).toEqual([false, true, true, true]);
    // Between the second and third call, the second call's output crosses.
    expect(thrice.cuts[2]!.tensors.map((t) => t.name)).toEqual(['shared/1:0']);
    const branches = analyzeModel(fixture('shared layer on two branches').build());
    const both = branches.layers.find((l) => l.name === 'shared')!;
    expect(both.calls!.map((c) => c.position)).toEqual([both.index, both.index]);
    for (const layer of branches.layers) {
      if (layer.className === 'InputLayer') expect(layer.calls).toEqual([]);
      else if (layer.name !== 'shared')
        expect(layer.calls).toEqual([{ position: layer.index, flops: layer.flops }]);
    }
  });

  it('estimates FLOPs of dense, conv, depthwise and separable layers from their shapes', () => {
    const model = fixture('small CNN').build();
    const byClass = new Map(analyzeModel(model).layers.map((l) => [l.className, l]));
    // conv 3x3x3 -> 4 on 8x8 (same): 2*27 per output, 256 outputs, + bias, no activation.
    expect(byClass.get('Conv2D')!.flops).toBe(2 * 27 * 256 + 256);
    expect(byClass.get('BatchNormalization')!.flops).toBe(2 * 256);
    expect(byClass.get('Activation')!.flops).toBe(256);
    // max pool 2x2 -> 4x4x4 outputs, 4 reads each.
    expect(byClass.get('MaxPooling2D')!.flops).toBe(4 * 64);
    // depthwise 3x3, multiplier 2 -> 4x4x8 = 128 outputs, + bias.
    expect(byClass.get('DepthwiseConv2D')!.flops).toBe(2 * 9 * 128 + 128);
    // separable: depthwise 3x3 over 8 channels (mult 1) + pointwise 8 -> 6 on 16 positions, + bias + relu.
    expect(byClass.get('SeparableConv2D')!.flops).toBe(2 * 9 * 8 * 16 + 2 * 8 * 6 * 16 + 96 + 96);
    expect(byClass.get('Flatten')!.flops).toBe(0);
    // dense 24 -> 5 with softmax.
    expect(byClass.get('Dense')!.flops).toBe(2 * 24 * 5 + 5 + 5);
    expect(byClass.get('Dense')!.params).toBe(24 * 5 + 5);
    expect(byClass.get('Dense')!.weightBytes).toBe((24 * 5 + 5) * 4);
  });

  it('counts a nested model as one layer whose cost is the sum of its own layers', () => {
    const model = fixture('nested models as layers').build();
    const analysis = analyzeModel(model);
    const inner = analysis.layers.find((l) => l.name === 'inner')!;
    // inner: dense 6->8 relu, dense 8->5 tanh.
    expect(inner.flops).toBe(2 * 6 * 8 + 8 + 8 + (2 * 8 * 5 + 5 + 5));
    expect(inner.params).toBe(6 * 8 + 8 + 8 * 5 + 5);
    const seq = analysis.layers.find((l) => l.name === 'inner_seq')!;
    expect(seq.flops).toBe(2 * 5 * 5 + 5 + 5 + (2 * 5 * 4 + 4));
    expect(inner.outputShapes).toEqual([[null, 5]]);
  });

  it('marks cuts with only InputLayers on one side invalid', () => {
    const model = fixture('multi-input multi-output').build();
    const analysis = analyzeModel(model);
    expect(analysis.cuts[0]!.valid).toBe(false); // [a] | rest
    expect(analysis.layers[0]!.flops).toBe(0);
    expect(analysis.layers[0]!.outputShapes).toEqual([[null, 6]]);
  });

  it('does not change when stages have been built from the model', async () => {
    const { partitionModel } = await import('../src/partition/partition.js');
    const model = fixture('shared layer on two branches').build();
    const before = JSON.stringify(analyzeModel(model));
    partitionModel(model, [2, 4]);
    partitionModel(model, [3]);
    expect(JSON.stringify(analyzeModel(model))).toBe(before);
  });

  it('handles int32 inputs in byte counts', () => {
    const x = tf.input({ shape: [10], dtype: 'int32', name: 'tokens' });
    const emb = tf.layers
      .embedding({ inputDim: 50, outputDim: 4, name: 'emb' })
      .apply(x) as tf.SymbolicTensor;
    const y = tf.layers.flatten({ name: 'flat' }).apply(emb) as tf.SymbolicTensor;
    const model = tf.model({ inputs: x, outputs: y });
    const analysis = analyzeModel(model);
    expect(analysis.inputs[0]).toEqual({ name: 'tokens', shape: [null, 10], dtype: 'int32' });
    expect(analysis.cuts[1]!.tensors).toEqual([
      { name: 'emb/0:0', shape: [null, 10, 4], dtype: 'float32', bytesPerExample: 160 },
    ]);
  });
});

describe('tensor names', () => {
  it('round-trips intermediate names and makes Keras-safe layer names', () => {
    const name = intermediateTensorName('block/conv', 1, 2);
    expect(name).toBe('block/conv/1:2');
    expect(parseIntermediateTensorName(name)).toEqual({
      layerName: 'block/conv',
      nodeIndex: 1,
      outputIndex: 2,
    });
    expect(parseIntermediateTensorName('input_1')).toBeUndefined();
    expect(kerasSafeName(name)).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*$/);
    expect(kerasSafeName('_x:0')).toMatch(/^[A-Za-z0-9]/);
  });
});
