import { describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import type { CrossingTensor, CutInfo, LayerInfo, ModelAnalysis } from '../src/model/types.js';
import { estimateLayerCosts } from '../src/plan/cost-model.js';
import { evaluateCuts, planCuts } from '../src/plan/planner.js';

/** A small deterministic PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

interface Synthetic {
  weights: number[];
  flops?: number[];
  /** Crossing tensor byte sizes per cut index 1..L-1; absent entries mean one 100-byte tensor. */
  cutTensors?: Record<number, number[]>;
  invalid?: number[];
}

function analysisOf(spec: Synthetic): ModelAnalysis {
  const layers: LayerInfo[] = spec.weights.map((w, index) => ({
    index,
    name: `layer${index}`,
    className: 'Dense',
    outputShapes: [[null, 4]],
    params: w / 4,
    weightBytes: w,
    flops: spec.flops?.[index] ?? 0,
  }));
  const cuts: CutInfo[] = [];
  for (let index = 1; index < layers.length; index++) {
    const sizes = spec.cutTensors?.[index] ?? [100];
    const tensors: CrossingTensor[] = sizes.map((bytes, i) => ({
      name: `t${index}_${i}`,
      shape: [null, bytes / 4],
      dtype: 'float32',
      bytesPerExample: bytes,
    }));
    cuts.push({
      index,
      valid: !(spec.invalid ?? []).includes(index),
      tensors,
      bytesPerExample: sizes.reduce((a, b) => a + b, 0),
    });
  }
  return {
    name: 'synthetic',
    inputs: [{ name: 'in', shape: [null, 4], dtype: 'float32' }],
    outputs: [{ name: 'out', shape: [null, 4], dtype: 'float32' }],
    layers,
    cuts,
    totalParams: layers.reduce((a, l) => a + l.params, 0),
    totalWeightBytes: layers.reduce((a, l) => a + l.weightBytes, 0),
  };
}

function* combinations(items: readonly number[], k: number, from = 0): Generator<number[]> {
  if (k === 0) {
    yield [];
    return;
  }
  for (let i = from; i <= items.length - k; i++) {
    for (const rest of combinations(items, k - 1, i + 1)) yield [items[i]!, ...rest];
  }
}

interface Score {
  cuts: number[];
  bottleneck: number;
  bytes: number;
  tensors: number;
}

/** Exhaustive search, computing every stage's cost directly (no prefix sums). */
function bruteForce(
  analysis: ModelAnalysis,
  costs: readonly number[],
  stages: number,
  link: number,
  limit = Number.POSITIVE_INFINITY,
): Score | undefined {
  const L = analysis.layers.length;
  const valid = analysis.cuts.filter((c) => c.valid).map((c) => c.index);
  const bytesAt = (k: number) => (k > 0 && k < L ? analysis.cuts[k - 1]!.bytesPerExample : 0);
  let best: Score | undefined;
  for (const cuts of combinations(valid, stages - 1)) {
    const bounds = [0, ...cuts, L];
    let bottleneck = 0;
    let fits = true;
    for (let s = 0; s + 1 < bounds.length; s++) {
      let ms = 0;
      let w = 0;
      for (let l = bounds[s]!; l < bounds[s + 1]!; l++) {
        ms += costs[l]!;
        w += analysis.layers[l]!.weightBytes;
      }
      if (w > limit) fits = false;
      ms += bytesAt(bounds[s]!) / link + bytesAt(bounds[s + 1]!) / link;
      bottleneck = Math.max(bottleneck, ms);
    }
    if (!fits) continue;
    const bytes = cuts.reduce((a, k) => a + bytesAt(k), 0);
    const tensors = cuts.reduce((a, k) => a + analysis.cuts[k - 1]!.tensors.length, 0);
    const candidate = { cuts, bottleneck, bytes, tensors };
    if (best === undefined) {
      best = candidate;
      continue;
    }
    const tie = Math.abs(candidate.bottleneck - best.bottleneck) <= 1e-9 * best.bottleneck;
    if (
      (!tie && candidate.bottleneck < best.bottleneck) ||
      (tie && (bytes < best.bytes || (bytes === best.bytes && tensors < best.tensors)))
    ) {
      best = candidate;
    }
  }
  return best;
}

describe('planCuts', () => {
  it('matches exhaustive search on random small models', () => {
    const random = rng(42);
    let compared = 0;
    for (let trial = 0; trial < 150; trial++) {
      const L = 3 + Math.floor(random() * 9);
      const costs = Array.from({ length: L }, () => Math.round(random() * 20) / 2);
      const weights = Array.from({ length: L }, () => Math.floor(random() * 1000));
      const cutTensors: Record<number, number[]> = {};
      for (let k = 1; k < L; k++) {
        const n = 1 + Math.floor(random() * 3);
        cutTensors[k] = Array.from({ length: n }, () => 4 * (1 + Math.floor(random() * 500)));
      }
      const invalid = Array.from({ length: L - 1 }, (_, i) => i + 1).filter(() => random() < 0.2);
      const analysis = analysisOf({ weights, cutTensors, invalid });
      const link = [100, 1000, 1e6][trial % 3]!;
      const validCount = L - 1 - invalid.length;
      for (let stages = 1; stages <= Math.min(4, validCount + 1); stages++) {
        const limit = trial % 4 === 0 ? 1500 : undefined;
        const expected = bruteForce(analysis, costs, stages, link, limit);
        const run = () =>
          planCuts(analysis, { stages, layerCostsMs: costs, linkBytesPerMs: link, memoryLimitBytes: limit });
        if (expected === undefined) {
          expect(run).toThrowError(/smallest limit that fits/);
          continue;
        }
        const plan = run();
        compared++;
        expect(plan.cuts).toHaveLength(stages - 1);
        expect(plan.bottleneckMs).toBeCloseTo(expected.bottleneck, 9);
        expect(plan.totalCrossingBytes).toBe(expected.bytes);
        const tensors = plan.stages.reduce((a, s) => a + s.crossingTensors, 0);
        expect(tensors).toBe(expected.tensors);
        expect(plan.costSource).toBe('profiled');
      }
    }
    expect(compared).toBeGreaterThan(300);
  });

  it('reports consistent stages: contiguous ranges covering every layer, sums of costs and weights', () => {
    const weights = [0, 10, 20, 30, 40, 50, 60];
    const costs = [0, 5, 1, 7, 3, 2, 4];
    const analysis = analysisOf({ weights });
    const plan = planCuts(analysis, { stages: 3, layerCostsMs: costs, linkBytesPerMs: 1e6 });
    expect(plan.stages[0]!.layers[0]).toBe(0);
    expect(plan.stages.at(-1)!.layers[1]).toBe(weights.length);
    plan.stages.forEach((stage, s) => {
      const [start, end] = stage.layers;
      if (s > 0) expect(start).toBe(plan.cuts[s - 1]);
      expect(stage.estimatedMs).toBeCloseTo(
        costs.slice(start, end).reduce((a, b) => a + b, 0),
        12,
      );
      expect(stage.weightBytes).toBe(weights.slice(start, end).reduce((a, b) => a + b, 0));
      expect(stage.crossingBytes).toBe(s === plan.stages.length - 1 ? 0 : 100);
    });
    expect(plan.bottleneckMs).toBe(Math.max(...plan.stages.map((s) => s.totalMs)));
  });

  it('returns no cuts for one stage', () => {
    const analysis = analysisOf({ weights: [1, 2, 3] });
    const plan = planCuts(analysis, { stages: 1, layerCostsMs: [1, 2, 3] });
    expect(plan.cuts).toEqual([]);
    expect(plan.stages).toHaveLength(1);
    expect(plan.bottleneckMs).toBe(6);
    expect(plan.stages[0]!.transferMs).toBe(0);
  });

  it('breaks ties by fewer crossing bytes, then by fewer crossing tensors', () => {
    // Equal costs: cutting at 1, 2 or 3 gives the same 2-stage bottleneck when the link is free-ish.
    const costs = [0, 1, 0, 0, 1];
    const free = 1e12;
    const bytes = analysisOf({ weights: [0, 0, 0, 0, 0], cutTensors: { 2: [400], 3: [40], 4: [4000] } });
    expect(planCuts(bytes, { stages: 2, layerCostsMs: costs, linkBytesPerMs: free }).cuts).toEqual([3]);
    const tensors = analysisOf({ weights: [0, 0, 0, 0, 0], cutTensors: { 2: [20, 20], 3: [40], 4: [4000] } });
    expect(planCuts(tensors, { stages: 2, layerCostsMs: costs, linkBytesPerMs: free }).cuts).toEqual([3]);
    const twoOnly = analysisOf({
      weights: [0, 0, 0, 0, 0],
      cutTensors: { 2: [40], 3: [20, 20], 4: [4000] },
    });
    expect(planCuts(twoOnly, { stages: 2, layerCostsMs: costs, linkBytesPerMs: free }).cuts).toEqual([2]);
  });

  it('charges crossing bytes over the link: a slow link moves the cut to a small tensor', () => {
    const costs = [0, 10, 10, 10, 10];
    const big = [1_000_000];
    const analysis = analysisOf({
      weights: [0, 0, 0, 0, 0],
      cutTensors: { 1: big, 2: [1000], 3: big, 4: big },
    });
    const fast = planCuts(analysis, { stages: 2, layerCostsMs: costs, linkBytesPerMs: 1e12 });
    expect(fast.cuts).toEqual([3]);
    expect(fast.bottleneckMs).toBeCloseTo(20 + 1e6 / 1e12, 12);
    // At 5e4 B/ms the balanced cut 3 (20 | 20) pays 20 ms of transfer on each side (40);
    // cut 2 (10 | 30) pays 0.02 ms (30.02).
    const slow = planCuts(analysis, { stages: 2, layerCostsMs: costs, linkBytesPerMs: 5e4 });
    expect(slow.cuts).toEqual([2]);
    expect(slow.bottleneckMs).toBeCloseTo(30.02, 9);
    expect(slow.stages[1]!.receivedBytes).toBe(1000);
    expect(slow.stages[0]!.transferMs).toBeCloseTo(0.02, 12);
  });

  it('scales crossing bytes with the batch size', () => {
    const analysis = analysisOf({ weights: [0, 0, 0], cutTensors: { 1: [1000], 2: [1000] } });
    const plan = planCuts(analysis, {
      stages: 2,
      layerCostsMs: [0, 1, 1],
      linkBytesPerMs: 1000,
      batchSize: 4,
    });
    expect(plan.stages[0]!.transferMs).toBe(4);
  });

  it('keeps every stage within the memory limit and reports the smallest feasible one', () => {
    const weights = [0, 100, 100, 500, 100, 100];
    const costs = [0, 1, 1, 1, 1, 10];
    const analysis = analysisOf({ weights });
    const free = planCuts(analysis, { stages: 2, layerCostsMs: costs });
    expect(free.cuts).toEqual([5]);
    const limited = planCuts(analysis, { stages: 2, layerCostsMs: costs, memoryLimitBytes: 700 });
    for (const stage of limited.stages) expect(stage.weightBytes).toBeLessThanOrEqual(700);
    // Cut 4 (4 ms | 11 ms) beats cut 3 (2 ms | 12 ms); cut 5 would hold 800 bytes.
    expect(limited.cuts).toEqual([4]);
    try {
      planCuts(analysis, { stages: 2, layerCostsMs: costs, memoryLimitBytes: 400 });
      expect.unreachable();
    } catch (error) {
      expect(isDinferError(error, DinferErrorCode.PLAN_INFEASIBLE)).toBe(true);
      const e = error as { message: string; details: Record<string, unknown> };
      // Best 2-stage weight split: [0,3) = 200 | [3,6) = 700, or [0,4) = 700 | 200: 700.
      expect(e.details.smallestFeasibleLimitBytes).toBe(700);
      expect(e.details.largestLayer).toBe('layer3');
      expect(e.message).toMatch(/700 bytes.*layer3.*500 bytes/);
    }
  });

  it('rejects more stages than valid cuts allow, and bad options', () => {
    const analysis = analysisOf({ weights: [0, 1, 1, 1], invalid: [1] });
    expect(() => planCuts(analysis, { stages: 4, layerCostsMs: [0, 1, 1, 1] })).toThrowError(
      /2 valid cut\(s\), so at most 3 stage/,
    );
    expect(() => planCuts(analysis, { stages: 0 })).toThrowError(/positive integer/);
    expect(() => planCuts(analysis, { stages: 2, layerCostsMs: [1, 2] })).toThrowError(/has 2 entries/);
    expect(() => planCuts(analysis, { stages: 2, layerCostsMs: [0, 1, Number.NaN, 1] })).toThrowError(
      /layerCostsMs\[2\]/,
    );
    expect(() => planCuts(analysis, { stages: 2, memoryLimitBytes: -1 })).toThrowError(/memoryLimitBytes/);
    const plan = planCuts(analysis, { stages: 3, layerCostsMs: [0, 1, 1, 1] });
    expect(plan.cuts).toEqual([2, 3]);
  });

  it('estimates costs from FLOPs and weights when none are given', () => {
    const flops = [0, 2.8e7, 5.6e7, 2.8e7];
    const weights = [0, 1e7, 0, 0];
    const analysis = analysisOf({ weights, flops });
    const plan = planCuts(analysis, { stages: 2, linkBytesPerMs: 1e12 });
    expect(plan.costSource).toBe('estimated');
    const expected = estimateLayerCosts(analysis.layers);
    // Layer 1: 1 ms of FLOPs + 1 ms of weights + overhead; layer 2: 2 ms + overhead.
    expect(expected[1]).toBeCloseTo(2.02, 9);
    expect(expected[2]).toBeCloseTo(2.02, 9);
    expect(plan.stages.reduce((a, s) => a + s.estimatedMs, 0)).toBeCloseTo(
      expected.reduce((a, b) => a + b, 0),
      9,
    );
  });
});

describe('evaluateCuts', () => {
  it('computes the figures of user cuts and rejects invalid ones', () => {
    const analysis = analysisOf({ weights: [0, 10, 20, 30], invalid: [2] });
    const plan = evaluateCuts(analysis, [1], { layerCostsMs: [0, 1, 2, 3], linkBytesPerMs: 100 });
    expect(plan.stages.map((s) => s.estimatedMs)).toEqual([0, 6]);
    expect(plan.bottleneckMs).toBe(7);
    for (const cuts of [[2], [0], [3, 1], [4], [1.5]]) {
      try {
        evaluateCuts(analysis, cuts, { layerCostsMs: [0, 1, 2, 3] });
        expect.unreachable();
      } catch (error) {
        expect(isDinferError(error, DinferErrorCode.PARTITION_INVALID_CUT)).toBe(true);
      }
    }
  });
});
