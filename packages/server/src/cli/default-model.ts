/**
 * The model `dinfer up` serves when given none: the seeded ResNet50 of `@dinfer/core/models`,
 * generated once into the model cache (`$DINFER_CACHE_DIR/models`, or `.cache/models` in the
 * dinfer repository) and loaded from there afterwards.
 *
 * @module
 */
import { loadGeneratedModel, RESNET50_MODEL } from '@dinfer/core/models';
import type { CliIo } from './common.js';

/** Returns the model.json path of the default model, generating it on first use. */
export async function defaultModel(io: CliIo): Promise<string> {
  io.err(`using the generated ${RESNET50_MODEL.name} example model (generated into the cache on first use)`);
  const { modelJsonPath, model } = await loadGeneratedModel(RESNET50_MODEL);
  model.dispose();
  return modelJsonPath;
}
