/**
 * The optional `config.json` of a model version in a repository (or of the model directory,
 * for every version of it). Every key is optional and the object is strict, so a typo is an
 * error rather than silently ignored:
 *
 * ```json
 * { "stages": 2, "cuts": [4], "preprocess": { "scale": 0.00392156862745098, "mean": 0, "std": 1 },
 *   "weightQuantization": "float16" }
 * ```
 *
 * - `stages`: pipeline stages the planner cuts the model into, or `"auto"` (default: the master's).
 * - `cuts`: explicit cut indices; they win over `stages`.
 * - `preprocess`: how image uploads become this model's input (the schema of the master's
 *   `preprocess` config section).
 * - `weightQuantization`: `float16` or `uint8`; the weights are rounded to that precision when
 *   the version is shipped to workers, in TF.js's own quantized artifact format (see core's
 *   `DeploymentSpec.weightQuantization`).
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { DinferError, DinferErrorCode, WEIGHT_QUANTIZATIONS, type WeightQuantization } from '@dinfer/core';
import { z } from 'zod';
import { describeIssues } from '../config/issues.js';
import { preprocessSectionSchema } from '../config/schema.js';
import type { PreprocessConfig } from '../preprocess/config.js';

/** The file name of a version's (or model's) configuration. */
export const VERSION_CONFIG_FILE = 'config.json';

const int = (min: number, expected: string) =>
  z.number({ error: expected }).int({ error: expected }).min(min, { error: expected });

/** The schema of `config.json`. */
export const versionConfigSchema = z.strictObject({
  stages: z
    .union([int(1, 'expected a positive integer or "auto"'), z.literal('auto')], {
      error: 'expected a positive integer or "auto"',
    })
    .optional(),
  cuts: z
    .array(int(1, 'expected a positive layer index'), { error: 'expected a list of layer indices' })
    .refine((cuts) => cuts.every((c, i) => i === 0 || c > (cuts[i - 1] as number)), {
      error: 'expected strictly increasing layer indices',
    })
    .optional(),
  preprocess: preprocessSectionSchema.optional(),
  weightQuantization: z
    .enum(WEIGHT_QUANTIZATIONS as readonly [WeightQuantization, ...WeightQuantization[]], {
      error: `expected one of ${WEIGHT_QUANTIZATIONS.join(', ')}`,
    })
    .optional(),
});

/** A parsed `config.json`. */
export interface VersionConfig {
  readonly stages?: number | 'auto' | undefined;
  readonly cuts?: readonly number[] | undefined;
  readonly preprocess?: PreprocessConfig | undefined;
  readonly weightQuantization?: WeightQuantization | undefined;
}

/**
 * Checks a parsed `config.json` document.
 *
 * @param where Names the file in messages.
 * @throws DinferError CONFIG_INVALID naming each problem by its key (`config.json: cuts[1]: ...`).
 */
export function parseVersionConfig(document: unknown, where: string): VersionConfig {
  const result = versionConfigSchema.safeParse(document, { reportInput: true });
  if (!result.success) {
    const lines = describeIssues(result.error.issues, versionConfigSchema, (path) =>
      path.length === 0 ? where : `${where}: ${path.map(String).join('.')}`,
    );
    throw new DinferError(DinferErrorCode.CONFIG_INVALID, lines.join('; '), {
      details: { path: where, problems: lines },
    });
  }
  return result.data;
}

/**
 * Reads and checks a `config.json` file.
 *
 * @throws DinferError CONFIG_INVALID when it is not JSON or breaks the schema; MODEL_IO when it
 *   cannot be read.
 */
export async function readVersionConfig(file: string): Promise<VersionConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new DinferError(DinferErrorCode.MODEL_IO, `${file}: cannot read: ${(error as Error).message}`, {
      details: { path: file },
      cause: error,
    });
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new DinferError(
      DinferErrorCode.CONFIG_INVALID,
      `${file}: not valid JSON: ${(error as Error).message}`,
      {
        details: { path: file },
        cause: error,
      },
    );
  }
  return parseVersionConfig(document, file);
}

/** `override`'s keys win over `base`'s (the version's config over the model directory's). */
export function mergeVersionConfig(
  base: VersionConfig | undefined,
  override: VersionConfig | undefined,
): VersionConfig {
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override ?? {})) if (value !== undefined) merged[key] = value;
  // Explicit cuts in the version's file replace the model's stage count, and the other way round.
  if (override?.stages !== undefined && override.cuts === undefined) delete merged.cuts;
  return merged as VersionConfig;
}
