/**
 * `dinfer split <model.json> (--stages N | --cuts i,j) --out DIR`: write one standalone
 * TF.js model per stage plus `DIR/manifest.json`.
 *
 * @module
 */
import path from 'node:path';
import { analyzeModel, evaluateCuts, partitionModel, savePartition } from '@dinfer/core';
import { Command } from 'commander';
import { parseCutList, parsePositiveInt } from './arguments.js';
import { type CliIo, formatBytes, loadModel, setupBackend, table, withBackendOption } from './common.js';
import { computePlan, type PlanningOptions, withPlanningOptions } from './plan.js';

/** Options of `dinfer split`. */
export interface SplitOptions extends PlanningOptions {
  readonly stages?: number;
  readonly cuts?: number[];
  readonly out: string;
  readonly json?: boolean;
}

/** Runs `dinfer split`. `options` must hold exactly one of `stages` and `cuts`. */
export async function runSplit(modelPath: string, options: SplitOptions, io: CliIo): Promise<void> {
  await setupBackend(options, io);
  const model = await loadModel(modelPath);
  try {
    const analysis = analyzeModel(model);
    let cuts: readonly number[];
    if (options.cuts !== undefined) {
      // Validates the cuts against the analysis (PARTITION_INVALID_CUT) before any work.
      cuts = evaluateCuts(analysis, options.cuts, { batchSize: options.batchSize }).cuts;
    } else {
      cuts = (await computePlan(model, analysis, options.stages ?? 1, options, io)).cuts;
    }
    const partition = partitionModel(model, cuts);
    const outDir = path.resolve(options.out);
    const manifest = await savePartition(partition, outDir);
    if (options.json) {
      io.out(JSON.stringify(manifest));
      return;
    }
    const rows = partition.stages.map((stage) => [
      String(stage.index),
      `[${stage.layers[0]}, ${stage.layers[1]})`,
      stage.inputs.map((t) => t.name).join(', '),
      stage.outputs.map((t) => t.name).join(', '),
      formatBytes(stage.weightBytes),
    ]);
    io.out(
      [
        `split ${analysis.name} into ${partition.stages.length} stage(s) at cuts ${cuts.length === 0 ? 'none' : cuts.join(', ')}`,
        table(['stage', 'layers', 'inputs', 'outputs', 'weights'], rows, [0, 4]),
        `wrote ${path.join(outDir, 'manifest.json')}`,
      ].join('\n'),
    );
  } finally {
    model.dispose();
  }
}

/** Builds the `split` command. */
export function splitCommand(io: CliIo): Command {
  const command = new Command('split')
    .description('split a model into pipeline stages and save each as a standalone TF.js model')
    .argument('<model.json>', 'path or http(s) URL of a TF.js LayersModel model.json')
    .option('--stages <n>', 'number of stages, cuts chosen by the planner', parsePositiveInt)
    .option('--cuts <list>', 'explicit cut indices, e.g. 40,81 (see `dinfer inspect`)', parseCutList)
    .requiredOption('--out <dir>', 'output directory (manifest.json + one directory per stage)')
    .option('--json', 'print the manifest as JSON');
  return withBackendOption(withPlanningOptions(command)).action(
    async (modelPath: string, options: SplitOptions, self: Command) => {
      if ((options.stages === undefined) === (options.cuts === undefined)) {
        self.error('error: give exactly one of --stages N or --cuts i,j,...', { exitCode: 2 });
      }
      await runSplit(modelPath, options, io);
    },
  );
}
