/**
 * `dinfer inspect <model.json>`: the layers of a model and what crosses each candidate cut.
 *
 * @module
 */
import { analyzeModel, type ModelAnalysis } from '@dinfer/core';
import { Command } from 'commander';
import {
  type CliIo,
  type CommonOptions,
  formatBytes,
  formatShape,
  loadModel,
  setupBackend,
  table,
  withBackendOption,
} from './common.js';

/** Options of `dinfer inspect`. */
export interface InspectOptions extends CommonOptions {
  readonly json?: boolean;
}

/** Renders an analysis as the human-readable report of `dinfer inspect`. */
export function formatAnalysis(analysis: ModelAnalysis): string {
  const layerRows = analysis.layers.map((layer) => [
    String(layer.index),
    layer.name,
    layer.className,
    layer.outputShapes.map(formatShape).join(' '),
    layer.params.toLocaleString('en-US'),
  ]);
  const cutRows = analysis.cuts.map((cut) => [
    String(cut.index),
    `${analysis.layers[cut.index - 1]?.name ?? '?'} | ${analysis.layers[cut.index]?.name ?? '?'}`,
    String(cut.tensors.length),
    String(cut.bytesPerExample),
    formatBytes(cut.bytesPerExample),
    cut.valid ? '' : 'invalid',
  ]);
  const validCount = analysis.cuts.filter((c) => c.valid).length;
  return [
    `model: ${analysis.name}`,
    `inputs: ${analysis.inputs.map((t) => `${t.name} ${formatShape(t.shape)} ${t.dtype}`).join(', ')}`,
    `outputs: ${analysis.outputs.map((t) => `${t.name} ${formatShape(t.shape)} ${t.dtype}`).join(', ')}`,
    `layers: ${analysis.layers.length}, params: ${analysis.totalParams.toLocaleString('en-US')}, weights: ${formatBytes(analysis.totalWeightBytes)}`,
    '',
    table(['index', 'name', 'class', 'output shape', 'params'], layerRows, [0, 4]),
    '',
    `cuts (${validCount} valid of ${analysis.cuts.length}; cut k puts layers [0, k) before it):`,
    table(['cut', 'between', 'tensors', 'bytes/example', 'size', ''], cutRows, [0, 2, 3, 4]),
  ].join('\n');
}

/** Runs `dinfer inspect`. */
export async function runInspect(modelPath: string, options: InspectOptions, io: CliIo): Promise<void> {
  await setupBackend(options, io);
  const model = await loadModel(modelPath);
  try {
    const analysis = analyzeModel(model);
    io.out(options.json ? JSON.stringify(analysis) : formatAnalysis(analysis));
  } finally {
    model.dispose();
  }
}

/** Builds the `inspect` command. */
export function inspectCommand(io: CliIo): Command {
  const command = new Command('inspect')
    .description('list the layers of a model and the tensors crossing each candidate cut')
    .argument('<model.json>', 'path or http(s) URL of a TF.js LayersModel model.json')
    .option('--json', 'print the analysis as one JSON object');
  return withBackendOption(command).action(async (modelPath: string, options: InspectOptions) => {
    await runInspect(modelPath, options, io);
  });
}
