/**
 * A static per-layer cost estimate from FLOPs and weight bytes, used by the planner when no
 * profiled per-layer times are given.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { LayerInfo } from '../model/types.js';

/** Constants of the static cost model `ms = flops / flopsPerMs + weightBytes / bytesPerMs + overheadMs`. */
export interface CostModelOptions {
  /**
   * Sustained floating point operations per millisecond. Default `2.8e7` (28 GFLOP/s): ResNet50
   * (~8.2 GFLOP per 224x224 image, multiply-adds counted as 2) takes ~294 ms on one wasm SIMD
   * thread on the reference 2-core machine.
   */
  readonly flopsPerMs?: number;
  /**
   * Bytes of weights streamed from memory per millisecond. Default `1e7` (10 GB/s, a typical
   * single-core memory bandwidth): weight-heavy layers (dense heads) cost at least their read.
   */
  readonly bytesPerMs?: number;
  /**
   * Fixed cost of dispatching one layer, in ms. Default `0.02`: kernel launch and tensor
   * bookkeeping make even element-wise layers (ReLU, Add) cost something.
   */
  readonly overheadMs?: number;
  /** Examples per batch; FLOPs scale with it, weight reads do not. Default 1. */
  readonly batchSize?: number;
}

/** Default {@link CostModelOptions.flopsPerMs}: 28 GFLOP/s (wasm SIMD, one thread). */
export const DEFAULT_FLOPS_PER_MS = 2.8e7;
/** Default {@link CostModelOptions.bytesPerMs}: 10 GB/s. */
export const DEFAULT_WEIGHT_BYTES_PER_MS = 1e7;
/** Default {@link CostModelOptions.overheadMs}: 0.02 ms per layer. */
export const DEFAULT_LAYER_OVERHEAD_MS = 0.02;

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `${name} must be a positive number, got ${value}`,
      {
        details: { [name]: value },
      },
    );
  }
  return value;
}

/**
 * Estimates one layer's time in milliseconds from its FLOPs and weight bytes:
 * `flops * batchSize / flopsPerMs + weightBytes / bytesPerMs + overheadMs`.
 * A layer with no compute and no weights (an `InputLayer`) costs 0.
 */
export function estimateLayerMs(
  layer: Pick<LayerInfo, 'flops' | 'weightBytes' | 'className'>,
  options: CostModelOptions = {},
): number {
  const flopsPerMs = positive('flopsPerMs', options.flopsPerMs ?? DEFAULT_FLOPS_PER_MS);
  const bytesPerMs = positive('bytesPerMs', options.bytesPerMs ?? DEFAULT_WEIGHT_BYTES_PER_MS);
  const overheadMs = options.overheadMs ?? DEFAULT_LAYER_OVERHEAD_MS;
  const batchSize = positive('batchSize', options.batchSize ?? 1);
  if (layer.className === 'InputLayer') return 0;
  return (layer.flops * batchSize) / flopsPerMs + layer.weightBytes / bytesPerMs + overheadMs;
}

/** Estimates every layer's time in milliseconds with {@link estimateLayerMs}. */
export function estimateLayerCosts(
  layers: readonly Pick<LayerInfo, 'flops' | 'weightBytes' | 'className'>[],
  options: CostModelOptions = {},
): number[] {
  return layers.map((layer) => estimateLayerMs(layer, options));
}
