/**
 * Secrets of the reference deployment (the cluster token, the HTTP admin token): how strong
 * they must be and how they are read from a file. Secrets come from a file or the environment;
 * one typed on the command line is visible to every user of the machine (`ps`).
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { DinferError, DinferErrorCode } from '@dinfer/core';

/** Shortest token accepted, in characters. */
export const MIN_TOKEN_LENGTH = 16;

/** How to make a good token, for messages. */
export const TOKEN_ADVICE = 'make one with: openssl rand -base64 32';

/**
 * Checks that `token` is long enough to be a secret.
 *
 * @param what names the token in the message, e.g. `the admin token`.
 * @throws DinferError CONFIG_INVALID for a token under {@link MIN_TOKEN_LENGTH} characters.
 */
export function checkTokenStrength(token: string, what: string): void {
  if (token.length >= MIN_TOKEN_LENGTH) return;
  throw new DinferError(
    DinferErrorCode.CONFIG_INVALID,
    `${what} is ${token.length} characters; use at least ${MIN_TOKEN_LENGTH} (${TOKEN_ADVICE})`,
    { details: { length: token.length, minLength: MIN_TOKEN_LENGTH } },
  );
}

/**
 * Reads a token from `file`: its text without the line break(s) that end it.
 *
 * @throws DinferError CONFIG_INVALID when the file cannot be read or holds no token.
 */
export async function readTokenFile(file: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new DinferError(
      DinferErrorCode.CONFIG_INVALID,
      `cannot read ${what} from ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      { cause: error },
    );
  }
  const token = text.replace(/[\r\n]+$/, '');
  if (token.length === 0 || /[\r\n]/.test(token)) {
    throw new DinferError(
      DinferErrorCode.CONFIG_INVALID,
      `${file} must hold ${what} on one line (${TOKEN_ADVICE})`,
    );
  }
  return token;
}

/**
 * A secret given either as is or as a file (never both): the file's token when given.
 *
 * @param names the two settings' names for the message, e.g. `['--admin-token', '--admin-token-file']`.
 * @throws DinferError CONFIG_INVALID for both, or a file that cannot be read.
 */
export async function secretFromSettings(
  value: string | undefined,
  file: string | undefined,
  what: string,
  names: readonly [string, string],
): Promise<string | undefined> {
  if (value !== undefined && file !== undefined) {
    throw new DinferError(
      DinferErrorCode.CONFIG_INVALID,
      `give ${what} once: ${names[0]} or ${names[1]}, not both`,
    );
  }
  return file === undefined ? value : readTokenFile(file, what);
}
