/**
 * The errors of the model repository for a model or a version it does not know.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';
import { compareVersions } from './version-order.js';

/**
 * UNKNOWN_MODEL for `name`, listing the `known` models; `dir` is the repository directory
 * searched, when there is one (kept in the details: clients are not told the machine's paths).
 */
export function unknownModelError(name: string, known: Iterable<string>, dir?: string): DinferError {
  const names = [...new Set(known)].sort();
  return new DinferError(
    DinferErrorCode.UNKNOWN_MODEL,
    `unknown model "${name}"` +
      (dir === undefined ? '' : ': not in the model repository and not loaded') +
      `; known models: ${names.map((n) => `"${n}"`).join(', ') || 'none'}`,
    { details: { model: name, known: names, ...(dir === undefined ? {} : { path: dir }) } },
  );
}

/** UNKNOWN_MODEL for `version` of model `name`, listing its `known` versions (`dir`: as above). */
export function unknownVersionError(
  name: string,
  version: string,
  known: Iterable<string>,
  dir?: string,
): DinferError {
  const versions = [...new Set(known)].sort(compareVersions);
  return new DinferError(
    DinferErrorCode.UNKNOWN_MODEL,
    `model "${name}" has no version "${version}"` +
      (dir === undefined ? '' : ' in the model repository') +
      `; known versions: ${versions.join(', ') || 'none'}`,
    { details: { model: name, version, known: versions, ...(dir === undefined ? {} : { path: dir }) } },
  );
}

/** ROLLOUT_FAILED for a load of `name` without a version when none can be chosen. */
export function noVersionError(name: string, reasons: readonly string[] = []): DinferError {
  return new DinferError(
    DinferErrorCode.ROLLOUT_FAILED,
    `model "${name}" has no available version in the repository` +
      (reasons.length > 0 ? ` (${reasons.join('; ')})` : ''),
    { details: { model: name } },
  );
}
