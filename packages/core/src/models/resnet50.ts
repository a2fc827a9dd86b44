/**
 * ResNet50 with the exact architecture and layer names of Keras Applications, and seeded
 * weights.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import type { GeneratedModel } from './generated-model-cache.js';
import { DEFAULT_MODEL_SEED, type ExampleModelOptions, resolveModelOptions } from './options.js';
import { fillSeededWeights } from './seeded-weights.js';

const BN_EPSILON = 1.001e-5;

/** Scale of `gamma` on the BatchNormalizations that feed a residual `Add` (see `_3_bn`). */
const RESIDUAL_GAMMA = 0.25;

function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: 3, epsilon: BN_EPSILON, name });
}

function conv(
  filters: number,
  kernelSize: number,
  name: string,
  strides = 1,
  padding: 'valid' | 'same' = 'valid',
): tf.layers.Layer {
  // Zeros are cheap to create; the real (seeded) values are set afterwards in one pass.
  return tf.layers.conv2d({ filters, kernelSize, strides, padding, name, kernelInitializer: 'zeros' });
}

function relu(name: string): tf.layers.Layer {
  return tf.layers.activation({ activation: 'relu', name });
}

type Sym = tf.SymbolicTensor;

/** Keras `block1`: a bottleneck residual block, with a projection shortcut when asked. */
function block1(x: Sym, filters: number, name: string, stride: number, convShortcut: boolean): Sym {
  let shortcut = x;
  if (convShortcut) {
    shortcut = conv(4 * filters, 1, `${name}_0_conv`, stride).apply(x) as Sym;
    shortcut = batchNorm(`${name}_0_bn`).apply(shortcut) as Sym;
  }
  let y = conv(filters, 1, `${name}_1_conv`, stride).apply(x) as Sym;
  y = batchNorm(`${name}_1_bn`).apply(y) as Sym;
  y = relu(`${name}_1_relu`).apply(y) as Sym;
  y = conv(filters, 3, `${name}_2_conv`, 1, 'same').apply(y) as Sym;
  y = batchNorm(`${name}_2_bn`).apply(y) as Sym;
  y = relu(`${name}_2_relu`).apply(y) as Sym;
  y = conv(4 * filters, 1, `${name}_3_conv`).apply(y) as Sym;
  y = batchNorm(`${name}_3_bn`).apply(y) as Sym;
  y = tf.layers.add({ name: `${name}_add` }).apply([shortcut, y]) as Sym;
  return relu(`${name}_out`).apply(y) as Sym;
}

/** Keras `stack1`: `blocks` bottleneck blocks, the first with a projection shortcut. */
function stack1(x: Sym, filters: number, blocks: number, stride1: number, name: string): Sym {
  x = block1(x, filters, `${name}_block1`, stride1, true);
  for (let i = 2; i <= blocks; i++) x = block1(x, filters, `${name}_block${i}`, 1, false);
  return x;
}

/**
 * Builds ResNet50 exactly as Keras Applications does (`conv1_pad` ... `conv5_block3_out`,
 * `avg_pool`, `predictions` with softmax; 177 layers including the input; at 224x224x3 with
 * 1000 classes, 25,636,712 parameters) and fills it with seeded weights: He-uniform kernels,
 * BatchNormalization near the identity, and a damped `gamma` on each residual branch's last
 * normalisation so activations stay bounded and the softmax stays informative.
 *
 * Same options, same weights, bit for bit. Building at 224x224 takes about 0.4 s on wasm.
 *
 * @throws DinferError `DINFER_ERR_INVALID_ARGUMENT` for a bad shape, class count or seed.
 */
export function resnet50(options: ExampleModelOptions = {}): tf.LayersModel {
  const { inputShape, classes, seed } = resolveModelOptions('resnet50', options);
  const input = tf.input({ shape: [...inputShape], name: 'input_1' });
  let x = tf.layers
    .zeroPadding2d({
      padding: [
        [3, 3],
        [3, 3],
      ],
      name: 'conv1_pad',
    })
    .apply(input) as Sym;
  x = conv(64, 7, 'conv1_conv', 2).apply(x) as Sym;
  x = batchNorm('conv1_bn').apply(x) as Sym;
  x = relu('conv1_relu').apply(x) as Sym;
  x = tf.layers
    .zeroPadding2d({
      padding: [
        [1, 1],
        [1, 1],
      ],
      name: 'pool1_pad',
    })
    .apply(x) as Sym;
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1_pool' }).apply(x) as Sym;
  x = stack1(x, 64, 3, 1, 'conv2');
  x = stack1(x, 128, 4, 2, 'conv3');
  x = stack1(x, 256, 6, 2, 'conv4');
  x = stack1(x, 512, 3, 2, 'conv5');
  x = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as Sym;
  const output = tf.layers
    .dense({ units: classes, activation: 'softmax', name: 'predictions', kernelInitializer: 'zeros' })
    .apply(x) as Sym;
  const model = tf.model({ inputs: input, outputs: output, name: 'resnet50' });
  fillSeededWeights(model, {
    seed,
    gammaScale: (name) => (name.endsWith('_3_bn') ? RESIDUAL_GAMMA : 1),
    denseScale: 1,
  });
  return model;
}

/**
 * {@link resnet50} at its defaults (224x224x3, 1000 classes, seed 1) for
^ * `loadGeneratedModel`: the model `dinfer up` serves when given none, cached once in
 * `<cacheDir>/resnet50/`.
 */
export const RESNET50_MODEL: GeneratedModel = {
  name: 'resnet50',
  generator: 1,
  seed: DEFAULT_MODEL_SEED,
  generate: () => resnet50({ seed: DEFAULT_MODEL_SEED }),
};
