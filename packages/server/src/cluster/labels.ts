/**
 * Reads class labels for top-k answers: a JSON array of strings, or one label per line.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { DinferError, DinferErrorCode } from '@dinfer/core';

/** Reads a labels file; throws a `DinferError` naming the path when it is missing or malformed. */
export async function readLabels(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new DinferError(DinferErrorCode.MODEL_NOT_FOUND, `${path}: cannot read labels file`, {
      cause: error,
      details: { path },
    });
  }
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (error) {
      throw new DinferError(DinferErrorCode.CONFIG_INVALID, `${path}: labels file is not valid JSON`, {
        cause: error,
        details: { path },
      });
    }
    if (!Array.isArray(parsed) || !parsed.every((l) => typeof l === 'string')) {
      throw new DinferError(
        DinferErrorCode.CONFIG_INVALID,
        `${path}: labels must be a JSON array of strings`,
        {
          details: { path },
        },
      );
    }
    return parsed;
  }
  return trimmed.split(/\r?\n/).map((line) => line.trim());
}
