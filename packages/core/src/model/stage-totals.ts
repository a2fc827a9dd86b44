/**
 * What one pipeline stage `[start, end)` of an analysed model holds and computes.
 *
 * A stage runs the layer calls whose position (see {@link LayerCall.position}) lies in its
 * range, and holds every layer it calls. A shared layer whose calls run in several stages is
 * held by each of them, with its own copy of the weights: its weight bytes count in every one
 * of those stages.
 *
 * @module
 */
import type { LayerCall, LayerInfo, ModelAnalysis } from './types.js';

/** Totals of any stage `[start, end)` of one model, each answered in O(shared layers). */
export interface StageTotals {
  /** Bytes of the weights the stage holds: every layer it calls, shared ones included. */
  weightBytes(start: number, end: number): number;
  /** Estimated FLOPs of the calls the stage runs, for one example. */
  flops(start: number, end: number): number;
}

/** A layer's calls; one at its own index when the analysis does not list them. */
export function layerCalls(layer: LayerInfo): readonly LayerCall[] {
  return layer.calls ?? [{ position: layer.index, flops: layer.flops }];
}

function prefixSums(values: readonly number[]): Float64Array {
  const prefix = new Float64Array(values.length + 1);
  for (let i = 0; i < values.length; i++) prefix[i + 1] = prefix[i]! + values[i]!;
  return prefix;
}

/**
 * Spreads one value per layer (a profiled time, say) over the positions where the layer's
 * calls run, in proportion to each call's FLOPs (evenly when the layer has none). The result
 * has one entry per position of `analysis.layers`; a layer without calls keeps its value at
 * its own index. For a model without shared layers it is `perLayer` itself.
 */
export function spreadOverCalls(analysis: ModelAnalysis, perLayer: readonly number[]): number[] {
  const perPosition = new Array<number>(analysis.layers.length).fill(0);
  analysis.layers.forEach((layer, i) => {
    const value = perLayer[i] ?? 0;
    const calls = layerCalls(layer);
    if (calls.length === 0) {
      perPosition[i]! += value;
      return;
    }
    const flops = calls.reduce((sum, call) => sum + call.flops, 0);
    for (const call of calls) {
      perPosition[call.position]! += value * (flops > 0 ? call.flops / flops : 1 / calls.length);
    }
  });
  return perPosition;
}

/** Prepares {@link StageTotals} for `analysis`. */
export function stageTotals(analysis: ModelAnalysis): StageTotals {
  const count = analysis.layers.length;
  // Layers called at one position only sum by prefix; shared layers called at several
  // positions are checked one by one (models hold few of them).
  const local = new Array<number>(count).fill(0);
  const shared: { positions: readonly number[]; weightBytes: number }[] = [];
  const flopsAt = new Array<number>(count).fill(0);
  for (const layer of analysis.layers) {
    const calls = layerCalls(layer);
    for (const call of calls) flopsAt[call.position]! += call.flops;
    const positions = [...new Set(calls.map((c) => c.position))];
    if (positions.length === 1) local[positions[0]!]! += layer.weightBytes;
    else if (positions.length > 1 && layer.weightBytes > 0)
      shared.push({ positions, weightBytes: layer.weightBytes });
  }
  const localPrefix = prefixSums(local);
  const flopsPrefix = prefixSums(flopsAt);
  return {
    weightBytes(start, end) {
      let bytes = localPrefix[end]! - localPrefix[start]!;
      for (const layer of shared) {
        if (layer.positions.some((p) => p >= start && p < end)) bytes += layer.weightBytes;
      }
      return bytes;
    },
    flops(start, end) {
      return flopsPrefix[end]! - flopsPrefix[start]!;
    },
  };
}
