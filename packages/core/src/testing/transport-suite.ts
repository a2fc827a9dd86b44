/**
 * The compliance suite every {@link Transport} runs: a raw transport driven through core's
 * upgrader (`listenForConnections`, `dialConnection`). Request/response of tensors of every
 * dtype and of sizes up to 64 MiB, concurrency, ordering, timeouts, aborts and the cancel
 * rule, close semantics, authentication, frame limits (before and after authentication),
 * hostile input and reconnection.
 *
 * Runner-agnostic: pass your runner's `test`/`it`. Assertions use `node:assert`, and every
 * wait is bounded, so a transport that hangs fails the test instead of stalling the run.
 * Tests that need a hook the caller did not give are not registered; the suite says which
 * (through `report`, by default `console.warn`) and returns them in its report.
 *
 * ```ts
 * import { it } from 'vitest';
 * import { transportSuite } from '@dinfer/core/testing';
 * transportSuite(it, { create: (o) => tcpTransport(o), listenAddress: () => '127.0.0.1:0' });
 * ```
 *
 * @module
 */
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import type { Connection } from '../connection/connection.js';
import { type DialConnectionOptions, dialConnection } from '../connection/dial-connection.js';
import { type FrameChannel, PRE_AUTH_MAX_FRAME_BYTES } from '../connection/frame-channel.js';
import {
  type ListenForConnectionsOptions,
  listenForConnections,
} from '../connection/listen-for-connections.js';
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import { tensorsEnvelope, tensorsFromEnvelope } from '../protocol/tensors-message.js';
import type { TensorData } from '../tensor/types.js';
import { type Envelope, isTransport, type Listener, type Transport } from '../transport.js';

/** What the suite asks of a transport factory. */
export interface TransportSuiteFactoryOptions {
  /** Largest frame the transport sends or accepts; `undefined` for its default. */
  maxFrameBytes?: number | undefined;
}

/** Creates the transports under test. */
export interface TransportSuiteFactory {
  /** A new transport instance; the suite makes separate ones for the listening and the dialing side. */
  create(options: TransportSuiteFactoryOptions): Transport | Promise<Transport>;
  /** The address to listen on, e.g. `'127.0.0.1:0'` (the suite dials `listener.address`). */
  listenAddress(): string;
  /** Called after each test, once the suite has closed what it opened. */
  cleanup?(): Promise<void>;
}

/** Switches and hooks for {@link transportSuite}. */
export interface TransportSuiteOptions {
  /** Prefix of every test name. Default `'transport'`. */
  name?: string | undefined;
  /**
   * Options of every dial the suite makes, to run it on pooled (`poolSize`) or reconnecting
   * (`reconnect`) connections. With `reconnect`, the suite no longer expects a dialed
   * connection to close when the listener side closes or the listener stops: only the
   * requests in flight then must fail. Default: a plain dial.
   */
  dial?: Pick<DialConnectionOptions, 'poolSize' | 'reconnect'> | undefined;
  /**
   * Run the test that a reconnecting dialed connection survives the listener restarting on
   * the same address (requests may fail while the link is down, then succeed on the same
   * connection object). Default true; turn off for a transport that cannot listen on the
   * same address twice.
   */
  reconnect?: boolean | undefined;
  /** Largest payload of the size test, in bytes. Default 64 MiB. */
  maxPayloadBytes?: number | undefined;
  /** Frame limit the oversize test gives the listener. Default 1 MiB. */
  smallFrameBytes?: number | undefined;
  /** Bound of every single wait, in ms. Default 10 000. */
  waitMs?: number | undefined;
  /**
   * Transport-specific abuse below the channel: opens a raw, unauthenticated link to
   * `address` and sends bytes that do not decode (`malformed`), or announces a frame above
   * the listener's `maxFrameBytes` (`oversize`). Resolves once the listener has closed that
   * link; rejects if it stays open. The suite then checks that the listener never reported
   * that link as a connection and still serves others. For socket transports,
   * {@link sendRawSocketBytes} with {@link frameCodecGarbage} does it. Without this hook
   * those two tests are not registered (and reported as skipped).
   */
  sendRawGarbage?(address: string, kind: 'malformed' | 'oversize'): Promise<void>;
  /** Where the suite says which tests it skipped. Default `console.warn`. */
  report?: ((message: string) => void) | undefined;
}

/** What {@link transportSuite} registered and skipped. */
export interface TransportSuiteReport {
  /** Names of the registered tests. */
  readonly registered: readonly string[];
  /** Tests not registered, each with the reason. */
  readonly skipped: readonly string[];
}

/** The test registration function of any runner (`it`, `test`). */
export type TransportSuiteTest = (name: string, fn: () => Promise<void>) => void;

const TOKEN = 'transport-suite-token';
const MiB = 1024 * 1024;
const PRE_AUTH_BYTES = PRE_AUTH_MAX_FRAME_BYTES;

class Bounded {
  constructor(readonly waitMs: number) {}

  /** Resolves or rejects like `promise`, or fails the test after the bound. */
  within<T>(promise: Promise<T>, what: string, ms = this.waitMs): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new assert.AssertionError({ message: `timed out after ${ms} ms: ${what}` })),
        ms,
      );
    });
    return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
  }

  /** Asserts `promise` rejects with a DinferError whose code is one of `codes`. */
  async rejects(
    promise: Promise<unknown>,
    codes: DinferErrorCode | DinferErrorCode[],
    what: string,
  ): Promise<DinferError> {
    const expected = Array.isArray(codes) ? codes : [codes];
    let outcome: unknown;
    try {
      await this.within(promise, what);
    } catch (error) {
      outcome = error;
    }
    if (outcome instanceof assert.AssertionError) throw outcome;
    assert.ok(
      outcome !== undefined,
      `${what}: expected a rejection with ${expected.join(' or ')}, but it resolved`,
    );
    assert.ok(isDinferError(outcome), `${what}: expected a DinferError, got ${String(outcome)}`);
    assert.ok(
      expected.includes(outcome.code),
      `${what}: expected ${expected.join(' or ')}, got ${outcome.code}: ${outcome.message}`,
    );
    return outcome;
  }
}

/** What the listening side's channels carried, for tests that look at the wire. */
class Wire {
  readonly sent: Envelope[] = [];
  readonly received: Envelope[] = [];
  readonly closes: Array<DinferError | undefined> = [];
  readonly #closeWaiters: Array<() => void> = [];

  /** `transport`, with every channel its listener accepts recorded here. */
  tap(transport: Transport): Transport {
    return {
      ...transport,
      listen: (address, onChannel, options) =>
        transport.listen(address, (channel) => onChannel(this.#wrap(channel)), options),
    };
  }

  /** The `index`-th close of an accepted channel, waiting for it. */
  async nthClose(index: number, bounded: Bounded): Promise<DinferError | undefined> {
    while (this.closes.length <= index) {
      await bounded.within(
        new Promise<void>((resolve) => this.#closeWaiters.push(resolve)),
        `an accepted channel to close (#${index + 1})`,
      );
    }
    return this.closes[index];
  }

  /** Ids of the rpc envelopes of `kinds` in `envelopes`. */
  static ids(envelopes: readonly Envelope[], kinds: readonly string[]): number[] {
    return envelopes
      .filter((e) => e.header.type === 'rpc' && kinds.includes(String(e.header.kind)))
      .map((e) => Number(e.header.id));
  }

  #wrap(channel: FrameChannel): FrameChannel {
    channel.onClose((error) => {
      this.closes.push(error);
      for (const wake of this.#closeWaiters.splice(0)) wake();
    });
    return {
      get remoteAddress() {
        return channel.remoteAddress;
      },
      send: (envelope) => {
        this.sent.push(envelope);
        return channel.send(envelope);
      },
      onEnvelope: (handler) =>
        channel.onEnvelope((envelope) => {
          this.received.push(envelope);
          handler(envelope);
        }),
      onClose: (handler) => channel.onClose(handler),
      setMaxIncomingFrameBytes: (bytes) => channel.setMaxIncomingFrameBytes(bytes),
      close: (error) => channel.close(error),
    };
  }
}

/** Tracks what one test opens so it can be closed however the test ends. */
class Scope {
  readonly listeners: Listener[] = [];
  readonly connections: Connection[] = [];
  readonly channels: FrameChannel[] = [];
  constructor(
    readonly factory: TransportSuiteFactory,
    readonly bounded: Bounded,
    readonly dialOptions: Pick<DialConnectionOptions, 'poolSize' | 'reconnect'>,
  ) {}

  async transport(options: TransportSuiteFactoryOptions = {}): Promise<Transport> {
    const transport = await this.factory.create(options);
    assert.ok(isTransport(transport), 'factory.create must return a Transport (isTransport)');
    return transport;
  }

  async listen(
    transport: Transport,
    address = this.factory.listenAddress(),
    token: string | undefined = TOKEN,
    options: Pick<ListenForConnectionsOptions, 'handshakeTimeoutMs'> = {},
  ): Promise<Accepted> {
    const accepted = new Accepted();
    const listener = await this.bounded.within(
      listenForConnections(transport, address, {
        ...options,
        token,
        onConnection: (connection) => {
          this.connections.push(connection);
          accepted.push(connection);
        },
      }),
      `listen(${address})`,
    );
    this.listeners.push(listener);
    accepted.listener = listener;
    return accepted;
  }

  async dial(
    transport: Transport,
    address: string,
    options: DialConnectionOptions = {},
  ): Promise<Connection> {
    const connection = await this.bounded.within(
      dialConnection(transport, address, { token: TOKEN, ...this.dialOptions, ...options }),
      `dial(${address})`,
    );
    this.connections.push(connection);
    return connection;
  }

  /** A raw channel of `transport` to `address`, not authenticated. */
  async rawChannel(transport: Transport, address: string): Promise<FrameChannel> {
    const channel = await this.bounded.within(transport.dial(address), `raw dial(${address})`);
    this.channels.push(channel);
    return channel;
  }

  async close(): Promise<void> {
    for (const channel of this.channels) channel.close();
    const all = [
      ...this.connections.map((c) => c.close().catch(() => {})),
      ...this.listeners.map((l) => l.close().catch(() => {})),
    ];
    await this.bounded.within(Promise.all(all), 'closing connections and listeners').catch(() => {});
    await this.factory.cleanup?.();
  }
}

/** Connections a listener accepted, in order. */
class Accepted {
  listener!: Listener;
  readonly all: Connection[] = [];
  readonly #waiters: Array<() => void> = [];
  readonly #observers: Array<(connection: Connection) => void> = [];

  push(connection: Connection): void {
    this.all.push(connection);
    for (const observe of this.#observers) observe(connection);
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Calls `observe` for every connection accepted so far and from now on. */
  each(observe: (connection: Connection) => void): void {
    this.#observers.push(observe);
    for (const connection of this.all) observe(connection);
  }

  /** The `index`-th accepted connection, waiting for it. */
  async nth(index: number, bounded: Bounded): Promise<Connection> {
    while (this.all.length <= index) {
      await bounded.within(
        new Promise<void>((resolve) => this.#waiters.push(resolve)),
        `the listener to report connection #${index + 1}`,
      );
    }
    return this.all[index]!;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `condition` until it holds, within the suite's bound. */
async function waitUntil(condition: () => boolean, bounded: Bounded, what: string): Promise<void> {
  const deadline = Date.now() + bounded.waitMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${bounded.waitMs} ms: ${what}`);
    await sleep(5);
  }
}

function randomTensor(dtype: TensorData['dtype'], shape: number[]): TensorData {
  const n = shape.reduce((a, b) => a * b, 1);
  switch (dtype) {
    case 'float32': {
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = Math.fround((Math.random() - 0.5) * 1e6);
      return { dtype, shape, data };
    }
    case 'int32':
      return { dtype, shape, data: randomFillSync(new Int32Array(n)) };
    case 'uint8':
      return { dtype, shape, data: randomFillSync(new Uint8Array(n)) };
    case 'bool':
      return { dtype, shape, data: randomFillSync(new Uint8Array(n)).map((v) => v & 1) };
  }
}

function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

function assertSameTensors(
  actual: readonly TensorData[],
  expected: readonly TensorData[],
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: tensor count`);
  expected.forEach((e, i) => {
    const a = actual[i]!;
    assert.equal(a.dtype, e.dtype, `${what}: dtype of tensor ${i}`);
    assert.deepEqual([...a.shape], [...e.shape], `${what}: shape of tensor ${i}`);
    assert.ok(sameBytes(a.data, e.data), `${what}: bytes of tensor ${i} differ`);
  });
}

const LIMITS = (maxBytes: number) => ({ maxBytes });

/** Replies to every `tensors` request with the same tensors (decoded, then re-encoded). */
function echoTensors(maxBytes: number) {
  return async (request: Envelope): Promise<Envelope> => {
    const { tag, tensors } = tensorsFromEnvelope(request, LIMITS(maxBytes));
    return tensorsEnvelope(tensors, { tag });
  };
}

/**
 * Registers the transport compliance tests with `test`. See {@link TransportSuiteOptions}
 * for what can be switched off; the rest every transport must pass. Returns what it
 * registered and what it skipped (and says so through `options.report`).
 */
export function transportSuite(
  test: TransportSuiteTest,
  factory: TransportSuiteFactory,
  options: TransportSuiteOptions = {},
): TransportSuiteReport {
  const prefix = options.name ?? 'transport';
  const bounded = new Bounded(options.waitMs ?? 10_000);
  const maxPayload = options.maxPayloadBytes ?? 64 * MiB;
  const smallFrame = options.smallFrameBytes ?? MiB;
  const dialOptions = options.dial ?? {};
  const reconnects = dialOptions.reconnect !== undefined && dialOptions.reconnect !== false;
  const registered: string[] = [];
  const skipped: string[] = [];

  const define = (name: string, body: (scope: Scope) => Promise<void>) => {
    const full = `${prefix}: ${name}`;
    registered.push(full);
    test(full, async () => {
      const scope = new Scope(factory, bounded, dialOptions);
      try {
        await body(scope);
      } finally {
        await scope.close();
      }
    });
  };
  const skip = (name: string, reason: string) => skipped.push(`${prefix}: ${name} (${reason})`);

  /**
   * A listener and a dialed connection, both sides authenticated with the suite token. With
   * `wire`, the listener's channels are recorded there.
   */
  const pair = async (scope: Scope, frame?: number, wire?: Wire) => {
    const opts = frame === undefined ? {} : { maxFrameBytes: frame };
    const server = await scope.transport(opts);
    const client = await scope.transport(opts);
    const accepted = await scope.listen(wire === undefined ? server : wire.tap(server));
    const dialer = await scope.dial(client, accepted.listener.address);
    const remote = await accepted.nth(0, bounded);
    return { server, client, accepted, dialer, remote };
  };

  define('is a branded Transport with capabilities', async (scope) => {
    const transport = await scope.transport();
    assert.equal(typeof transport.name, 'string');
    assert.ok(transport.name.length > 0, 'name must not be empty');
    assert.ok(transport.capabilities.maxFrameBytes > 0, 'capabilities.maxFrameBytes must be positive');
    assert.equal(typeof transport.listen, 'function');
    assert.equal(typeof transport.dial, 'function');
  });

  define('answers requests carrying tensors of every dtype, both directions', async (scope) => {
    const { dialer, remote } = await pair(scope);
    assert.ok(dialer.isOpen && remote.isOpen, 'both ends open');
    assert.equal(typeof dialer.remoteAddress, 'string');
    remote.onRequest(echoTensors(MiB));
    dialer.onRequest(echoTensors(MiB));
    const tensors: TensorData[] = [];
    for (const dtype of ['float32', 'int32', 'bool', 'uint8'] as const) {
      for (const shape of [[], [0], [5], [2, 3, 4], [1, 7, 0]]) tensors.push(randomTensor(dtype, shape));
    }
    const reply = await bounded.within(
      dialer.request(tensorsEnvelope(tensors, { tag: 'all' })),
      'dialer request',
    );
    const got = tensorsFromEnvelope(reply, LIMITS(MiB));
    assert.equal(got.tag, 'all');
    assertSameTensors(got.tensors, tensors, 'dialer -> listener');
    const back = await bounded.within(remote.request(tensorsEnvelope(tensors)), 'listener request');
    assertSameTensors(tensorsFromEnvelope(back, LIMITS(MiB)).tensors, tensors, 'listener -> dialer');
  });

  define(`moves payloads from 0 bytes to ${maxPayload} bytes intact`, async (scope) => {
    const { dialer, remote } = await pair(scope, maxPayload + MiB);
    remote.onRequest(echoTensors(maxPayload));
    const sizes = [0, 1, 7, 1023, 64 * 1024 + 3, MiB, 8 * MiB + 5, maxPayload].filter((s) => s <= maxPayload);
    for (const size of [...new Set(sizes)]) {
      const tensor = randomTensor('uint8', [size]);
      const reply = await bounded.within(
        dialer.request(tensorsEnvelope([tensor]), { timeoutMs: bounded.waitMs * 3 }),
        `echo of ${size} bytes`,
        bounded.waitMs * 3,
      );
      assertSameTensors(tensorsFromEnvelope(reply, LIMITS(maxPayload)).tensors, [tensor], `${size} bytes`);
    }
  });

  define('matches 100 concurrent requests to their replies', async (scope) => {
    const { dialer, remote } = await pair(scope);
    remote.onRequest(async (request) => {
      const { tag, tensors } = tensorsFromEnvelope(request, LIMITS(MiB));
      await sleep(Math.floor(Math.random() * 10));
      const data = (tensors[0]!.data as Int32Array).map((v) => v * 3 + 1);
      return tensorsEnvelope([{ dtype: 'int32', shape: [data.length], data }], { tag: `reply-${tag}` });
    });
    const replies = await bounded.within(
      Promise.all(
        Array.from({ length: 100 }, (_, i) => {
          const data = Int32Array.from({ length: i + 1 }, (_, k) => i * 1000 + k);
          return dialer.request(
            tensorsEnvelope([{ dtype: 'int32', shape: [i + 1], data }], { tag: String(i) }),
          );
        }),
      ),
      '100 concurrent requests',
    );
    replies.forEach((reply, i) => {
      const { tag, tensors } = tensorsFromEnvelope(reply, LIMITS(MiB));
      assert.equal(tag, `reply-${i}`, `reply ${i} matched to its request`);
      const expected = Int32Array.from({ length: i + 1 }, (_, k) => (i * 1000 + k) * 3 + 1);
      assert.deepEqual([...(tensors[0]!.data as Int32Array)], [...expected]);
    });
  });

  define('delivers 1000 one-way messages in order (and messages the other way)', async (scope) => {
    const { dialer, remote } = await pair(scope);
    const received: number[] = [];
    const all = new Promise<void>((resolve) => {
      remote.onMessage((message, connection) => {
        assert.equal(connection, remote);
        const { tensors } = tensorsFromEnvelope(message, LIMITS(MiB));
        received.push((tensors[0]!.data as Int32Array)[0]!);
        if (received.length === 1000) resolve();
      });
    });
    for (let i = 0; i < 1000; i++) {
      await bounded.within(
        dialer.send(tensorsEnvelope([{ dtype: 'int32', shape: [1], data: Int32Array.of(i) }])),
        `send #${i}`,
      );
    }
    await bounded.within(all, '1000 messages to arrive');
    assert.deepEqual(
      received,
      Array.from({ length: 1000 }, (_, i) => i),
    );
    const back: number[] = [];
    const tenBack = new Promise<void>((resolve) => {
      dialer.onMessage((message) => {
        back.push((tensorsFromEnvelope(message, LIMITS(MiB)).tensors[0]!.data as Int32Array)[0]!);
        if (back.length === 10) resolve();
      });
    });
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        remote.send(tensorsEnvelope([{ dtype: 'int32', shape: [1], data: Int32Array.of(i) }])),
      ),
    );
    await bounded.within(tenBack, 'messages from the listener side');
    assert.deepEqual(
      back,
      Array.from({ length: 10 }, (_, i) => i),
    );
  });

  define('reports a throwing handler as DINFER_ERR_REMOTE with the remote code', async (scope) => {
    const { dialer, remote } = await pair(scope);
    remote.onRequest(async () => {
      throw new DinferError(DinferErrorCode.UNKNOWN_MODEL, 'model m is unknown');
    });
    const error = await bounded.rejects(
      dialer.request(tensorsEnvelope([])),
      DinferErrorCode.REMOTE,
      'failing request',
    );
    assert.equal(error.details.remoteCode, DinferErrorCode.UNKNOWN_MODEL);
    assert.ok(dialer.isOpen, 'a remote error leaves the connection open');
  });

  define('times out a request with DINFER_ERR_TIMEOUT and keeps the connection usable', async (scope) => {
    const { dialer, remote } = await pair(scope);
    let cancelled: Promise<void> | undefined;
    remote.onRequest((request, context) => {
      if (request.header.type === 'ping')
        return Promise.resolve({ header: { type: 'pong', sentAt: 0 }, attachments: [] });
      cancelled = new Promise<void>((resolve) => context.signal.addEventListener('abort', () => resolve()));
      return new Promise<Envelope>(() => {});
    });
    const started = Date.now();
    await bounded.rejects(
      dialer.request(tensorsEnvelope([]), { timeoutMs: 200 }),
      DinferErrorCode.TIMEOUT,
      'slow request',
    );
    assert.ok(Date.now() - started >= 190, 'the timeout fired early');
    assert.ok(cancelled !== undefined, 'the handler was called');
    await bounded.within(cancelled, "the handler's signal to abort after the requester timed out");
    const pong = await bounded.within(
      dialer.request({ header: { type: 'ping', sentAt: 0 }, attachments: [] }),
      'request after a timeout',
    );
    assert.equal(pong.header.type, 'pong');
  });

  define('aborts requests with DINFER_ERR_ABORTED', async (scope) => {
    const { dialer, remote } = await pair(scope);
    let cancelled: Promise<void> | undefined;
    let called!: () => void;
    const handlerCalled = new Promise<void>((resolve) => {
      called = resolve;
    });
    remote.onRequest((_request, context) => {
      cancelled = new Promise<void>((resolve) => context.signal.addEventListener('abort', () => resolve()));
      called();
      return new Promise<Envelope>(() => {});
    });
    const controller = new AbortController();
    const pending = dialer.request(tensorsEnvelope([]), { signal: controller.signal, timeoutMs: 60_000 });
    await bounded.within(handlerCalled, 'the request to reach the handler');
    controller.abort();
    await bounded.rejects(pending, DinferErrorCode.ABORTED, 'aborted request');
    await bounded.within(cancelled!, "the handler's signal to abort after the requester aborted");
    await bounded.rejects(
      dialer.request(tensorsEnvelope([]), { signal: controller.signal }),
      DinferErrorCode.ABORTED,
      'pre-aborted request',
    );
    assert.ok(dialer.isOpen);
  });

  for (const closer of ['dialer', 'listener'] as const) {
    define(
      `fails pending requests on both sides with TRANSPORT_CLOSED when the ${closer} closes`,
      async (scope) => {
        const { dialer, remote } = await pair(scope);
        let arrived = 0;
        const hang = () => {
          arrived += 1;
          return new Promise<Envelope>(() => {});
        };
        remote.onRequest(hang);
        dialer.onRequest(hang);
        const pending = [
          ...Array.from({ length: 5 }, () => dialer.request(tensorsEnvelope([]), { timeoutMs: 60_000 })),
          ...Array.from({ length: 5 }, () => remote.request(tensorsEnvelope([]), { timeoutMs: 60_000 })),
        ];
        for (const p of pending) p.catch(() => {});
        const deadline = Date.now() + bounded.waitMs;
        while (arrived < 10 && Date.now() < deadline) await sleep(5);
        assert.equal(arrived, 10, 'all requests reached their handlers');
        await bounded.within((closer === 'dialer' ? dialer : remote).close(), `${closer} close()`);
        for (const [i, p] of pending.entries()) {
          await bounded.rejects(p, DinferErrorCode.TRANSPORT_CLOSED, `pending request #${i}`);
        }
        await bounded.within(remote.closed, 'listener-side closed');
        assert.equal(remote.isOpen, false);
        await bounded.rejects(
          remote.send(tensorsEnvelope([])),
          DinferErrorCode.TRANSPORT_CLOSED,
          'send after close',
        );
        // A reconnecting dialer treats a close by the listener side as a dropped link and
        // redials: only its in-flight requests fail. Otherwise the dialed side closes too.
        if (closer === 'dialer' || !reconnects) {
          await bounded.within(dialer.closed, 'dialer.closed');
          assert.equal(dialer.isOpen, false);
          await bounded.rejects(
            dialer.request(tensorsEnvelope([])),
            DinferErrorCode.TRANSPORT_CLOSED,
            'request after close',
          );
        }
        await bounded.within(dialer.close(), 'a second close()');
      },
    );
  }

  define('closes accepted connections when the listener closes', async (scope) => {
    const { server, client, dialer, remote, accepted } = await pair(scope);
    remote.onRequest(() => new Promise<Envelope>(() => {}));
    const pending = dialer.request(tensorsEnvelope([]), { timeoutMs: 60_000 });
    pending.catch(() => {});
    await sleep(20);
    await bounded.within(accepted.listener.close(), 'listener.close()');
    await bounded.within(remote.closed, 'accepted connection to close');
    if (!reconnects) {
      await bounded.rejects(
        pending,
        DinferErrorCode.TRANSPORT_CLOSED,
        'pending request after listener.close()',
      );
      await bounded.within(dialer.closed, 'dialed connection to close');
      await bounded.rejects(
        dialConnection(client, accepted.listener.address, {
          token: TOKEN,
          handshakeTimeoutMs: bounded.waitMs / 2,
        }),
        [DinferErrorCode.TRANSPORT_CONNECT, DinferErrorCode.TIMEOUT],
        'dial after listener.close()',
      );
    }
    assert.ok(isTransport(server));
  });

  define('authenticates dialers holding the token', async (scope) => {
    const { accepted, dialer, remote } = await pair(scope);
    remote.onRequest(async () => ({ header: { type: 'pong', sentAt: 1 }, attachments: [] }));
    const reply = await bounded.within(
      dialer.request({ header: { type: 'ping', sentAt: 1 }, attachments: [] }),
      'ping',
    );
    assert.equal(reply.header.type, 'pong');
    assert.equal(accepted.all.length, 1, 'exactly one connection reported');
  });

  for (const [label, token] of [
    ['a wrong token', 'not-the-token'],
    ['no token', undefined],
  ] as const) {
    define(`rejects a dialer with ${label} (AUTH_FAILED, never reported to onConnection)`, async (scope) => {
      const server = await scope.transport();
      const intruder = await scope.transport();
      const accepted = await scope.listen(server);
      await bounded.rejects(
        dialConnection(intruder, accepted.listener.address, { ...dialOptions, token }),
        DinferErrorCode.AUTH_FAILED,
        `dial with ${label}`,
      );
      await sleep(50);
      assert.equal(accepted.all.length, 0, 'onConnection must not see an unauthenticated dialer');
      const friend = await scope.transport();
      await scope.dial(friend, accepted.listener.address);
      await accepted.nth(0, bounded);
    });
  }

  define(
    'closes a connection that receives an oversize frame with FRAME_TOO_LARGE; others keep working',
    async (scope) => {
      const server = await scope.transport({ maxFrameBytes: smallFrame });
      const big = await scope.transport({ maxFrameBytes: smallFrame * 8 });
      const accepted = await scope.listen(server);
      const offender = await scope.dial(big, accepted.listener.address);
      const offenderRemote = await accepted.nth(0, bounded);
      const bystander = await scope.dial(big, accepted.listener.address);
      const bystanderRemote = await accepted.nth(1, bounded);
      offenderRemote.onRequest(echoTensors(smallFrame * 8));
      bystanderRemote.onRequest(echoTensors(smallFrame * 8));
      const tensor = randomTensor('uint8', [smallFrame * 2]);
      await bounded.rejects(
        offender.request(tensorsEnvelope([tensor]), { timeoutMs: 60_000 }),
        DinferErrorCode.TRANSPORT_CLOSED,
        'request whose frame exceeds the listener limit',
      );
      const reason = await bounded.within(offenderRemote.closed, 'the receiving side to close');
      assert.equal(
        reason?.code,
        DinferErrorCode.FRAME_TOO_LARGE,
        `closed with ${reason?.code}: ${reason?.message}`,
      );
      const small = randomTensor('float32', [1000]);
      const reply = await bounded.within(
        bystander.request(tensorsEnvelope([small])),
        'request on another connection',
      );
      assertSameTensors(tensorsFromEnvelope(reply, LIMITS(MiB)).tensors, [small], 'bystander');
    },
  );

  define('refuses to send a frame above its own limit (FRAME_TOO_LARGE) and stays open', async (scope) => {
    const { dialer, remote } = await pair(scope, smallFrame);
    remote.onRequest(echoTensors(smallFrame));
    const tooBig = tensorsEnvelope([randomTensor('uint8', [smallFrame * 2])]);
    await bounded.rejects(dialer.request(tooBig), DinferErrorCode.FRAME_TOO_LARGE, 'oversize request');
    await bounded.rejects(dialer.send(tooBig), DinferErrorCode.FRAME_TOO_LARGE, 'oversize message');
    const fits = randomTensor('uint8', [1000]);
    const reply = await bounded.within(dialer.request(tensorsEnvelope([fits])), 'request after the refusal');
    assertSameTensors(tensorsFromEnvelope(reply, LIMITS(MiB)).tensors, [fits], 'after refusal');
  });

  const garbage = options.sendRawGarbage;
  for (const kind of ['malformed', 'oversize'] as const) {
    const name = `drops a raw link sending a ${kind} frame; other connections keep working`;
    if (garbage === undefined) skip(name, 'no sendRawGarbage hook given');
    else
      define(name, async (scope) => {
        const server = await scope.transport({ maxFrameBytes: smallFrame });
        const client = await scope.transport({ maxFrameBytes: smallFrame });
        const accepted = await scope.listen(server);
        const good = await scope.dial(client, accepted.listener.address);
        const goodRemote = await accepted.nth(0, bounded);
        goodRemote.onRequest(echoTensors(smallFrame));
        await bounded.within(
          garbage(accepted.listener.address, kind),
          `the listener to drop the ${kind} link`,
        );
        const tensor = randomTensor('int32', [100]);
        const reply = await bounded.within(
          good.request(tensorsEnvelope([tensor])),
          'request on the good connection',
        );
        assertSameTensors(tensorsFromEnvelope(reply, LIMITS(MiB)).tensors, [tensor], 'good connection');
        assert.equal(accepted.all.length, 1, `the ${kind} link must never be reported as a connection`);
        const again = await scope.dial(client, accepted.listener.address);
        await accepted.nth(1, bounded);
        assert.ok(again.isOpen, 'the listener still accepts new connections');
      });
  }

  define(
    'refuses frames above 64 KiB before authentication (a raw channel); others keep working',
    async (scope) => {
      const wire = new Wire();
      const { client, accepted, dialer, remote } = await pair(scope, undefined, wire);
      remote.onRequest(echoTensors(MiB));
      const raw = await scope.rawChannel(client, accepted.listener.address);
      const closed = new Promise<DinferError | undefined>((resolve) => raw.onClose(resolve));
      raw.onEnvelope(() => {});
      const before = wire.closes.length;
      await raw
        .send({
          header: { type: 'auth', padding: 'x' },
          attachments: [new Uint8Array(PRE_AUTH_BYTES + 1024)],
        })
        .catch(() => {});
      await bounded.within(closed, 'the listener to drop the unauthenticated sender');
      const reason = await wire.nthClose(before, bounded);
      assert.equal(
        reason?.code,
        DinferErrorCode.FRAME_TOO_LARGE,
        `the listener's channel closed with ${reason?.code}: ${reason?.message}`,
      );
      assert.equal(accepted.all.length, 1, 'the raw channel must never be reported as a connection');
      const tensor = randomTensor('uint8', [PRE_AUTH_BYTES * 4]);
      const reply = await bounded.within(
        dialer.request(tensorsEnvelope([tensor])),
        'large request after auth',
      );
      assertSameTensors(
        tensorsFromEnvelope(reply, LIMITS(MiB)).tensors,
        [tensor],
        'authenticated connection',
      );
    },
  );

  define('delivers a large message the listener sends the moment it accepts a connection', async (scope) => {
    const server = await scope.transport();
    const client = await scope.transport();
    const tensor = randomTensor('uint8', [PRE_AUTH_BYTES * 4]);
    const address = factory.listenAddress();
    const listener = await bounded.within(
      listenForConnections(server, address, {
        token: TOKEN,
        onConnection: (connection) => {
          scope.connections.push(connection);
          void connection.send(tensorsEnvelope([tensor])).catch(() => {});
        },
      }),
      `listen(${address})`,
    );
    scope.listeners.push(listener);
    const dialer = await scope.dial(client, listener.address);
    const message = await bounded.within(
      new Promise<Envelope>((resolve) => dialer.onMessage(resolve)),
      'the message sent right after the handshake',
    );
    assertSameTensors(tensorsFromEnvelope(message, LIMITS(MiB)).tensors, [tensor], 'early message');
    assert.ok(dialer.isOpen, 'the dialer stays open');
  });

  define('closes a channel that does not authenticate within handshakeTimeoutMs', async (scope) => {
    const server = await scope.transport();
    const client = await scope.transport();
    const accepted = await scope.listen(server, undefined, TOKEN, { handshakeTimeoutMs: 200 });
    const raw = await scope.rawChannel(client, accepted.listener.address);
    const started = Date.now();
    const closed = new Promise<DinferError | undefined>((resolve) => raw.onClose(resolve));
    raw.onEnvelope(() => {});
    await bounded.within(closed, 'the listener to close the silent channel');
    assert.ok(Date.now() - started >= 150, 'the channel was closed before the handshake timeout');
    assert.equal(accepted.all.length, 0, 'a silent channel must never be reported as a connection');
  });

  define('answers a cancelled request nothing further (running or still queued)', async (scope) => {
    const wire = new Wire();
    const { dialer, remote } = await pair(scope, undefined, wire);
    // Queued: no handler yet when the request and its cancel arrive.
    const early = new AbortController();
    const queued = dialer.request({ header: { type: 'queued' }, attachments: [] }, { signal: early.signal });
    await waitUntil(
      () => Wire.ids(wire.received, ['request']).length === 1,
      bounded,
      'the queued request to arrive',
    );
    early.abort();
    await bounded.rejects(queued, DinferErrorCode.ABORTED, 'queued request');
    await waitUntil(() => Wire.ids(wire.received, ['cancel']).length === 1, bounded, 'its cancel to arrive');
    const [queuedId] = Wire.ids(wire.received, ['request']);
    const seen: string[] = [];
    let release!: () => void;
    const handlerAborted = new Promise<void>((resolve) => {
      release = resolve;
    });
    remote.onRequest((request, context) => {
      seen.push(request.header.type);
      if (request.header.type === 'ping')
        return Promise.resolve({ header: { type: 'pong' }, attachments: [] });
      // Answers once cancelled: the reply must not go out.
      return new Promise<Envelope>((resolve) =>
        context.signal.addEventListener('abort', () => {
          release();
          resolve({ header: { type: 'too-late' }, attachments: [] });
        }),
      );
    });
    // Running: the handler has it when the requester gives up.
    const late = new AbortController();
    const running = dialer.request({ header: { type: 'running' }, attachments: [] }, { signal: late.signal });
    await waitUntil(() => seen.includes('running'), bounded, 'the running request to reach its handler');
    late.abort();
    await bounded.rejects(running, DinferErrorCode.ABORTED, 'running request');
    await bounded.within(handlerAborted, "the handler's signal to abort");
    // A later request on the same connection is answered, after anything the cancelled ones could have sent.
    const pong = await bounded.within(dialer.request({ header: { type: 'ping' }, attachments: [] }), 'ping');
    assert.equal(pong.header.type, 'pong');
    assert.ok(!seen.includes('queued'), 'a request cancelled while queued must not reach the handler');
    const runningId = Wire.ids(wire.received, ['request'])[1];
    const answered = Wire.ids(wire.sent, ['response', 'error']);
    assert.ok(!answered.includes(queuedId!), `the queued request ${queuedId} was answered`);
    assert.ok(!answered.includes(runningId!), `the running request ${runningId} was answered`);
  });

  if (options.reconnect === false) {
    skip(
      'reconnects a dialed connection after the listener restarts on the same address',
      'reconnect: false',
    );
  } else {
    define(
      'reconnects a dialed connection after the listener restarts on the same address',
      async (scope) => {
        const server = await scope.transport();
        const client = await scope.transport();
        const serve = (accepted: Accepted) =>
          accepted.each((connection) =>
            connection.onRequest(async () => ({ header: { type: 'pong', sentAt: 0 }, attachments: [] })),
          );
        const first = await scope.listen(server);
        serve(first);
        const address = first.listener.address;
        const dialer = await scope.dial(client, address, {
          reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
        });
        const ping = { header: { type: 'ping', sentAt: 0 }, attachments: [] };
        await bounded.within(dialer.request(ping), 'request before the restart');
        await bounded.within(first.listener.close(), 'listener.close()');
        const second = await scope.listen(server, address);
        serve(second);
        const deadline = Date.now() + bounded.waitMs;
        let lastError: unknown;
        for (;;) {
          try {
            const reply = await dialer.request(ping, { timeoutMs: 500 });
            assert.equal(reply.header.type, 'pong');
            break;
          } catch (error) {
            lastError = error;
            if (Date.now() > deadline) {
              assert.fail(
                `the dialed connection did not recover within ${bounded.waitMs} ms: ${String(lastError)}`,
              );
            }
            await sleep(100);
          }
        }
        assert.ok(dialer.isOpen, 'the dialed connection stays open across the restart');
      },
    );
  }

  if (skipped.length > 0) {
    (options.report ?? console.warn)(
      `transportSuite "${prefix}" skipped ${skipped.length} test(s):\n  ${skipped.join('\n  ')}`,
    );
  }
  return { registered, skipped };
}
