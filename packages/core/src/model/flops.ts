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
 * - A nested model: the sum of its own layers (its graph builder adds them up).
 * - Any other layer: 1 per output element (a fallback that keeps unknown layers visible).
 *
 * The estimate reads only what a layer's config and weight shapes say, so it is the same for
 * a layer in memory and for a layer described by a `model.json` topology.
 *
 * @module
 */
import { elementsPerExample } from './cut-graph.js';
import type { SymbolicShape } from './types.js';

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

/** What the estimate reads of one call of a (non-nested) layer. */
export interface CallFlopsInput {
  /** The layer's Keras class name, e.g. `Conv2D`. */
  readonly className: string;
  readonly inputShapes: readonly SymbolicShape[];
  readonly outputShapes: readonly SymbolicShape[];
  /** Shape of the layer's weight whose name ends with `suffix` (`/kernel`, `/bias`), if any. */
  readonly weightShape: (suffix: string) => readonly number[] | undefined;
  /** The layer's `activation` setting (`relu`, `linear`, ...), if it has one. */
  readonly activation?: unknown;
  /** The layer's `poolSize` setting, if it has one. */
  readonly poolSize?: unknown;
}

function product(values: readonly number[]): number {
  return values.reduce((a, b) => a * b, 1);
}

function activationCost(activation: unknown, elements: number): number {
  return activation === undefined || activation === null || activation === 'linear' ? 0 : elements;
}

function poolArea(size: unknown): number {
  if (typeof size === 'number') return size;
  if (Array.isArray(size) && size.every((d) => typeof d === 'number')) return product(size);
  return 1;
}

/** Estimated FLOPs of one call of a layer, for one example. */
export function estimateCallFlops(call: CallFlopsInput): number {
  const { className, weightShape } = call;
  const outElements = call.outputShapes.reduce((sum, shape) => sum + elementsPerExample(shape), 0);
  const inElements = call.inputShapes.reduce((sum, shape) => sum + elementsPerExample(shape), 0);
  const bias = weightShape('/bias') !== undefined ? outElements : 0;
  const activation = (elements: number) => activationCost(call.activation, elements);
  if (zeroCost.has(className)) return 0;
  if (elementwiseActivations.has(className)) return outElements;
  if (mergeLayers.has(className)) return Math.max(0, call.inputShapes.length - 1) * outElements;
  switch (className) {
    case 'Dense': {
      const kernel = weightShape('/kernel');
      const fanIn = kernel?.[0] ?? 0;
      return 2 * fanIn * outElements + bias + activation(outElements);
    }
    case 'Conv1D':
    case 'Conv2D':
    case 'Conv3D': {
      const kernel = weightShape('/kernel');
      const perOutput = kernel ? product(kernel.slice(0, -1)) : 0;
      return 2 * perOutput * outElements + bias + activation(outElements);
    }
    case 'Conv2DTranspose':
    case 'Conv3DTranspose': {
      const kernel = weightShape('/kernel');
      // kernel: [...spatial, outChannels, inChannels]
      const spatialOut = kernel ? product(kernel.slice(0, -1)) : 0;
      return 2 * spatialOut * inElements + bias + activation(outElements);
    }
    case 'DepthwiseConv2D': {
      const kernel = weightShape('/depthwise_kernel');
      const spatial = kernel ? (kernel[0] ?? 1) * (kernel[1] ?? 1) : 0;
      return 2 * spatial * outElements + bias + activation(outElements);
    }
    case 'SeparableConv2D':
    case 'SeparableConv1D': {
      const depthwise = weightShape('/depthwise_kernel');
      const pointwise = weightShape('/pointwise_kernel');
      if (!depthwise || !pointwise) return outElements;
      const outChannels = pointwise[pointwise.length - 1] ?? 1;
      const midChannels = pointwise[pointwise.length - 2] ?? 1;
      const positions = outElements / outChannels;
      const spatial = product(depthwise.slice(0, -2));
      return (
        2 * spatial * midChannels * positions +
        2 * midChannels * outChannels * positions +
        bias +
        activation(outElements)
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
      return poolArea(call.poolSize) * outElements;
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
