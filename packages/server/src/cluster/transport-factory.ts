/**
 * Builds the transport a master or worker uses: a built-in one by name, a `Transport` given
 * as is, or one made by a module's default export.
 *
 * @module
 */
import {
  DinferError,
  DinferErrorCode,
  isTransport,
  type Logger,
  type Metrics,
  type Transport,
} from '@dinfer/core';
import { socketIoTransport } from '@dinfer/transport-socketio';
import { type TcpTlsOptions, tcpTransport } from '@dinfer/transport-tcp';
import { describeValue, type ExtensionKind, loadFromModule } from './extension-module.js';

/** Transports the reference deployment ships with. */
export const TRANSPORT_KINDS = ['tcp', 'socketio'] as const;

/** One of {@link TRANSPORT_KINDS}. */
export type TransportKind = (typeof TRANSPORT_KINDS)[number];

/** A transport by name, or one of your own. */
export type TransportOption = TransportKind | Transport;

/**
 * Options shared by both transports. The cluster token is not one: core's upgrader, run by the
 * coordinator and the worker runtime, authenticates every connection (and redials).
 */
export interface TransportFactoryOptions {
  /** TLS on the cluster port (tcp only): the master's certificate and key, a worker's CA. */
  readonly tls?: TcpTlsOptions | undefined;
  /** Largest frame in bytes. Default 512 MiB (a batch of ResNet50 activations fits). */
  readonly maxFrameBytes?: number | undefined;
  readonly logger?: Logger | undefined;
  readonly metrics?: Metrics | undefined;
}

/**
 * What the default export of a transport module is called with (`--transport ./file.js`):
 * the options of the built-in transports, defaults filled in.
 */
export interface TransportContext {
  /** TLS material from `--tls-cert`/`--tls-key` (master) or `--tls`/`--tls-ca` (worker), if any. */
  readonly tls?: TcpTlsOptions | undefined;
  /** Largest frame to accept, in bytes. */
  readonly maxFrameBytes: number;
  readonly logger?: Logger | undefined;
  /** Where to report (the master's Prometheus registry; absent on workers). */
  readonly metrics?: Metrics | undefined;
}

const TRANSPORT: ExtensionKind<Transport> = { name: 'Transport', is: isTransport };

/** The context a transport is made with, from the factory options. */
export function transportContext(options: TransportFactoryOptions = {}): TransportContext {
  return {
    tls: options.tls,
    maxFrameBytes: options.maxFrameBytes ?? 512 * 1024 * 1024,
    logger: options.logger,
    metrics: options.metrics,
  };
}

/** Parses a transport name, with a clear error for unknown ones. */
export function parseTransportKind(value: string): TransportKind {
  if ((TRANSPORT_KINDS as readonly string[]).includes(value)) return value as TransportKind;
  throw new DinferError(
    DinferErrorCode.INVALID_ARGUMENT,
    `unknown transport "${value}": expected one of ${TRANSPORT_KINDS.join(', ')}`,
  );
}

/**
 * Creates the named transport.
 *
 * @throws DinferError INVALID_ARGUMENT for TLS with a transport other than tcp.
 */
export function createTransport(kind: TransportKind, options: TransportFactoryOptions = {}): Transport {
  const { tls, ...common } = transportContext(options);
  if (kind === 'tcp') return tcpTransport({ ...common, ...(tls === undefined ? {} : { tls }) });
  if (tls !== undefined) throw tlsNeedsTcp(kind);
  return socketIoTransport(common);
}

function tlsNeedsTcp(what: string): DinferError {
  return new DinferError(
    DinferErrorCode.INVALID_ARGUMENT,
    `TLS on the cluster port needs the tcp transport (--transport tcp), not ${what}; a transport of your own gets the TLS files in its context`,
  );
}

/**
 * Checks a transport option: a built-in name, or a `Transport`.
 *
 * @throws DinferError INVALID_ARGUMENT for anything else, naming what is expected.
 */
export function checkTransportOption(option: unknown): TransportOption {
  if (typeof option === 'string') return parseTransportKind(option);
  if (isTransport(option)) return option;
  throw new DinferError(
    DinferErrorCode.INVALID_ARGUMENT,
    `transport: expected ${TRANSPORT_KINDS.map((k) => `"${k}"`).join(', ')} or a Transport (see isTransport in @dinfer/core), got ${describeValue(option)}`,
  );
}

/**
 * The transport of `option`: the named built-in one, or the given `Transport` itself.
 *
 * @throws DinferError INVALID_ARGUMENT for anything else, naming what is expected, and for
 *   `options.tls` with a transport that is not the built-in tcp one.
 */
export function resolveTransport(option: unknown, options: TransportFactoryOptions = {}): Transport {
  const checked = checkTransportOption(option);
  if (typeof checked === 'string') return createTransport(checked, options);
  if (options.tls !== undefined) throw tlsNeedsTcp(`the Transport "${checked.name}"`);
  return checked;
}

/** Makes a transport with the default export of the module `file` (see `loadFromModule`). */
export function transportFromModule(
  file: string,
  options: TransportFactoryOptions = {},
  cwd?: string,
): Promise<Transport> {
  return loadFromModule(file, TRANSPORT, transportContext(options), cwd);
}
