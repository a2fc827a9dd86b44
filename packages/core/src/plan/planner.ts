/**
 * The cut planner: picks the cut points that minimise the slowest pipeline stage.
 *
 * A stage `[start, end)` costs the sum of its layers' times plus the time to move the
 * tensors crossing its two boundaries over the link (`bytesPerExample * batchSize /
 * linkBytesPerMs` for the cut it receives and the cut it sends). The model's own inputs and
 * outputs are not counted: every plan moves them once, whatever the cuts.
 *
 * Given the memory budgets of the workers that will hold the stages, a plan of `S` stages
 * keeps every stage's memory need (stage-memory.ts: weights, their loading copy, activations)
 * within the `S`-th largest budget, so that the stages can go to `S` distinct workers; with
 * fewer workers than stages each worker takes several stages and shares its budget among
 * them. `stages: 'auto'` picks the stage count: the fewest stages whose pipeline, with the
 * spare workers as replicas, is within 5% of the fastest.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import { type StageTotals, spreadOverCalls, stageTotals } from '../model/stage-totals.js';
import type { CutInfo, ModelAnalysis, Plan, StagePlan } from '../model/types.js';
import { type CostModelOptions, estimateLayerCosts } from './cost-model.js';
import { type StageMemory, type StageMemoryOptions, stageMemoryModel } from './stage-memory.js';

/** Default {@link PlanOptions.linkBytesPerMs}: 1e6 bytes/ms = 1 GB/s, a loopback TCP link. */
export const DEFAULT_LINK_BYTES_PER_MS = 1e6;

/** Options of {@link planCuts} and {@link evaluateCuts}. */
export interface PlanOptions {
  /**
   * Number of pipeline stages (a positive integer; `stages - 1` cuts are chosen), or `'auto'`
   * to let the planner choose (see the module documentation).
   */
  readonly stages: number | 'auto';
  /**
   * Memory budgets of the workers that will hold the stages (`WorkerCapabilities.memoryBytes`):
   * every stage must fit one of them (see the module documentation). Default: no limit.
   */
  readonly workerMemoryBytes?: readonly number[] | undefined;
  /** How a stage's memory need is estimated against {@link PlanOptions.workerMemoryBytes}. */
  readonly memory?: StageMemoryOptions | undefined;
  /**
   * Measured time of each layer of `analysis.layers` for one batch of `batchSize` (e.g. from
   * `profileLayers`), in ms. When absent the static cost model estimates them from FLOPs
   * and weight bytes, and the plan's `costSource` is `'estimated'`.
   */
  readonly layerCostsMs?: readonly number[] | undefined;
  /** Maximum weight bytes one stage may hold (one worker's memory budget). Default: no limit. */
  readonly memoryLimitBytes?: number | undefined;
  /** Link speed between stages in bytes per millisecond. Default {@link DEFAULT_LINK_BYTES_PER_MS}. */
  readonly linkBytesPerMs?: number | undefined;
  /** Examples per request; scales the crossing bytes (and the estimated FLOPs). Default 1. */
  readonly batchSize?: number | undefined;
  /** Constants of the static cost model, used only when `layerCostsMs` is absent. */
  readonly costModel?: CostModelOptions | undefined;
}

/** A stage of a {@link PlanResult}: a {@link StagePlan} plus its transfer costs. */
export interface PlannedStage extends StagePlan {
  /** What the stage needs of a worker's memory budget (see `stageMemoryModel`). */
  readonly memoryBytes: number;
  /** Time to receive this stage's input cut and send its output cut, in ms. */
  readonly transferMs: number;
  /** `estimatedMs + transferMs`: this stage's share of the pipeline's period. */
  readonly totalMs: number;
  /** Bytes per example this stage receives from the previous stage (0 for the first). */
  readonly receivedBytes: number;
  /** Number of tensors this stage sends to the next stage (0 for the last). */
  readonly crossingTensors: number;
}

/** The planner's result: a {@link Plan} whose stages carry their transfer costs too. */
export interface PlanResult extends Plan {
  readonly stages: readonly PlannedStage[];
  /** Sum of the crossing bytes per example over all cuts. */
  readonly totalCrossingBytes: number;
  /** The link speed the plan assumed, in bytes per ms. */
  readonly linkBytesPerMs: number;
  /** The batch size the plan assumed. */
  readonly batchSize: number;
}

/** Relative slack under which two bottlenecks count as a tie (absorbs float rounding). */
const TIE_EPSILON = 1e-9;

interface CostContext {
  readonly layerCount: number;
  readonly costs: readonly number[];
  /** Prefix sums of the time spent at each position (a shared layer's calls where they run). */
  readonly costPrefix: Float64Array;
  readonly totals: StageTotals;
  readonly cutsByIndex: ReadonlyMap<number, CutInfo>;
  readonly linkBytesPerMs: number;
  readonly batchSize: number;
  readonly costSource: Plan['costSource'];
  readonly memory: (start: number, end: number) => StageMemory;
}

function invalid(message: string, details: Record<string, unknown>): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message, { details });
}

function prefixSums(values: readonly number[]): Float64Array {
  const prefix = new Float64Array(values.length + 1);
  for (let i = 0; i < values.length; i++) prefix[i + 1] = prefix[i]! + values[i]!;
  return prefix;
}

function buildContext(analysis: ModelAnalysis, options: PlanOptions): CostContext {
  const layerCount = analysis.layers.length;
  if (layerCount === 0) throw invalid('cannot plan a model with no layers', { model: analysis.name });
  const { stages } = options;
  if (stages !== 'auto' && (!Number.isInteger(stages) || stages < 1)) {
    throw invalid(`stages must be a positive integer or 'auto', got ${String(stages)}`, { stages });
  }
  for (const budget of options.workerMemoryBytes ?? []) {
    if (!(budget > 0) || !Number.isFinite(budget)) {
      throw invalid(`workerMemoryBytes must hold positive numbers, got ${budget}`, { budget });
    }
  }
  const batchSize = options.batchSize ?? 1;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw invalid(`batchSize must be a positive integer, got ${batchSize}`, { batchSize });
  }
  const linkBytesPerMs = options.linkBytesPerMs ?? DEFAULT_LINK_BYTES_PER_MS;
  if (Number.isNaN(linkBytesPerMs) || linkBytesPerMs <= 0) {
    throw invalid(`linkBytesPerMs must be a positive number, got ${linkBytesPerMs}`, { linkBytesPerMs });
  }
  const limit = options.memoryLimitBytes;
  if (limit !== undefined && (Number.isNaN(limit) || limit <= 0)) {
    throw invalid(`memoryLimitBytes must be a positive number, got ${limit}`, { memoryLimitBytes: limit });
  }
  let costs: readonly number[];
  let costSource: Plan['costSource'];
  if (options.layerCostsMs === undefined) {
    costs = estimateLayerCosts(analysis.layers, { ...options.costModel, batchSize });
    costSource = 'estimated';
  } else {
    costs = options.layerCostsMs;
    costSource = 'profiled';
    if (costs.length !== layerCount) {
      throw invalid(`layerCostsMs has ${costs.length} entries but the model has ${layerCount} layers`, {
        expected: layerCount,
        actual: costs.length,
      });
    }
    const bad = costs.findIndex((c) => !Number.isFinite(c) || c < 0);
    if (bad >= 0) {
      throw invalid(`layerCostsMs[${bad}] must be a finite non-negative number, got ${costs[bad]}`, {
        index: bad,
      });
    }
  }
  const cutsByIndex = new Map<number, CutInfo>();
  for (const cut of analysis.cuts) cutsByIndex.set(cut.index, cut);
  return {
    layerCount,
    costs,
    costPrefix: prefixSums(spreadOverCalls(analysis, costs)),
    totals: stageTotals(analysis),
    cutsByIndex,
    linkBytesPerMs,
    batchSize,
    costSource,
    memory: stageMemoryModel(analysis, options.memory),
  };
}

function cutBytes(ctx: CostContext, index: number): number {
  if (index <= 0 || index >= ctx.layerCount) return 0;
  return ctx.cutsByIndex.get(index)?.bytesPerExample ?? 0;
}

function cutTensors(ctx: CostContext, index: number): number {
  if (index <= 0 || index >= ctx.layerCount) return 0;
  return ctx.cutsByIndex.get(index)?.tensors.length ?? 0;
}

function transferMs(ctx: CostContext, bytes: number): number {
  return (bytes * ctx.batchSize) / ctx.linkBytesPerMs;
}

function computeMs(ctx: CostContext, start: number, end: number): number {
  return ctx.costPrefix[end]! - ctx.costPrefix[start]!;
}

function weightBytes(ctx: CostContext, start: number, end: number): number {
  return ctx.totals.weightBytes(start, end);
}

/** Compute plus transfer time of the stage `[start, end)`. */
function stageTotalMs(ctx: CostContext, start: number, end: number): number {
  return (
    computeMs(ctx, start, end) + transferMs(ctx, cutBytes(ctx, start)) + transferMs(ctx, cutBytes(ctx, end))
  );
}

function buildPlan(ctx: CostContext, cuts: readonly number[]): PlanResult {
  const bounds = [0, ...cuts, ctx.layerCount];
  const stages: PlannedStage[] = [];
  for (let s = 0; s + 1 < bounds.length; s++) {
    const start = bounds[s]!;
    const end = bounds[s + 1]!;
    const estimatedMs = computeMs(ctx, start, end);
    const receivedBytes = cutBytes(ctx, start);
    const crossingBytes = cutBytes(ctx, end);
    const transfer = transferMs(ctx, receivedBytes) + transferMs(ctx, crossingBytes);
    stages.push({
      layers: [start, end],
      memoryBytes: ctx.memory(start, end).totalBytes,
      estimatedMs,
      weightBytes: weightBytes(ctx, start, end),
      crossingBytes,
      transferMs: transfer,
      totalMs: estimatedMs + transfer,
      receivedBytes,
      crossingTensors: cutTensors(ctx, end),
    });
  }
  return {
    cuts: [...cuts],
    stages,
    bottleneckMs: Math.max(...stages.map((s) => s.totalMs)),
    costSource: ctx.costSource,
    totalCrossingBytes: cuts.reduce((sum, k) => sum + cutBytes(ctx, k), 0),
    linkBytesPerMs: ctx.linkBytesPerMs,
    batchSize: ctx.batchSize,
  };
}

/**
 * Minimax partition of the boundary positions `bounds` (first 0, last L) into `stages`
 * contiguous stages: `best[s][j]` is the smallest possible slowest-stage value over the
 * first `s` stages ending at `bounds[j]`. O(stages * bounds^2).
 */
function minimax(
  bounds: readonly number[],
  stages: number,
  value: (start: number, end: number) => number,
  allowed: (start: number, end: number) => boolean,
): number {
  const m = bounds.length;
  let prev = new Float64Array(m).fill(Number.POSITIVE_INFINITY);
  prev[0] = 0;
  for (let s = 1; s <= stages; s++) {
    const next = new Float64Array(m).fill(Number.POSITIVE_INFINITY);
    for (let j = s; j < m; j++) {
      let best = Number.POSITIVE_INFINITY;
      for (let i = s - 1; i < j; i++) {
        const before = prev[i]!;
        if (before === Number.POSITIVE_INFINITY || !allowed(bounds[i]!, bounds[j]!)) continue;
        const candidate = Math.max(before, value(bounds[i]!, bounds[j]!));
        if (candidate < best) best = candidate;
      }
      next[j] = best;
    }
    prev = next;
  }
  return prev[m - 1]!;
}

/** Among the partitions whose stages all pass `allowed`, the one with the fewest crossing bytes, then tensors. */
function fewestCrossings(
  ctx: CostContext,
  bounds: readonly number[],
  stages: number,
  allowed: (start: number, end: number) => boolean,
): number[] | undefined {
  const m = bounds.length;
  // score[s][j] = [bytes, tensors] of the best s-stage prefix ending at bounds[j]; parent for the path.
  const bytes: Float64Array[] = [];
  const tensors: Float64Array[] = [];
  const parent: Int32Array[] = [];
  for (let s = 0; s <= stages; s++) {
    bytes.push(new Float64Array(m).fill(Number.POSITIVE_INFINITY));
    tensors.push(new Float64Array(m).fill(Number.POSITIVE_INFINITY));
    parent.push(new Int32Array(m).fill(-1));
  }
  bytes[0]![0] = 0;
  tensors[0]![0] = 0;
  for (let s = 1; s <= stages; s++) {
    for (let j = s; j < m; j++) {
      const end = bounds[j]!;
      const addBytes = cutBytes(ctx, end);
      const addTensors = cutTensors(ctx, end);
      for (let i = s - 1; i < j; i++) {
        const b = bytes[s - 1]![i]!;
        if (b === Number.POSITIVE_INFINITY || !allowed(bounds[i]!, end)) continue;
        const nb = b + addBytes;
        const nt = tensors[s - 1]![i]! + addTensors;
        if (nb < bytes[s]![j]! || (nb === bytes[s]![j]! && nt < tensors[s]![j]!)) {
          bytes[s]![j] = nb;
          tensors[s]![j] = nt;
          parent[s]![j] = i;
        }
      }
    }
  }
  if (bytes[stages]![m - 1] === Number.POSITIVE_INFINITY) return undefined;
  const cuts: number[] = [];
  let j = m - 1;
  for (let s = stages; s > 1; s--) {
    j = parent[s]![j]!;
    cuts.push(bounds[j]!);
  }
  return cuts.reverse();
}

function largestLayer(analysis: ModelAnalysis): { name: string; weightBytes: number } {
  let best = { name: '', weightBytes: -1 };
  for (const layer of analysis.layers) {
    if (layer.weightBytes > best.weightBytes) best = { name: layer.name, weightBytes: layer.weightBytes };
  }
  return best;
}

/** Relative slack within which `'auto'` prefers fewer stages to a faster pipeline. */
const AUTO_SLACK = 0.05;

/**
 * The pipeline's period (ms per example) when `workers` workers serve `plan`: one per stage,
 * the spare ones as replicas of the stages that need them most.
 */
function periodWithReplicas(plan: PlanResult, workers: number): number {
  const replicas = plan.stages.map(() => 1);
  for (let spare = workers - plan.stages.length; spare > 0; spare--) {
    let worst = 0;
    plan.stages.forEach((stage, i) => {
      if (stage.totalMs / replicas[i]! > plan.stages[worst]!.totalMs / replicas[worst]!) worst = i;
    });
    replicas[worst]! += 1;
  }
  return Math.max(...plan.stages.map((stage, i) => stage.totalMs / replicas[i]!));
}

interface PlanSpace {
  readonly ctx: CostContext;
  readonly bounds: readonly number[];
  readonly maxStages: number;
  /** Worker budgets, largest first; empty: no limit. */
  readonly budgets: readonly number[];
  readonly weightLimit: number;
}

/** The memory a stage may need in an `s`-stage plan: the `s`-th largest budget (shared when s > workers). */
function memoryLimit(space: PlanSpace, s: number): number {
  const { budgets } = space;
  if (budgets.length === 0) return Number.POSITIVE_INFINITY;
  if (s <= budgets.length) return budgets[s - 1]!;
  return budgets[budgets.length - 1]! / Math.ceil(s / budgets.length);
}

/** The best `s`-stage plan within the memory limits, or undefined when none fits. */
function bestPlan(space: PlanSpace, s: number): PlanResult | undefined {
  const { ctx, bounds } = space;
  const limit = memoryLimit(space, s);
  const fits = (a: number, b: number): boolean =>
    weightBytes(ctx, a, b) <= space.weightLimit && ctx.memory(a, b).totalBytes <= limit;
  const bottleneck = minimax(bounds, s, (a, b) => stageTotalMs(ctx, a, b), fits);
  if (bottleneck === Number.POSITIVE_INFINITY) return undefined;
  const ceiling = bottleneck * (1 + TIE_EPSILON) + Number.EPSILON;
  const cuts = fewestCrossings(ctx, bounds, s, (a, b) => fits(a, b) && stageTotalMs(ctx, a, b) <= ceiling);
  if (cuts === undefined) {
    throw new DinferError(DinferErrorCode.INTERNAL, 'planner found a bottleneck but no plan reaching it', {
      details: { bottleneck },
    });
  }
  return buildPlan(ctx, cuts);
}

/** The smallest memory need of the neediest stage over the `s`-stage plans. */
function smallestMemoryNeed(space: PlanSpace, s: number): number {
  const { ctx, bounds } = space;
  return minimax(
    bounds,
    s,
    (a, b) => ctx.memory(a, b).totalBytes,
    (a, b) => weightBytes(ctx, a, b) <= space.weightLimit,
  );
}

/** PLAN_INFEASIBLE for a model whose stages cannot fit the workers, saying how much is missing. */
function doesNotFit(analysis: ModelAnalysis, space: PlanSpace, stages: number | 'auto'): DinferError {
  const workers = space.budgets.length;
  const s = stages === 'auto' ? Math.min(workers, space.maxStages) : stages;
  const need = smallestMemoryNeed(space, s);
  const offered = memoryLimit(space, s);
  const smallestBudget = space.budgets[workers - 1]!;
  let enough: number | undefined;
  if (smallestMemoryNeed(space, space.maxStages) <= smallestBudget) {
    let lo = 1;
    let hi = space.maxStages;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (smallestMemoryNeed(space, mid) <= smallestBudget) hi = mid;
      else lo = mid + 1;
    }
    enough = lo;
  }
  const advice =
    enough === undefined
      ? `even one layer per stage needs ${smallestMemoryNeed(space, space.maxStages)} bytes, more than the ${smallestBudget} bytes of the smallest worker`
      : `it needs at least ${enough} workers of ${smallestBudget} bytes, ${workers} joined`;
  return new DinferError(
    DinferErrorCode.PLAN_INFEASIBLE,
    `model "${analysis.name}" does not fit the cluster: split into ${s} stage(s), the stage that needs the most memory needs ${need} bytes ` +
      `(weights, their working copy and activations) but the workers offer ${Math.floor(offered)} bytes each: ` +
      `${Math.ceil(need - offered)} bytes are missing per worker; ${advice}`,
    {
      details: {
        stages: s,
        workers,
        requiredBytes: need,
        offeredBytes: Math.floor(offered),
        missingBytes: Math.ceil(need - offered),
        minWorkers: enough,
      },
    },
  );
}

/**
 * Chooses `stages - 1` cuts among the analysis' valid cuts that minimise the slowest stage
 * (compute plus crossing-tensor transfer), exactly, by dynamic programming, or chooses the
 * stage count too (`'auto'`). Every stage's weights must fit `memoryLimitBytes`, and every
 * stage's memory need the budgets of `workerMemoryBytes` (see the module documentation).
 * Ties (within 1e-9 relative) go to the plan with the fewest crossing bytes, then the fewest
 * crossing tensors.
 *
 * @throws DinferError `INVALID_ARGUMENT` for bad options; `PLAN_INFEASIBLE` when the model
 * has too few valid cuts for `stages`, or no plan fits the memory limits (the message names the
 * smallest limit that fits and the largest layer, or, for the workers' budgets, how many bytes
 * are missing per worker and how many workers would do).
 */
export function planCuts(analysis: ModelAnalysis, options: PlanOptions): PlanResult {
  const ctx = buildContext(analysis, options);
  const { stages } = options;
  const validCuts = analysis.cuts
    .filter((c) => c.valid && c.index > 0 && c.index < ctx.layerCount)
    .map((c) => c.index)
    .sort((a, b) => a - b);
  const bounds = [0, ...new Set(validCuts)];
  bounds.push(ctx.layerCount);
  const maxStages = bounds.length - 1;
  if (stages !== 'auto' && stages > maxStages) {
    throw new DinferError(
      DinferErrorCode.PLAN_INFEASIBLE,
      `cannot split model "${analysis.name}" into ${stages} stages: it has ${maxStages - 1} valid cut(s), so at most ${maxStages} stage(s)`,
      { details: { stages, maxStages, validCuts: maxStages - 1 } },
    );
  }
  const budgets = [...(options.workerMemoryBytes ?? [])].sort((a, b) => b - a);
  const limit = options.memoryLimitBytes ?? Number.POSITIVE_INFINITY;
  const space: PlanSpace = { ctx, bounds, maxStages, budgets, weightLimit: limit };
  const candidates =
    stages === 'auto'
      ? Array.from(
          { length: budgets.length > 0 ? Math.min(budgets.length, maxStages) : maxStages },
          (_, i) => i + 1,
        )
      : [stages];
  let chosen: PlanResult | undefined;
  const plans: { plan: PlanResult; period: number }[] = [];
  for (const s of candidates) {
    const plan = bestPlan(space, s);
    if (plan === undefined) continue;
    if (stages === 'auto' && budgets.length === 0) {
      chosen = plan; // no cluster to fill: the fewest stages that fit
      break;
    }
    plans.push({
      plan,
      period: budgets.length > 0 ? periodWithReplicas(plan, budgets.length) : plan.bottleneckMs,
    });
  }
  if (chosen === undefined && plans.length > 0) {
    const fastest = Math.min(...plans.map((p) => p.period));
    chosen = plans.find((p) => p.period <= fastest * (1 + AUTO_SLACK))!.plan;
  }
  if (chosen !== undefined) return chosen;
  if (budgets.length > 0) throw doesNotFit(analysis, space, stages);
  const s = stages === 'auto' ? maxStages : stages;
  const smallest = minimax(
    bounds,
    s,
    (a, b) => weightBytes(ctx, a, b),
    () => true,
  );
  const largest = largestLayer(analysis);
  throw new DinferError(
    DinferErrorCode.PLAN_INFEASIBLE,
    `no ${s}-stage plan of model "${analysis.name}" keeps every stage within ${limit} weight bytes: ` +
      `the smallest limit that fits is ${smallest} bytes (the largest layer, "${largest.name}", holds ${largest.weightBytes} bytes)`,
    {
      details: {
        stages: s,
        memoryLimitBytes: limit,
        smallestFeasibleLimitBytes: smallest,
        largestLayer: largest.name,
        largestLayerBytes: largest.weightBytes,
      },
    },
  );
}

/**
 * Computes the plan figures (per-stage ms, weight and crossing bytes, bottleneck) of given
 * cuts, e.g. cuts a user chose by hand. `options.stages` is ignored: it is `cuts.length + 1`.
 *
 * @throws DinferError `PARTITION_INVALID_CUT` when a cut is out of range, not strictly
 * increasing, or not a valid cut of the analysis.
 */
export function evaluateCuts(
  analysis: ModelAnalysis,
  cuts: readonly number[],
  options: Omit<PlanOptions, 'stages'> = {},
): PlanResult {
  const ctx = buildContext(analysis, { ...options, stages: cuts.length + 1 });
  let previous = 0;
  for (const cut of cuts) {
    if (!Number.isInteger(cut) || cut <= previous || cut >= ctx.layerCount) {
      throw new DinferError(
        DinferErrorCode.PARTITION_INVALID_CUT,
        `cuts must be strictly increasing integers in 1..${ctx.layerCount - 1}, got [${cuts.join(', ')}]`,
        { details: { cuts: [...cuts], layerCount: ctx.layerCount } },
      );
    }
    if (ctx.cutsByIndex.get(cut)?.valid !== true) {
      throw new DinferError(
        DinferErrorCode.PARTITION_INVALID_CUT,
        `cut ${cut} is not a valid cut of model "${analysis.name}" (a stage would have no computing layer)`,
        { details: { cut } },
      );
    }
    previous = cut;
  }
  return buildPlan(ctx, cuts);
}
