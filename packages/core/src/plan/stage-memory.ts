/**
 * What a stage needs of a worker's memory budget, from the analysis alone:
 *
 * - its weights, as loaded (float32 for weights stored quantized);
 * - a working copy of them: the wasm backend packs every Dense and convolution kernel into
 *   XNNPACK's own layout on first use (measured: a worker's memory grows by the weights' size
 *   at its warm-up), and while a worker loads a stage it holds the largest tensor's blob and
 *   its decoded copy besides the weights (the loader sets them one at a time); the larger of
 *   the two counts. Backends that do not pack weights (`packsWeights: false`) count only the
 *   loading copy;
 * - activations for a batch of `batchSize` examples: the tensors it receives and sends, each
 *   held on the wire and in the backend, and the largest call's inputs and outputs;
 * - a fixed overhead: the worker process's own footprint (the JavaScript runtime and the
 *   backend, about 200 MB measured) and the kernels' scratch.
 *
 * The planner fits stages to the workers' budgets with it, and the coordinator announces it
 * as each stage's requirement, so both judge a stage alike.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import { bytesPerExample } from '../model/cut-graph.js';
import { stageTotals } from '../model/stage-totals.js';
import type { ModelAnalysis } from '../model/types.js';

/** Options of {@link stageMemoryModel}. */
export interface StageMemoryOptions {
  /** Examples one request may carry (the server's batcher sends up to 8). Default 8. */
  readonly batchSize?: number | undefined;
  /** Fixed bytes per stage: the process's own footprint and kernels' scratch. Default 256 MiB. */
  readonly overheadBytes?: number | undefined;
  /**
   * Whether the backend keeps a packed copy of the weights it computes with (wasm does).
   * Default true.
   */
  readonly packsWeights?: boolean | undefined;
}

/** What a stage needs, in bytes, by part. */
export interface StageMemory {
  /** The weights, as loaded. */
  readonly weightBytes: number;
  /** The working copy: the backend's packed weights, or the loading copy (see the module documentation). */
  readonly copyBytes: number;
  /** Activations of a batch. */
  readonly activationBytes: number;
  /** The fixed overhead. */
  readonly overheadBytes: number;
  /** The sum: what the stage needs of a worker's budget. */
  readonly totalBytes: number;
}

/** Default {@link StageMemoryOptions.batchSize}. */
export const DEFAULT_MEMORY_BATCH_SIZE = 8;
/** Default {@link StageMemoryOptions.overheadBytes}: 256 MiB. */
export const DEFAULT_STAGE_OVERHEAD_BYTES = 256 * 1024 * 1024;

/** Range maximum over `values` in O(1) per query after O(n log n) preparation. */
function rangeMax(values: readonly number[]): (start: number, end: number) => number {
  const table: Float64Array[] = [Float64Array.from(values)];
  for (let span = 1; 2 * span <= values.length; span *= 2) {
    const previous = table[table.length - 1]!;
    const next = new Float64Array(values.length - 2 * span + 1);
    for (let i = 0; i < next.length; i++) next[i] = Math.max(previous[i]!, previous[i + span]!);
    table.push(next);
  }
  return (start, end) => {
    if (end <= start) return 0;
    const level = Math.floor(Math.log2(end - start));
    const row = table[level]!;
    return Math.max(row[start]!, row[end - (1 << level)]!);
  };
}

/**
 * Prepares the memory need of any stage `[start, end)` of `analysis` (see the module
 * documentation), each answered in O(shared layers).
 *
 * @throws DinferError INVALID_ARGUMENT for a batch size that is not a positive integer or a
 *   negative overhead.
 */
export function stageMemoryModel(
  analysis: ModelAnalysis,
  options: StageMemoryOptions = {},
): (start: number, end: number) => StageMemory {
  const batchSize = options.batchSize ?? DEFAULT_MEMORY_BATCH_SIZE;
  const overheadBytes = options.overheadBytes ?? DEFAULT_STAGE_OVERHEAD_BYTES;
  const packsWeights = options.packsWeights ?? true;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `batchSize must be a positive integer, got ${batchSize}`,
    );
  }
  if (!(overheadBytes >= 0)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `overheadBytes must be >= 0, got ${overheadBytes}`,
    );
  }
  const totals = stageTotals(analysis);
  const largestTensor = rangeMax(analysis.layers.map((l) => l.largestWeightBytes ?? l.weightBytes));
  const largestCall = rangeMax(analysis.layers.map((l) => l.activationBytes ?? 0));
  const count = analysis.layers.length;
  const cutBytes = new Map(analysis.cuts.map((c) => [c.index, c.bytesPerExample]));
  const specBytes = (specs: ModelAnalysis['inputs']) =>
    specs.reduce((sum, t) => sum + bytesPerExample(t.shape, t.dtype), 0);
  const inputBytes = specBytes(analysis.inputs);
  const outputBytes = specBytes(analysis.outputs);
  return (start, end) => {
    const weightBytes = totals.weightBytes(start, end);
    const received = start === 0 ? inputBytes : (cutBytes.get(start) ?? 0);
    const sent = end === count ? outputBytes : (cutBytes.get(end) ?? 0);
    const loading = 2 * largestTensor(start, end);
    const copyBytes = packsWeights ? Math.max(weightBytes, loading) : loading;
    const activationBytes = batchSize * (2 * (received + sent) + largestCall(start, end));
    return {
      weightBytes,
      copyBytes,
      activationBytes,
      overheadBytes,
      totalBytes: weightBytes + copyBytes + activationBytes + overheadBytes,
    };
  };
}
