/**
 * TLS on the cluster port, from files: the master presents a certificate and its key, a
 * worker verifies the master's certificate against a CA file (or the system's CAs). Only
 * the tcp transport speaks TLS; a transport of your own gets the material in its context.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { DinferError, DinferErrorCode } from '@dinfer/core';
import type { TcpTlsOptions } from '@dinfer/transport-tcp';

async function readPem(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new DinferError(
      DinferErrorCode.CONFIG_INVALID,
      `cannot read the TLS ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      { cause: error },
    );
  }
}

/**
 * The TLS material a master listens with: `undefined` without `tlsCert` and `tlsKey`.
 *
 * @throws DinferError CONFIG_INVALID for one of the two without the other, or a file that
 *   cannot be read.
 */
export async function masterTls(options: {
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
}): Promise<TcpTlsOptions | undefined> {
  const { tlsCert, tlsKey } = options;
  if (tlsCert === undefined && tlsKey === undefined) return undefined;
  if (tlsCert === undefined || tlsKey === undefined) {
    throw new DinferError(
      DinferErrorCode.CONFIG_INVALID,
      '--tls-cert and --tls-key go together: the master presents the certificate and proves it holds its key',
    );
  }
  return { cert: await readPem(tlsCert, 'certificate'), key: await readPem(tlsKey, 'key') };
}

/**
 * The TLS options a worker dials with: `undefined` (plain TCP) unless `tls` or `tlsCa`; the
 * master's certificate is always verified (against `tlsCa`, else the system's CAs).
 *
 * @throws DinferError CONFIG_INVALID for a CA file that cannot be read.
 */
export async function workerTls(options: {
  readonly tls?: boolean | undefined;
  readonly tlsCa?: string | undefined;
}): Promise<TcpTlsOptions | undefined> {
  if (options.tlsCa === undefined) return options.tls ? { rejectUnauthorized: true } : undefined;
  return { ca: await readPem(options.tlsCa, 'CA certificate'), rejectUnauthorized: true };
}
