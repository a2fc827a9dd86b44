/**
 * MobileNetV2 (alpha 1.0) with the exact architecture and layer names of Keras Applications,
 * and seeded weights.
 *
 * @module
 */

import * as tf from '@tensorflow/tfjs';
import { type ExampleModelOptions, resolveModelOptions } from './options.js';
import { fillSeededWeights } from './seeded-weights.js';

const BN_EPSILON = 1e-3;
const BN_MOMENTUM = 0.999;

/** Scale of `gamma` on a projection BatchNormalization that feeds a residual `Add`. */
const RESIDUAL_GAMMA = 0.5;

type Sym = tf.SymbolicTensor;

/** `(expansion, output filters, stride)` of blocks 0..16, as in Keras `MobileNetV2`. */
const BLOCKS: readonly (readonly [expansion: number, filters: number, stride: number])[] = [
  [1, 16, 1],
  [6, 24, 2],
  [6, 24, 1],
  [6, 32, 2],
  [6, 32, 1],
  [6, 32, 1],
  [6, 64, 2],
  [6, 64, 1],
  [6, 64, 1],
  [6, 64, 1],
  [6, 96, 1],
  [6, 96, 1],
  [6, 96, 1],
  [6, 160, 2],
  [6, 160, 1],
  [6, 160, 1],
  [6, 320, 1],
];

function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: 3, epsilon: BN_EPSILON, momentum: BN_MOMENTUM, name });
}

function relu6(name: string): tf.layers.Layer {
  return tf.layers.reLU({ maxValue: 6, name });
}

function pointwise(filters: number, name: string): tf.layers.Layer {
  return tf.layers.conv2d({
    filters,
    kernelSize: 1,
    padding: 'same',
    useBias: false,
    name,
    kernelInitializer: 'zeros',
  });
}

/** Keras `imagenet_utils.correct_pad` for a 3x3 stride-2 convolution on `size`. */
function correctPad(size: readonly [number, number]): [[number, number], [number, number]] {
  const [h, w] = size;
  return [
    [1 - (1 - (h % 2)), 1],
    [1 - (1 - (w % 2)), 1],
  ];
}

function spatial(x: Sym): [number, number] {
  const [, h, w] = x.shape;
  return [h ?? 0, w ?? 0];
}

function channels(x: Sym): number {
  return x.shape[3] ?? 0;
}

/** Keras `_inverted_res_block`. */
function invertedResBlock(inputs: Sym, expansion: number, filters: number, stride: number, id: number): Sym {
  const inChannels = channels(inputs);
  const prefix = id === 0 ? 'expanded_conv_' : `block_${id}_`;
  let x = inputs;
  if (id !== 0) {
    x = pointwise(expansion * inChannels, `${prefix}expand`).apply(x) as Sym;
    x = batchNorm(`${prefix}expand_BN`).apply(x) as Sym;
    x = relu6(`${prefix}expand_relu`).apply(x) as Sym;
  }
  if (stride === 2) {
    x = tf.layers.zeroPadding2d({ padding: correctPad(spatial(x)), name: `${prefix}pad` }).apply(x) as Sym;
  }
  x = tf.layers
    .depthwiseConv2d({
      kernelSize: 3,
      strides: stride,
      useBias: false,
      padding: stride === 1 ? 'same' : 'valid',
      name: `${prefix}depthwise`,
      depthwiseInitializer: 'zeros',
    })
    .apply(x) as Sym;
  x = batchNorm(`${prefix}depthwise_BN`).apply(x) as Sym;
  x = relu6(`${prefix}depthwise_relu`).apply(x) as Sym;
  x = pointwise(filters, `${prefix}project`).apply(x) as Sym;
  x = batchNorm(`${prefix}project_BN`).apply(x) as Sym;
  if (inChannels === filters && stride === 1) {
    return tf.layers.add({ name: `${prefix}add` }).apply([inputs, x]) as Sym;
  }
  return x;
}

/** Names of the projection BatchNormalizations whose block ends in a residual `Add`. */
function residualProjections(): Set<string> {
  const names = new Set<string>();
  let inChannels = 32;
  BLOCKS.forEach(([, filters, stride], id) => {
    if (inChannels === filters && stride === 1)
      names.add(id === 0 ? 'expanded_conv_project_BN' : `block_${id}_project_BN`);
    inChannels = filters;
  });
  return names;
}

/**
 * Builds MobileNetV2 (alpha 1.0) exactly as Keras Applications does (`Conv1`, `bn_Conv1`,
 * `Conv1_relu`, `expanded_conv_*`, `block_1_expand` ... `block_16_project_BN`, `Conv_1`,
 * `Conv_1_bn`, `out_relu`, `global_average_pooling2d`, `predictions` with softmax; at
 * 224x224x3 with 1000 classes, 3,538,984 parameters) with ReLU6 as `ReLU(maxValue: 6)`, and
 * fills it with seeded weights (He-uniform kernels, BatchNormalization near the identity, a
 * damped `gamma` on projections that feed a residual `Add`).
 *
 * Same options, same weights, bit for bit.
 *
 * @throws DinferError `DINFER_ERR_INVALID_ARGUMENT` for a bad shape, class count or seed.
 */
export function mobilenetV2(options: ExampleModelOptions = {}): tf.LayersModel {
  const { inputShape, classes, seed } = resolveModelOptions('mobilenetV2', options);
  const input = tf.input({ shape: [...inputShape], name: 'input_1' });
  let x = tf.layers
    .conv2d({
      filters: 32,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      useBias: false,
      name: 'Conv1',
      kernelInitializer: 'zeros',
    })
    .apply(input) as Sym;
  x = batchNorm('bn_Conv1').apply(x) as Sym;
  x = relu6('Conv1_relu').apply(x) as Sym;
  BLOCKS.forEach(([expansion, filters, stride], id) => {
    x = invertedResBlock(x, expansion, filters, stride, id);
  });
  x = tf.layers
    .conv2d({ filters: 1280, kernelSize: 1, useBias: false, name: 'Conv_1', kernelInitializer: 'zeros' })
    .apply(x) as Sym;
  x = batchNorm('Conv_1_bn').apply(x) as Sym;
  x = relu6('out_relu').apply(x) as Sym;
  x = tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }).apply(x) as Sym;
  const output = tf.layers
    .dense({ units: classes, activation: 'softmax', name: 'predictions', kernelInitializer: 'zeros' })
    .apply(x) as Sym;
  const model = tf.model({ inputs: input, outputs: output, name: 'mobilenetv2_1.00' });
  const residual = residualProjections();
  fillSeededWeights(model, { seed, gammaScale: (name) => (residual.has(name) ? RESIDUAL_GAMMA : 1) });
  return model;
}
