import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { analyzeModel } from '../src/model/analyze.js';
import type { ModelAnalysis } from '../src/model/types.js';
import { initBackend } from '../src/node/backend.js';
import { partitionModel } from '../src/partition/partition.js';
import { planCuts } from '../src/plan/planner.js';
import { stageMemoryModel } from '../src/plan/stage-memory.js';
import { randomizeWeights } from './fixtures/models.js';

beforeAll(async () => {
  await initBackend();
});

/** Eight Dense layers of one width: 257 KiB of weights each. */
function ladder(): tf.LayersModel {
  const layers = Array.from({ length: 8 }, (_, i) =>
    tf.layers.dense({
      units: 256,
      activation: 'relu',
      name: `d${i}`,
      ...(i === 0 ? { inputShape: [256] } : {}),
    }),
  );
  const model = tf.sequential({ name: 'ladder', layers });
  randomizeWeights(model);
  return model;
}

const tensorBytes = (shape: readonly (number | null)[], batch: number) =>
  shape.reduce<number>((n, d, i) => n * (i === 0 ? batch : (d ?? 1)), 4);

describe('stageMemoryModel', () => {
  it('adds up the stage model weights, their working copy, batch activations and the overhead', () => {
    const model = ladder();
    const analysis = analyzeModel(model);
    const memory = stageMemoryModel(analysis, { batchSize: 3, overheadBytes: 1000 });
    const unpacked = stageMemoryModel(analysis, { batchSize: 3, overheadBytes: 1000, packsWeights: false });
    for (const cuts of [[2], [3, 6], [1, 4, 7]]) {
      for (const stage of partitionModel(model, cuts).stages) {
        const need = memory(stage.layers[0], stage.layers[1]);
        const variables = stage.model.weights.map((w) => w.shape.reduce<number>((a, b) => a * (b ?? 1), 4));
        expect(need.weightBytes).toBe(variables.reduce((a, b) => a + b, 0));
        // A packed copy of the weights, or the largest tensor's blob and decoded copy while loading.
        expect(need.copyBytes).toBe(Math.max(need.weightBytes, 2 * Math.max(...variables)));
        expect(unpacked(stage.layers[0], stage.layers[1]).copyBytes).toBe(2 * Math.max(...variables));
        // Received and sent on the wire and in the backend, plus the widest layer's input and output.
        const io = [...stage.model.inputs, ...stage.model.outputs].reduce(
          (n, t) => n + tensorBytes(t.shape, 3),
          0,
        );
        const widest = Math.max(
          ...stage.model.layers
            .filter((l) => l.getClassName() !== 'InputLayer')
            .map((l) => {
              // The layer's last call is the one this stage model made.
              const call = l.inboundNodes.length - 1;
              const input = l.getInputAt(call) as tf.SymbolicTensor;
              return (
                tensorBytes(input.shape, 3) + tensorBytes((l.getOutputAt(call) as tf.SymbolicTensor).shape, 3)
              );
            }),
        );
        expect(need.activationBytes).toBe(2 * io + widest);
        expect(need.totalBytes).toBe(need.weightBytes + need.copyBytes + need.activationBytes + 1000);
      }
    }
  });
});

describe('planning for the workers memory budgets', () => {
  let analysis: ModelAnalysis;
  const options = { memory: { batchSize: 1, overheadBytes: 0 } };
  /** What `layers` consecutive layers from the first need. */
  let need: (layers: number) => number;
  beforeAll(() => {
    analysis = analyzeModel(ladder());
    const memory = stageMemoryModel(analysis, options.memory);
    need = (layers) => memory(0, layers).totalBytes;
  });

  it('only proposes stages that fit the workers that will hold them', () => {
    const budget = need(2);
    const plan = planCuts(analysis, { stages: 4, workerMemoryBytes: Array(4).fill(budget), ...options });
    expect(plan.stages.map((s) => s.layers[1] - s.layers[0])).toEqual([2, 2, 2, 2]);
    for (const stage of plan.stages) expect(stage.memoryBytes).toBeLessThanOrEqual(budget);
    // Without the budgets a 3-stage plan exists, with a stage needing more than a worker offers.
    const free = planCuts(analysis, { stages: 3, ...options });
    expect(Math.max(...free.stages.map((s) => s.memoryBytes))).toBeGreaterThan(budget);
  });

  it("'auto' picks the fewest stages that fit when spare workers replicate them", () => {
    const roomy = planCuts(analysis, {
      stages: 'auto',
      workerMemoryBytes: [4 * need(8), 4 * need(8)],
      ...options,
    });
    expect(roomy.stages).toHaveLength(1);
    const tight = planCuts(analysis, {
      stages: 'auto',
      workerMemoryBytes: Array(8).fill(need(2)),
      ...options,
    });
    expect(tight.stages).toHaveLength(4);
    for (const stage of tight.stages) expect(stage.memoryBytes).toBeLessThanOrEqual(need(2));
  });

  it('refuses a model that cannot fit the cluster, saying how much memory is missing and how many workers would do', () => {
    const budget = need(2);
    let caught: unknown;
    try {
      planCuts(analysis, { stages: 3, workerMemoryBytes: Array(3).fill(budget), ...options });
    } catch (error) {
      caught = error;
    }
    expect(isDinferError(caught, DinferErrorCode.PLAN_INFEASIBLE)).toBe(true);
    const error = caught as Error & { details: Record<string, number> };
    expect(error.message).toMatch(/bytes are missing per worker; it needs at least 4 workers/);
    // The best 3-stage split holds 3 layers in its neediest stage.
    expect(error.details.requiredBytes).toBe(
      Math.max(...planCuts(analysis, { stages: 3, ...options }).stages.map((s) => s.memoryBytes)),
    );
    expect(error.details.requiredBytes).toBeGreaterThanOrEqual(need(3) - 2048);
    expect(error.details.offeredBytes).toBe(budget);
    expect(error.details.missingBytes).toBe(error.details.requiredBytes! - budget);
    expect(error.details.minWorkers).toBe(4);
    expect(() =>
      planCuts(analysis, { stages: 'auto', workerMemoryBytes: Array(3).fill(budget), ...options }),
    ).toThrow(/does not fit the cluster/);
    const fits = planCuts(analysis, { stages: 'auto', workerMemoryBytes: Array(4).fill(budget), ...options });
    expect(fits.stages).toHaveLength(4);
  });

  it('shares a worker budget among the stages it must hold when stages outnumber workers', () => {
    const budget = 2 * need(2);
    const plan = planCuts(analysis, { stages: 4, workerMemoryBytes: [budget, budget], ...options });
    for (const stage of plan.stages) expect(stage.memoryBytes).toBeLessThanOrEqual(budget / 2);
    expect(() => planCuts(analysis, { stages: 3, workerMemoryBytes: [budget, budget], ...options })).toThrow(
      /does not fit the cluster/,
    );
  });

  it('refuses a stage count that is not a positive integer or auto', () => {
    expect(() => planCuts(analysis, { stages: 0 })).toThrow(/positive integer or 'auto'/);
    expect(() => planCuts(analysis, { stages: 'many' as never })).toThrow(/positive integer or 'auto'/);
  });
});
