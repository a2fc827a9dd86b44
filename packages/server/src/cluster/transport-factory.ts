/**
 * Builds the transport a master or worker uses from its name on the command line.
 *
 * @module
 */
import { DinferError, DinferErrorCode, type Logger, type Metrics, type Transport } from '@dinfer/core';
import { socketIoTransport } from '@dinfer/transport-socketio';
import { tcpTransport } from '@dinfer/transport-tcp';

/** Transports the reference deployment ships with. */
export const TRANSPORT_KINDS = ['tcp', 'socketio'] as const;

/** One of {@link TRANSPORT_KINDS}. */
export type TransportKind = (typeof TRANSPORT_KINDS)[number];

/**
 * Options shared by both transports. The cluster token is not one: core's upgrader, run by the
 * coordinator and the worker runtime, authenticates every connection.
 */
export interface TransportFactoryOptions {
  /** Largest frame in bytes. Default 512 MiB (a batch of ResNet50 activations fits). */
  readonly maxFrameBytes?: number | undefined;
  readonly logger?: Logger | undefined;
  readonly metrics?: Metrics | undefined;
}

/** Parses a transport name, with a clear error for unknown ones. */
export function parseTransportKind(value: string): TransportKind {
  if ((TRANSPORT_KINDS as readonly string[]).includes(value)) return value as TransportKind;
  throw new DinferError(
    DinferErrorCode.INVALID_ARGUMENT,
    `unknown transport "${value}": expected one of ${TRANSPORT_KINDS.join(', ')}`,
  );
}

/** Creates the named transport. */
export function createTransport(kind: TransportKind, options: TransportFactoryOptions = {}): Transport {
  const maxFrameBytes = options.maxFrameBytes ?? 512 * 1024 * 1024;
  const common = { maxFrameBytes, logger: options.logger, metrics: options.metrics };
  return kind === 'tcp' ? tcpTransport(common) : socketIoTransport(common);
}
