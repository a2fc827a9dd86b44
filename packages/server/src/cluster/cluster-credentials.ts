/**
 * The cluster's credentials, as the master and the workers resolve them: the shared token
 * (given as is, or read from a file), and the refusal to run without one unless `insecure` is
 * said. A cluster without a token lets any process that reaches the port join (and receive
 * the model's shards and every input), or pose as the master to the workers.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';
import { checkTokenStrength, readTokenFile, TOKEN_ADVICE } from '../config/secrets.js';

/** The settings the token comes from. */
export interface ClusterCredentialOptions {
  /** The token itself (from `--token`, `DINFER_TOKEN` or the config file). */
  readonly token?: string | undefined;
  /** A file holding the token (`--token-file`, `DINFER_TOKEN_FILE`). */
  readonly tokenFile?: string | undefined;
  /** Run without a token; both sides must say so. */
  readonly insecure?: boolean | undefined;
}

const RISK = {
  master: 'any process that reaches the cluster port may join, receive the model shards and see every input',
  worker: "any process may pose as the master, receive the worker's inputs and the stages' results",
} as const;

/**
 * The cluster token of `options`: read from the file when given, checked for strength;
 * `undefined` only with `insecure`.
 *
 * @param side the process that asks, for the message.
 * @throws DinferError CONFIG_INVALID without a token (and without `insecure`), with both a
 *   token and a file, with `insecure` and a token, for a token under 16 characters or an
 *   unreadable file.
 */
export async function resolveClusterToken(
  options: ClusterCredentialOptions,
  side: 'master' | 'worker',
): Promise<string | undefined> {
  const { token, tokenFile, insecure } = options;
  if (token !== undefined && tokenFile !== undefined) {
    throw new DinferError(
      DinferErrorCode.CONFIG_INVALID,
      'give the cluster token once: --token-file (DINFER_TOKEN_FILE) or the token itself (DINFER_TOKEN), not both',
    );
  }
  const resolved = tokenFile === undefined ? token : await readTokenFile(tokenFile, 'the cluster token');
  if (resolved === undefined || resolved === '') {
    if (insecure) return undefined;
    throw new DinferError(
      DinferErrorCode.CONFIG_INVALID,
      `no cluster token: without one ${RISK[side]}. Pass --token-file FILE or set DINFER_TOKEN on the master ` +
        `and every worker (${TOKEN_ADVICE}), or run both sides with --insecure`,
    );
  }
  if (insecure) {
    throw new DinferError(
      DinferErrorCode.CONFIG_INVALID,
      '--insecure runs the cluster without a token, but a token is given: drop one of them',
    );
  }
  checkTokenStrength(resolved, 'the cluster token');
  return resolved;
}
