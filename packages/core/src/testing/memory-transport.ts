/**
 * An in-process {@link Transport}: listeners live in a {@link MemoryNetwork}, and dialing one
 * creates a pair of in-memory frame channels. The rest (handshake, requests, limits) is core's
 * upgrader, as for every real transport. For tests, examples and single-process clusters.
 *
 * @module
 */
import type { FrameChannel } from '../connection/frame-channel.js';
import { DinferError, DinferErrorCode } from '../errors.js';
import {
  type DialOptions,
  type Listener,
  type ListenOptions,
  type Transport,
  type TransportCapabilities,
  type TransportComponents,
  transportSymbol,
} from '../transport.js';
import { DEFAULT_MEMORY_MAX_FRAME_BYTES, injectMemoryGarbage, memoryChannelPair } from './memory-channel.js';

/** What a dialer tells a listener when it connects. */
export interface MemoryDialInfo {
  /** The dialer's own frame limit (its end of the channel enforces it). */
  readonly maxFrameBytes: number;
  /** Name the listener sees as the dialer's address. */
  readonly address: string;
}

/** A bound listener's entry point: creates the channel pair and returns the dialer's end. */
export type MemoryAcceptor = (dialer: MemoryDialInfo) => FrameChannel;

/**
 * A namespace of in-memory addresses. Transports sharing a network can reach each other;
 * pass a fresh one to isolate tests. {@link defaultMemoryNetwork} is used when none is given.
 */
export class MemoryNetwork {
  readonly #listeners = new Map<string, MemoryAcceptor>();
  #auto = 0;

  /** Binds `name` (`0` picks a fresh unique name). Throws `DINFER_ERR_TRANSPORT_CONNECT` when taken. */
  bind(name: string, accept: MemoryAcceptor): string {
    let bound = name;
    if (name === '0') {
      do {
        this.#auto += 1;
        bound = `auto-${this.#auto}`;
      } while (this.#listeners.has(bound));
    }
    if (this.#listeners.has(bound)) {
      throw new DinferError(
        DinferErrorCode.TRANSPORT_CONNECT,
        `memory address memory:${bound} is already in use`,
      );
    }
    this.#listeners.set(bound, accept);
    return bound;
  }

  /** Releases `name` if `accept` still holds it. */
  unbind(name: string, accept: MemoryAcceptor): void {
    if (this.#listeners.get(name) === accept) this.#listeners.delete(name);
  }

  /** The acceptor bound to `name`, if any. */
  lookup(name: string): MemoryAcceptor | undefined {
    return this.#listeners.get(name);
  }
}

/** The network used by memory transports that are given none. */
export const defaultMemoryNetwork: MemoryNetwork = new MemoryNetwork();

/** Options for {@link memoryTransport}. */
export interface MemoryTransportOptions extends TransportComponents {
  /** Largest frame sent or accepted (UTF-8 JSON header + attachments). Default 64 MiB + 64 KiB. */
  maxFrameBytes?: number | undefined;
  /** Where addresses live. Default {@link defaultMemoryNetwork}. */
  network?: MemoryNetwork | undefined;
}

const PREFIX = 'memory:';
let dialerCounter = 0;

function parseAddress(address: string): string {
  if (typeof address !== 'string' || !address.startsWith(PREFIX) || address.length === PREFIX.length) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `memory addresses look like memory:<name>, got ${JSON.stringify(address)}`,
    );
  }
  return address.slice(PREFIX.length);
}

function abortError(signal: AbortSignal, what: string): DinferError {
  return new DinferError(DinferErrorCode.ABORTED, `${what} aborted`, { cause: signal.reason });
}

/**
 * Creates an in-memory transport: raw channel pairs, authenticated and run by core's
 * upgrader like any other transport. Addresses are `memory:<name>`; `memory:0` binds a fresh
 * unique name (read it from `listener.address`). Both ends enforce `maxFrameBytes` (and the
 * 64 KiB limit before authentication).
 */
export function memoryTransport(options: MemoryTransportOptions = {}): Transport {
  const network = options.network ?? defaultMemoryNetwork;
  const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MEMORY_MAX_FRAME_BYTES;
  if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes <= 0) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'maxFrameBytes must be a positive integer');
  }
  const capabilities: TransportCapabilities = { maxFrameBytes };

  async function listen(
    address: string,
    onChannel: (channel: FrameChannel) => void,
    listenOptions: ListenOptions = {},
  ): Promise<Listener> {
    const name = parseAddress(address);
    if (listenOptions.signal?.aborted) throw abortError(listenOptions.signal, 'listen');
    const channels = new Set<FrameChannel>();
    let open = true;
    let bound = '';
    const accept: MemoryAcceptor = (dialer) => {
      const [channel, dialerEnd] = memoryChannelPair({
        maxFrameBytes: [maxFrameBytes, dialer.maxFrameBytes],
        addresses: [dialer.address, `${PREFIX}${bound}`],
      });
      channels.add(channel);
      channel.onClose(() => channels.delete(channel));
      onChannel(channel);
      return dialerEnd;
    };
    bound = network.bind(name, accept);
    return {
      address: `${PREFIX}${bound}`,
      async close() {
        if (!open) return;
        open = false;
        network.unbind(bound, accept);
        for (const channel of channels) channel.close();
      },
    };
  }

  async function dial(address: string, dialOptions: DialOptions = {}): Promise<FrameChannel> {
    const name = parseAddress(address);
    const signal = dialOptions.signal;
    if (signal?.aborted) throw abortError(signal, 'dial');
    const accept = network.lookup(name);
    if (accept === undefined) {
      throw new DinferError(DinferErrorCode.TRANSPORT_CONNECT, `nothing listens on ${address}`, {
        details: { address },
      });
    }
    dialerCounter += 1;
    return accept({ maxFrameBytes, address: `${PREFIX}dialer-${dialerCounter}` });
  }

  return { [transportSymbol]: true, name: 'memory', capabilities, listen, dial };
}

/**
 * Opens a raw, unauthenticated link to the memory listener at `address` and sends it a
 * broken frame (see `injectMemoryGarbage`). Resolves once the listener has closed the link:
 * the `sendRawGarbage` hook of the transport suite for the memory transport.
 */
export function sendMemoryGarbage(
  address: string,
  kind: 'malformed' | 'oversize',
  network: MemoryNetwork = defaultMemoryNetwork,
): Promise<void> {
  const accept = network.lookup(parseAddress(address));
  if (accept === undefined) {
    return Promise.reject(
      new DinferError(DinferErrorCode.TRANSPORT_CONNECT, `nothing listens on ${address}`),
    );
  }
  const raw = accept({ maxFrameBytes: DEFAULT_MEMORY_MAX_FRAME_BYTES, address: `${PREFIX}garbage` });
  const closed = new Promise<void>((resolve) => raw.onClose(() => resolve()));
  raw.onEnvelope(() => {});
  injectMemoryGarbage(raw, kind);
  return closed;
}
