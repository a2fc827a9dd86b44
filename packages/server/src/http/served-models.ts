/**
 * Finds the model (and version) a request addresses, with messages that list what is served.
 *
 * @module
 */
import { DinferError, DinferErrorCode, type InferenceService, type ServedModel } from '@dinfer/core';

/** The names of the served models, quoted, for messages. */
function servedNames(models: readonly ServedModel[]): string {
  return models.length === 0 ? 'none' : models.map((m) => `"${m.name}"`).join(', ');
}

/**
 * The served model called `name` (and at `version`, when given).
 *
 * @throws DinferError UNKNOWN_MODEL when no such model or version is served.
 */
export function findServedModel(service: InferenceService, name: string, version?: string): ServedModel {
  const models = service.models();
  const model = models.find((m) => m.name === name);
  if (model === undefined) {
    throw new DinferError(
      DinferErrorCode.UNKNOWN_MODEL,
      `unknown model "${name}"; served models: ${servedNames(models)}`,
      {
        details: { model: name },
      },
    );
  }
  if (version === undefined || version === model.version) return model;
  const available = model.versions ?? [model.version];
  if (!available.includes(version)) {
    throw new DinferError(
      DinferErrorCode.UNKNOWN_MODEL,
      `model "${name}" has no version "${version}"; available: ${available.join(', ')} (active: ${model.version})`,
      { details: { model: name, version } },
    );
  }
  // A standby version: addressed explicitly, it answers with its own version label.
  return { ...model, version };
}

/**
 * The model a request without a model name addresses: the only one served.
 *
 * @throws DinferError INVALID_ARGUMENT when several models are served, UNKNOWN_MODEL when none is.
 */
export function defaultServedModel(service: InferenceService): ServedModel {
  const models = service.models();
  if (models.length === 1) return models[0]!;
  if (models.length === 0) throw new DinferError(DinferErrorCode.UNKNOWN_MODEL, 'no model is served yet');
  throw new DinferError(
    DinferErrorCode.INVALID_ARGUMENT,
    `several models are served; name one in "model": ${servedNames(models)}`,
  );
}
