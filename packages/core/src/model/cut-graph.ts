/**
 * The shape of a model graph that cut analysis reads, whatever it was built from: a TF.js
 * `LayersModel` in memory (graph.ts) or a Keras topology in `model.json` (topology-graph.ts).
 * Both builders give the same layers in `model.layers` order, the same calls at the same
 * positions and the same tensor names, so one analysis (graph-analysis.ts) serves both and a
 * cut means the same thing to both partitioners. Internal module, not part of the public API.
 *
 * @module
 */
import type { DinferError } from '../errors.js';
import type { DType, SymbolicShape, TensorSpec } from './types.js';

/** A layer of `model.layers` as analysis sees it. */
export interface CutLayer {
  readonly name: string;
  /** The Keras class name, e.g. `Conv2D`. */
  readonly className: string;
  /** Number of weight scalars (a nested model: all of its own layers'). */
  readonly params: number;
  /** Bytes of the weights once loaded (float32 for a weight stored quantized). */
  readonly weightBytes: number;
  /** Bytes of its largest weight tensor once loaded. */
  readonly largestWeightBytes: number;
}

/** One call of a layer. */
export interface CutNode {
  /** Position of the layer in `model.layers`. */
  readonly layerIndex: number;
  /**
   * Where this call runs along `model.layers`: its layer's index, unless it reads a tensor
   * computed further on (a later call of a shared layer); then the position of the latest
   * such tensor. A cut at `k` puts the calls at positions `< k` before it.
   */
  readonly position: number;
  readonly inputs: readonly CutTensor[];
  readonly outputs: readonly CutTensor[];
  /** Estimated floating point operations of this call for one example. */
  readonly flops: number;
}

/** A tensor between calls. */
export interface CutTensor {
  /** Internal identity, unique in the graph. */
  readonly key: string;
  /** The public, stable name (see tensor-names.ts). */
  readonly name: string;
  readonly shape: SymbolicShape;
  readonly dtype: DType;
  /** Where it is computed: its producer's position; -1 for model inputs. */
  readonly position: number;
  /** Calls that read it, in topological order. */
  readonly consumers: readonly CutNode[];
  /** Indices in the model's outputs where this tensor appears. */
  readonly outputIndices: readonly number[];
  /** Index in the model's inputs when it is a model input. */
  readonly inputIndex: number | undefined;
}

/** A model graph: its layers, calls and tensors. */
export interface CutGraph {
  readonly name: string;
  /** `model.layers`, in order. */
  readonly layers: readonly CutLayer[];
  readonly inputs: readonly CutTensor[];
  readonly outputs: readonly CutTensor[];
  /** Every call, inputs before the calls that read them. */
  readonly nodes: readonly CutNode[];
  /** Every tensor: model inputs first, then call outputs in call order. */
  readonly tensors: readonly CutTensor[];
  /** Calls per layer index. */
  readonly nodesByLayer: readonly (readonly CutNode[])[];
}

const dtypeBytes: Record<DType, number> = { float32: 4, int32: 4, bool: 1, complex64: 8, string: 0 };

/** True for a Keras `InputLayer`. */
export function isInputClass(layer: Pick<CutLayer, 'className'>): boolean {
  return layer.className === 'InputLayer';
}

/** Bytes of one example of a tensor: the batch dimension is dropped, other unknowns count 1. */
export function bytesPerExample(shape: SymbolicShape, dtype: DType): number {
  return elementsPerExample(shape) * dtypeBytes[dtype];
}

/** Scalars of one example of a tensor (batch dimension dropped, unknowns count 1). */
export function elementsPerExample(shape: SymbolicShape): number {
  let elements = 1;
  shape.forEach((dim, i) => {
    if (i > 0 && dim !== null) elements *= dim;
  });
  return elements;
}

/** The {@link TensorSpec} of a graph tensor. */
export function specOf(tensor: CutTensor): TensorSpec {
  return { name: tensor.name, shape: tensor.shape, dtype: tensor.dtype };
}

/** A TF.js dtype name as a {@link DType}; anything else counts as float32. */
export function toDType(value: unknown): DType {
  return value === 'int32' || value === 'bool' || value === 'complex64' || value === 'string'
    ? value
    : 'float32';
}

/** `preferred`, each name that repeats an earlier one replaced by `fallback(i)`. */
export function uniqueNames(preferred: readonly string[], fallback: (i: number) => string): string[] {
  const seen = new Set<string>();
  return preferred.map((name, i) => {
    const chosen = seen.has(name) ? fallback(i) : name;
    seen.add(chosen);
    return chosen;
  });
}

/** A tensor a graph builder is still naming. */
interface OutputCandidate {
  name: string;
  readonly inputIndex: number | undefined;
  readonly outputIndices: number[];
}

/**
 * Marks `tensors` (one per model output, in order; undefined where the walk did not reach
 * one) as the model's outputs and gives them the outputs' names: `preferred` (the output
 * layers' names), a repeated one becoming `output_<i>`.
 *
 * @param fail Makes the error for a graph that cannot be partitioned.
 * @throws what `fail` makes, for an output not reached, an output that is a model input, or a
 *   tensor listed twice.
 */
export function markModelOutputs<T extends OutputCandidate>(
  tensors: readonly (T | undefined)[],
  preferred: readonly string[],
  modelName: string,
  fail: (message: string, details: Record<string, unknown>) => DinferError,
): T[] {
  const names = uniqueNames(preferred, (i) => `output_${i}`);
  return tensors.map((tensor, i) => {
    if (!tensor) throw fail(`model output ${i} was not reached by the graph walk`, { output: i });
    if (tensor.inputIndex !== undefined) {
      throw fail(`model output "${names[i]}" is directly the model input "${tensor.name}"`, {
        output: names[i],
      });
    }
    if (tensor.outputIndices.length > 0) {
      throw fail(`model "${modelName}" lists the same tensor twice as an output`, { output: names[i] });
    }
    tensor.name = names[i]!;
    tensor.outputIndices.push(i);
    return tensor;
  });
}
