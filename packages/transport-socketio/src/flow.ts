/**
 * Backpressure for `Connection.send`: socket.io's `emit` never blocks, so we look at the two
 * places data piles up (engine.io's packet write buffer, and the TCP socket under the
 * WebSocket) and wait for them to drain.
 *
 * @module
 */

/** Packets queued in engine.io before `send` waits for its `drain`. */
const MAX_QUEUED_PACKETS = 1024;
/**
 * Bytes buffered in the TCP socket before `send` waits for its `drain`. Well above Node's
 * 16 KiB high-water mark: waiting at every 100 KB message costs an event-loop turn each and
 * throughput with it, while a few MiB in flight keeps the pipe full and memory bounded.
 */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

interface Emitterish {
  on(event: string, listener: () => void): unknown;
  off(event: string, listener: () => void): unknown;
}

interface RawSocketish extends Emitterish {
  readonly writableLength?: number;
  readonly writableNeedDrain?: boolean;
  readonly destroyed?: boolean;
}

interface EngineShape extends Emitterish {
  readonly writeBuffer?: unknown[];
  readonly readyState?: string;
  readonly transport?: {
    /** engine.io (server): the `ws` WebSocket. */
    readonly socket?: { readonly _socket?: RawSocketish };
    /** engine.io-client (Node): the `ws` WebSocket. */
    readonly ws?: { readonly _socket?: RawSocketish };
  };
}

function once(emitter: Emitterish, events: readonly string[]): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      for (const event of events) emitter.off(event, done);
      resolve();
    };
    for (const event of events) emitter.on(event, done);
  });
}

function rawSocketOf(engine: EngineShape): RawSocketish | undefined {
  const transport = engine.transport;
  return transport?.socket?._socket ?? transport?.ws?._socket;
}

/**
 * Returns a promise that resolves once `engine` (an engine.io socket, either side) can take
 * more data, or `undefined` when it can right away. Resolves too when the link closes (the
 * caller then notices the closed connection).
 */
export function whenWritable(engine: unknown): Promise<void> | undefined {
  if (typeof engine !== 'object' || engine === null) return undefined;
  const e = engine as EngineShape;
  if (e.readyState !== 'open') return undefined;
  if (Array.isArray(e.writeBuffer) && e.writeBuffer.length >= MAX_QUEUED_PACKETS) {
    return once(e, ['drain', 'close']).then(() => whenWritable(engine));
  }
  const raw = rawSocketOf(e);
  if (
    raw !== undefined &&
    raw.writableNeedDrain === true &&
    (raw.writableLength ?? 0) > MAX_BUFFERED_BYTES &&
    raw.destroyed !== true
  ) {
    return once(raw, ['drain', 'close']).then(() => whenWritable(engine));
  }
  return undefined;
}
