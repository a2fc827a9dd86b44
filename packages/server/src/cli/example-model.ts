/**
 * Finds the generated example models (`@dinfer/examples`, present in the dinfer repository)
 * for commands that default to one.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';
import type { CliIo } from './common.js';

interface ExamplesModule {
  loadExampleModel(
    name: string,
    options?: Record<string, unknown>,
  ): Promise<{ modelJsonPath: string; model: { dispose(): void } }>;
}

/** Returns the model.json path of a generated example model, generating it on first use. */
export async function defaultExampleModel(
  name: 'resnet50' | 'mobilenetv2' | 'mnist-cnn',
  io: CliIo,
): Promise<string> {
  let examples: ExamplesModule;
  try {
    examples = (await import('@dinfer/examples' as string)) as ExamplesModule;
  } catch (error) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `no --model given and the example models (@dinfer/examples) are not installed; pass --model <model.json>`,
      { cause: error },
    );
  }
  io.err(`using the generated ${name} example model (generated into the cache on first use)`);
  const { modelJsonPath, model } = await examples.loadExampleModel(name);
  model.dispose();
  return modelJsonPath;
}
