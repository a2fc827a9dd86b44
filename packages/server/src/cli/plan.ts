/**
 * `dinfer plan <model.json> --stages N`: choose the cuts that balance N pipeline stages.
 *
 * @module
 */
import {
  analyzeModel,
  type ModelAnalysis,
  type PlanResult,
  type ProfileClock,
  planCuts,
  profileLayers,
} from '@dinfer/core';
import type * as tf from '@tensorflow/tfjs';
import { Command, Option } from 'commander';
import { parseBytes, parsePositiveInt, parsePositiveNumber } from './arguments.js';
import {
  type CliIo,
  type CommonOptions,
  formatBytes,
  loadModel,
  setupBackend,
  table,
  withBackendOption,
} from './common.js';

/** Options shared by the commands that plan (`plan`, `split --stages`). */
export interface PlanningOptions extends CommonOptions {
  readonly memoryLimit?: number;
  /** Measure per-layer times (default) instead of estimating them from FLOPs. */
  readonly profile: boolean;
  readonly runs: number;
  readonly clock: ProfileClock;
  readonly batchSize: number;
  readonly linkBytesPerMs?: number;
}

/** Options of `dinfer plan`. */
export interface PlanCommandOptions extends PlanningOptions {
  readonly stages: number;
  readonly json?: boolean;
}

/** Adds the planning options to a command. */
export function withPlanningOptions(command: Command): Command {
  return command
    .option('--memory-limit <bytes>', 'max weight bytes per stage (e.g. 60000000, 60MB, 1GiB)', parseBytes)
    .option('--profile', 'measure per-layer times on the active backend', true)
    .option('--no-profile', 'estimate per-layer times from FLOPs and weight bytes instead')
    .addOption(new Option('--runs <n>', 'profiling runs (median)').argParser(parsePositiveInt).default(3))
    .addOption(
      new Option('--clock <clock>', 'profiling clock: wall, or cpu (process CPU time, for busy machines)')
        .choices(['wall', 'cpu'] satisfies ProfileClock[])
        .default('wall'),
    )
    .addOption(new Option('--batch-size <n>', 'examples per request').argParser(parsePositiveInt).default(1))
    .option(
      '--link-bytes-per-ms <n>',
      'link speed between stages in bytes/ms (default 1e6, about 1 GB/s loopback)',
      parsePositiveNumber,
    );
}

/** Profiles (or estimates) the layer costs and plans `stages` stages. */
export async function computePlan(
  model: tf.LayersModel,
  analysis: ModelAnalysis,
  stages: number,
  options: PlanningOptions,
  io: CliIo,
): Promise<PlanResult> {
  let layerCostsMs: number[] | undefined;
  if (options.profile) {
    const start = performance.now();
    layerCostsMs = await profileLayers(model, {
      runs: options.runs,
      batchSize: options.batchSize,
      clock: options.clock,
    });
    io.err(
      `profiled ${analysis.layers.length} layers in ${((performance.now() - start) / 1000).toFixed(1)} s`,
    );
  }
  return planCuts(analysis, {
    stages,
    layerCostsMs,
    memoryLimitBytes: options.memoryLimit,
    linkBytesPerMs: options.linkBytesPerMs,
    batchSize: options.batchSize,
  });
}

/** The `--json` form of a plan: exactly the documented fields. */
export function planToJson(plan: PlanResult): Record<string, unknown> {
  return {
    cuts: plan.cuts,
    stages: plan.stages.map((s) => ({
      layers: s.layers,
      estimatedMs: s.estimatedMs,
      weightBytes: s.weightBytes,
      crossingBytes: s.crossingBytes,
    })),
    bottleneckMs: plan.bottleneckMs,
    costSource: plan.costSource,
  };
}

/** Renders a plan for humans. */
export function formatPlan(plan: PlanResult, analysis: ModelAnalysis): string {
  const rows = plan.stages.map((s, i) => {
    const [start, end] = s.layers;
    const first = analysis.layers[start]?.name ?? '?';
    const last = analysis.layers[end - 1]?.name ?? '?';
    return [
      String(i),
      `[${start}, ${end})`,
      `${first} .. ${last}`,
      s.estimatedMs.toFixed(2),
      s.transferMs.toFixed(2),
      s.totalMs.toFixed(2),
      formatBytes(s.weightBytes),
      i === plan.stages.length - 1 ? '-' : `${formatBytes(s.crossingBytes)} (${s.crossingTensors})`,
    ];
  });
  const perSecond =
    plan.bottleneckMs > 0 ? (1000 * plan.batchSize) / plan.bottleneckMs : Number.POSITIVE_INFINITY;
  return [
    `model: ${analysis.name} (${analysis.layers.length} layers, ${formatBytes(analysis.totalWeightBytes)} of weights)`,
    `costs: ${plan.costSource}, batch ${plan.batchSize}, link ${plan.linkBytesPerMs} bytes/ms`,
    `cuts: ${plan.cuts.length === 0 ? 'none' : plan.cuts.join(', ')}`,
    '',
    table(
      [
        'stage',
        'layers',
        'from .. to',
        'compute ms',
        'transfer ms',
        'total ms',
        'weights',
        'sends (tensors)',
      ],
      rows,
      [3, 4, 5, 6],
    ),
    '',
    `bottleneck: ${plan.bottleneckMs.toFixed(2)} ms per batch (pipeline throughput <= ${perSecond.toFixed(1)} examples/s)`,
  ].join('\n');
}

/** Runs `dinfer plan`. */
export async function runPlan(modelPath: string, options: PlanCommandOptions, io: CliIo): Promise<void> {
  await setupBackend(options, io);
  const model = await loadModel(modelPath);
  try {
    const analysis = analyzeModel(model);
    const plan = await computePlan(model, analysis, options.stages, options, io);
    io.out(options.json ? JSON.stringify(planToJson(plan)) : formatPlan(plan, analysis));
  } finally {
    model.dispose();
  }
}

/** Builds the `plan` command. */
export function planCommand(io: CliIo): Command {
  const command = new Command('plan')
    .description('choose cuts that minimise the slowest of N pipeline stages')
    .argument('<model.json>', 'path or http(s) URL of a TF.js LayersModel model.json')
    .requiredOption('--stages <n>', 'number of pipeline stages', parsePositiveInt)
    .option('--json', 'print the plan as one JSON object');
  return withBackendOption(withPlanningOptions(command)).action(
    async (modelPath: string, options: PlanCommandOptions) => {
      await runPlan(modelPath, options, io);
    },
  );
}
