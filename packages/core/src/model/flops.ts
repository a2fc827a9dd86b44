/**
 * Floating point operation estimates per layer application, for one example (batch 1).
 * A multiply-add counts as 2. The figures feed the planner when no profile is available, so
 * they aim at relative cost, not exact counts:
 *
 * - Dense: `2 * in * out` per output row, plus the bias and a non-linear activation.
 * - Conv1D/2D/3D: `2 * kernelVolume * inChannels` per output element; Conv2DTranspose
 *   `2 * kernelVolume * outChannels` per input element; DepthwiseConv2D
 *   `2 * kh * kw` per output element; SeparableConv2D depthwise plus pointwise.
 * - BatchNormalization: 2 per element (scale and shift); pooling: pool area per output
 *   element; global pooling: 1 per input element; activations: 1 per element.
 * - Add/Subtract/Multiply/Average/Maximum/Minimum: `(inputs - 1)` per output element;
 *   Concatenate: 1 per output element (a copy: no arithmetic, but not free either).
 * - Flatten, Reshape, Dropout, InputLayer and similar: 0.
 * - A nested model: the sum of its own layers.
 * - Any other layer: 1 per output element (a fallback that keeps unknown layers visible).
 *
 * @module
 */
import { buildModelGraph, elementsPerExample, type GraphNode, isNestedModel, type Layer } from './graph.js';

const zeroCost = new Set([
  'InputLayer',
  'Flatten',
  'Reshape',
  'Dropout',
  'SpatialDropout1D',
  'SpatialDropout2D',
  'AlphaDropout',
  'GaussianDropout',
  'GaussianNoise',
  'Masking',
  'RepeatVector',
]);

const elementwiseActivations = new Set([
  'Activation',
  'ReLU',
  'LeakyReLU',
  'PReLU',
  'ELU',
  'ThresholdedReLU',
  'Softmax',
]);

const mergeLayers = new Set(['Add', 'Subtract', 'Multiply', 'Average', 'Maximum', 'Minimum']);

function shapeElements(shape: readonly (number | null)[]): number {
  return elementsPerExample(shape);
}

function weightShape(layer: Layer, suffix: string): readonly number[] | undefined {
  const weight = layer.weights.find((w) => w.originalName.endsWith(suffix) || w.name.endsWith(suffix));
  return weight?.shape as readonly number[] | undefined;
}

function product(values: readonly number[]): number {
  return values.reduce((a, b) => a * b, 1);
}

function activationCost(layer: Layer, elements: number): number {
  const config = layer.getConfig() as { activation?: unknown };
  const activation = config.activation;
  return activation === undefined || activation === null || activation === 'linear' ? 0 : elements;
}

function poolArea(layer: Layer): number {
  const config = layer.getConfig() as { poolSize?: number | number[] };
  const size = config.poolSize;
  if (typeof size === 'number') return size;
  if (Array.isArray(size)) return product(size);
  return 1;
}

/** Estimated FLOPs of one application (`node`) of a layer, for one example. */
export function estimateNodeFlops(node: GraphNode): number {
  const layer = node.layer;
  if (isNestedModel(layer)) {
    return buildModelGraph(layer).nodes.reduce((sum, inner) => sum + estimateNodeFlops(inner), 0);
  }
  const className = layer.getClassName();
  const outElements = node.outputs.reduce((sum, t) => sum + shapeElements(t.shape), 0);
  const inElements = node.inputs.reduce((sum, t) => sum + shapeElements(t.shape), 0);
  const bias = layer.weights.some((w) => w.originalName.endsWith('/bias')) ? outElements : 0;
  if (zeroCost.has(className)) return 0;
  if (elementwiseActivations.has(className)) return outElements;
  if (mergeLayers.has(className)) return Math.max(0, node.inputs.length - 1) * outElements;
  switch (className) {
    case 'Dense': {
      const kernel = weightShape(layer, '/kernel');
      const fanIn = kernel?.[0] ?? 0;
      return 2 * fanIn * outElements + bias + activationCost(layer, outElements);
    }
    case 'Conv1D':
    case 'Conv2D':
    case 'Conv3D': {
      const kernel = weightShape(layer, '/kernel');
      const perOutput = kernel ? product(kernel.slice(0, -1)) : 0;
      return 2 * perOutput * outElements + bias + activationCost(layer, outElements);
    }
    case 'Conv2DTranspose':
    case 'Conv3DTranspose': {
      const kernel = weightShape(layer, '/kernel');
      // kernel: [...spatial, outChannels, inChannels]
      const spatialOut = kernel ? product(kernel.slice(0, -1)) : 0;
      return 2 * spatialOut * inElements + bias + activationCost(layer, outElements);
    }
    case 'DepthwiseConv2D': {
      const kernel = weightShape(layer, '/depthwise_kernel');
      const spatial = kernel ? (kernel[0] ?? 1) * (kernel[1] ?? 1) : 0;
      return 2 * spatial * outElements + bias + activationCost(layer, outElements);
    }
    case 'SeparableConv2D':
    case 'SeparableConv1D': {
      const depthwise = weightShape(layer, '/depthwise_kernel');
      const pointwise = weightShape(layer, '/pointwise_kernel');
      if (!depthwise || !pointwise) return outElements;
      const outChannels = pointwise[pointwise.length - 1] ?? 1;
      const midChannels = pointwise[pointwise.length - 2] ?? 1;
      const positions = outElements / outChannels;
      const spatial = product(depthwise.slice(0, -2));
      return (
        2 * spatial * midChannels * positions +
        2 * midChannels * outChannels * positions +
        bias +
        activationCost(layer, outElements)
      );
    }
    case 'BatchNormalization':
      return 2 * outElements;
    case 'MaxPooling1D':
    case 'MaxPooling2D':
    case 'MaxPooling3D':
    case 'AveragePooling1D':
    case 'AveragePooling2D':
    case 'AveragePooling3D':
      return poolArea(layer) * outElements;
    case 'GlobalAveragePooling1D':
    case 'GlobalAveragePooling2D':
    case 'GlobalMaxPooling1D':
    case 'GlobalMaxPooling2D':
      return inElements;
    case 'Concatenate':
      return outElements;
    default:
      return outElements;
  }
}
