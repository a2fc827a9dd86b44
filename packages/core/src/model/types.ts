/**
 * Data types shared by model analysis, partitioning and planning. Plain data, JSON-safe.
 *
 * @module
 */

/** A TF.js dtype as it appears in model signatures and on the wire. */
export type DType = 'float32' | 'int32' | 'bool' | 'complex64' | 'string';

/** A tensor shape with `null` for unknown dimensions (the batch dimension first). */
export type SymbolicShape = readonly (number | null)[];

/** One named tensor of a model or stage signature. */
export interface TensorSpec {
  /** Unique tensor name: a model input name, a model output name, or an intermediate name. */
  readonly name: string;
  readonly shape: SymbolicShape;
  readonly dtype: DType;
}

/** One call (application) of a layer inside the model. */
export interface LayerCall {
  /**
   * Where the call runs along `model.layers`: the layer's own index, or, for a later call of
   * a shared layer that reads a tensor computed further on, the position of the latest such
   * tensor. The stage whose range `[start, end)` contains it runs the call.
   */
  readonly position: number;
  /** Estimated floating point operations of this call for one example. */
  readonly flops: number;
}

/** What analysis reports for one layer of `model.layers`. */
export interface LayerInfo {
  /** Position in `model.layers` (topological order). */
  readonly index: number;
  readonly name: string;
  /** The layer's Keras class name, e.g. `Conv2D`. */
  readonly className: string;
  /** Output shape(s) of the layer, `null` for unknown dimensions. */
  readonly outputShapes: readonly SymbolicShape[];
  /** Number of weight scalars (trainable and not). */
  readonly params: number;
  /** Bytes of the layer's weights. */
  readonly weightBytes: number;
  /** Bytes of the layer's largest weight tensor (as loaded). Absent: unknown. */
  readonly largestWeightBytes?: number | undefined;
  /**
   * Bytes per example of the tensors one call of the layer reads and writes together, the
   * largest over its calls: what computing it holds at once. Absent: unknown.
   */
  readonly activationBytes?: number | undefined;
  /** Estimated floating point operations for one example (multiply-adds count as 2), all calls together. */
  readonly flops: number;
  /**
   * The layer's calls in the model (none for an `InputLayer`; several for a shared layer).
   * Every stage that runs one of them holds the layer and its weights. Absent means one call
   * at the layer's own index, holding all of {@link flops}.
   */
  readonly calls?: readonly LayerCall[] | undefined;
}

/** A tensor that crosses a cut: produced before it and consumed after it (or a model output). */
export interface CrossingTensor extends TensorSpec {
  /** Bytes of this tensor for one example (batch dimension of 1). */
  readonly bytesPerExample: number;
}

/** What crosses the cut at index `index` (layers `[0, index)` before, `[index, L)` after). */
export interface CutInfo {
  readonly index: number;
  /** True when the cut is allowed (each side runs at least one call of a computing layer). */
  readonly valid: boolean;
  readonly tensors: readonly CrossingTensor[];
  /** Sum of the crossing tensors' bytes for one example. */
  readonly bytesPerExample: number;
}

/** The result of analysing a LayersModel. */
export interface ModelAnalysis {
  readonly name: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  readonly layers: readonly LayerInfo[];
  /** One entry per candidate cut position `1 .. layers.length - 1`. */
  readonly cuts: readonly CutInfo[];
  readonly totalParams: number;
  readonly totalWeightBytes: number;
}

/** One stage of a plan or partition: layers `[start, end)`. */
export interface StagePlan {
  readonly layers: readonly [start: number, end: number];
  /** Estimated compute time of one example through this stage, in milliseconds. */
  readonly estimatedMs: number;
  /** Bytes of the weights this stage holds (a shared layer's in every stage that calls it). */
  readonly weightBytes: number;
  /** Bytes per example of the tensors this stage sends on (0 for the last stage's own outputs). */
  readonly crossingBytes: number;
}

/** The planner's result. */
export interface Plan {
  /** Cut indices, strictly increasing; `stages.length - 1` of them. */
  readonly cuts: readonly number[];
  readonly stages: readonly StagePlan[];
  /** The slowest stage's estimate including transfer cost: the pipeline's bottleneck. */
  readonly bottleneckMs: number;
  /** Where the per-layer costs came from. */
  readonly costSource: 'profiled' | 'estimated';
}
