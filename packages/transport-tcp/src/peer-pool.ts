/**
 * Dialed connections that outlive their sockets: a pool of `size` authenticated links to one
 * peer address, spread round-robin, redialed with backoff when they drop (if enabled), and
 * handed out as {@link Connection} handles.
 *
 * Semantics (also in the README):
 * - A request picks the next open link round-robin. While no link is open (all are
 *   redialing) it waits for one, within its own timeout, then runs with the time left.
 * - Requests in flight on a link when it drops fail with `DINFER_ERR_TRANSPORT_CLOSED`; the
 *   caller decides whether to retry. Later requests go to the redialed link.
 * - Without reconnect, the pool closes as soon as any of its links closes.
 * - With reconnect, a link is redialed when it drops (socket error or EOF without goodbye)
 *   or when the listener shuts down (`listener.close()`); a connection the peer closes on
 *   purpose (`close()` without a reason) is not redialed and closes the pool. The pool also
 *   closes when a redial fails permanently (`AUTH_FAILED`, `PROTOCOL_VERSION`) or
 *   `maxAttempts` redials in a row fail (`TRANSPORT_CONNECT`).
 * - Request and message handlers belong to the pool: the last one installed through any
 *   handle serves every link, and `context.connection` is that handle.
 * - Closing a handle fails only its own pending requests; closing the last handle closes
 *   the pool and its sockets.
 *
 * @module
 */
import {
  type Connection,
  DinferError,
  DinferErrorCode,
  type Envelope,
  isDinferError,
  type MessageHandler,
  type RequestHandler,
  type RequestOptions,
} from '@dinfer/core';
import { backoffDelay, type ReconnectOptions } from './backoff.js';
import type { ResolvedTcpOptions } from './options.js';

/** Opens one authenticated link; the signal aborts a dial in progress. */
export type LinkDialer = (signal: AbortSignal) => Promise<Connection>;

interface Waiter {
  readonly resolve: (connection: Connection) => void;
  readonly reject: (error: DinferError) => void;
}

interface Installed<H> {
  readonly handler: H;
  readonly owner: Connection;
}

const LABELS = { transport: 'tcp' };
let handleCounter = 0;

/** One peer address: its links, the handles on them, and the redial loops. */
export class PeerPool {
  readonly address: string;
  /** Called once when the pool has closed. */
  onClosed: (() => void) | undefined;
  readonly #size: number;
  readonly #reconnect: ReconnectOptions | undefined;
  readonly #dial: LinkDialer;
  readonly #options: ResolvedTcpOptions;
  readonly #links: Array<Connection | undefined>;
  readonly #handles = new Set<PooledConnection>();
  readonly #waiters = new Set<Waiter>();
  readonly #stop = new AbortController();
  #next = 0;
  #closed = false;
  #closeError: DinferError | undefined;
  #requestHandler: Installed<RequestHandler> | undefined;
  #messageHandler: Installed<MessageHandler> | undefined;

  constructor(address: string, size: number, dial: LinkDialer, options: ResolvedTcpOptions) {
    this.address = address;
    this.#size = size;
    this.#dial = dial;
    this.#options = options;
    this.#reconnect = options.reconnect;
    this.#links = new Array<Connection | undefined>(size).fill(undefined);
  }

  /** True once the pool has closed for good. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** The default request timeout handles apply. */
  get defaultTimeoutMs(): number {
    return this.#options.defaultRequestTimeoutMs;
  }

  /** Dials every link; fails (closing what did connect) if any first dial fails. */
  async start(signal?: AbortSignal): Promise<void> {
    const onAbort = (): void => this.#stop.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const results = await Promise.allSettled(this.#links.map(() => this.#dial(this.#stop.signal)));
      const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failure !== undefined) {
        await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
        this.#closed = true;
        throw failure.reason;
      }
      results.forEach((r, i) => {
        this.#attach(i, (r as PromiseFulfilledResult<Connection>).value);
      });
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** A new handle on this pool. */
  acquire(): PooledConnection {
    const handle = new PooledConnection(this);
    this.#handles.add(handle);
    return handle;
  }

  /** Drops a handle; the last one closes the pool. */
  async release(handle: PooledConnection, reason?: DinferError): Promise<void> {
    this.#handles.delete(handle);
    if (this.#handles.size === 0) await this.close(reason);
  }

  /** The next open link, round-robin, if any. */
  pick(): Connection | undefined {
    for (let k = 0; k < this.#size; k++) {
      const i = (this.#next + k) % this.#size;
      const link = this.#links[i];
      if (link?.isOpen) {
        this.#next = i + 1;
        return link;
      }
    }
    return undefined;
  }

  /** Resolves with an open link, waiting for a redial for at most `timeoutMs`. */
  waitForLink(timeoutMs: number, signal: AbortSignal | undefined): Promise<Connection> {
    const ready = this.pick();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.#closed) return Promise.reject(this.#closedError());
    return new Promise<Connection>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (): void => {
        this.#waiters.delete(waiter);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        resolve: (connection) => {
          done();
          resolve(connection);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      const onAbort = (): void =>
        waiter.reject(
          new DinferError(DinferErrorCode.ABORTED, 'aborted while waiting for a reconnect', {
            cause: signal?.reason,
          }),
        );
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(
          () =>
            waiter.reject(
              new DinferError(
                DinferErrorCode.TIMEOUT,
                `no connection to ${this.address} within ${timeoutMs} ms (reconnecting)`,
                {
                  details: { address: this.address, timeoutMs },
                },
              ),
            ),
          timeoutMs,
        );
      }
      this.#waiters.add(waiter);
    });
  }

  /** Installs the request handler on every link, now and after each redial. */
  setRequestHandler(handler: RequestHandler, owner: Connection): void {
    this.#requestHandler = { handler, owner };
    for (const link of this.#links) if (link !== undefined) this.#installRequestHandler(link);
  }

  /** Installs the message handler on every link, now and after each redial. */
  setMessageHandler(handler: MessageHandler, owner: Connection): void {
    this.#messageHandler = { handler, owner };
    for (const link of this.#links) if (link !== undefined) this.#installMessageHandler(link);
  }

  /** Closes every link and handle; stops redialing. Idempotent. */
  async close(error?: DinferError): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeError = error;
    this.#stop.abort(error);
    const closedError = this.#closedError();
    for (const waiter of [...this.#waiters]) waiter.reject(closedError);
    for (const handle of [...this.#handles]) handle.finish(error);
    this.#handles.clear();
    const links = this.#links.filter((link): link is Connection => link !== undefined);
    this.#links.fill(undefined);
    await Promise.all(links.map((link) => link.close(error)));
    this.onClosed?.();
  }

  #closedError(): DinferError {
    const cause = this.#closeError;
    return new DinferError(
      DinferErrorCode.TRANSPORT_CLOSED,
      `connection to ${this.address} is closed${cause === undefined ? '' : `: ${cause.message}`}`,
      cause === undefined ? {} : { cause },
    );
  }

  #installRequestHandler(link: Connection): void {
    const installed = this.#requestHandler;
    if (installed === undefined) return;
    link.onRequest((request, context) =>
      installed.handler(request, { signal: context.signal, connection: installed.owner }),
    );
  }

  #installMessageHandler(link: Connection): void {
    const installed = this.#messageHandler;
    if (installed === undefined) return;
    link.onMessage((message) => installed.handler(message, installed.owner));
  }

  #attach(index: number, link: Connection): void {
    this.#links[index] = link;
    this.#installRequestHandler(link);
    this.#installMessageHandler(link);
    void link.closed.then((error) => this.#lost(index, link, error));
    for (const waiter of [...this.#waiters]) {
      const ready = this.pick();
      if (ready === undefined) break;
      waiter.resolve(ready);
    }
  }

  #lost(index: number, link: Connection, error: DinferError | undefined): void {
    if (this.#links[index] !== link || this.#closed) return;
    this.#links[index] = undefined;
    if (this.#reconnect === undefined || error === undefined) {
      // No reconnect, or the peer hung up on purpose (a clean close): the pool is done.
      void this.close(error);
      return;
    }
    this.#options.logger.warn(
      { address: this.address, link: index, reason: error?.code },
      'link dropped, redialing',
    );
    void this.#redial(index, this.#reconnect);
  }

  async #redial(index: number, reconnect: ReconnectOptions): Promise<void> {
    const stop = this.#stop.signal;
    let lastError: unknown;
    for (let attempt = 1; ; attempt++) {
      if (reconnect.maxAttempts !== undefined && attempt > reconnect.maxAttempts) {
        await this.close(
          new DinferError(
            DinferErrorCode.TRANSPORT_CONNECT,
            `gave up reconnecting to ${this.address} after ${reconnect.maxAttempts} attempts`,
            { cause: lastError, details: { address: this.address, attempts: reconnect.maxAttempts } },
          ),
        );
        return;
      }
      if (!(await sleep(backoffDelay(reconnect, attempt), stop))) return;
      try {
        const link = await this.#dial(stop);
        if (this.#closed) {
          await link.close();
          return;
        }
        this.#options.metrics.increment('dinfer_transport_reconnects_total', LABELS);
        this.#options.logger.info({ address: this.address, link: index, attempt }, 'reconnected');
        this.#attach(index, link);
        return;
      } catch (error) {
        if (this.#closed) return;
        if (
          isDinferError(error, DinferErrorCode.AUTH_FAILED) ||
          isDinferError(error, DinferErrorCode.PROTOCOL_VERSION)
        ) {
          await this.close(error);
          return;
        }
        lastError = error;
        this.#options.logger.debug(
          { address: this.address, attempt, err: error instanceof Error ? error.message : String(error) },
          'redial failed',
        );
      }
    }
  }
}

/** Resolves `true` after `ms`, or `false` as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** A caller's handle on a {@link PeerPool}; behaves as one {@link Connection}. */
export class PooledConnection implements Connection {
  readonly id: string;
  readonly remoteAddress: string;
  readonly closed: Promise<DinferError | undefined>;
  readonly #pool: PeerPool;
  readonly #inFlight = new Set<AbortController>();
  #open = true;
  #resolveClosed!: (error: DinferError | undefined) => void;

  constructor(pool: PeerPool) {
    handleCounter += 1;
    this.id = `tcp-${handleCounter}`;
    this.remoteAddress = pool.address;
    this.#pool = pool;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  get isOpen(): boolean {
    return this.#open;
  }

  async send(message: Envelope, options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    await this.#run(options.signal, this.#pool.defaultTimeoutMs, (link, signal) =>
      link.send(message, { signal }),
    );
  }

  async request(message: Envelope, options: RequestOptions = {}): Promise<Envelope> {
    const timeoutMs = options.timeoutMs ?? this.#pool.defaultTimeoutMs;
    const started = performance.now();
    return this.#run(options.signal, timeoutMs, (link, signal) =>
      link.request(message, {
        signal,
        timeoutMs: Number.isFinite(timeoutMs)
          ? Math.max(1, timeoutMs - (performance.now() - started))
          : timeoutMs,
      }),
    );
  }

  /** Picks (or waits for) a link and runs `operation`, failing it if this handle closes first. */
  async #run<T>(
    userSignal: AbortSignal | undefined,
    waitMs: number,
    operation: (link: Connection, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    if (!this.#open) throw this.#closedError();
    if (userSignal?.aborted)
      throw new DinferError(DinferErrorCode.ABORTED, 'aborted', { cause: userSignal.reason });
    const controller = new AbortController();
    const signal =
      userSignal === undefined ? controller.signal : AbortSignal.any([userSignal, controller.signal]);
    this.#inFlight.add(controller);
    try {
      const link = this.#pool.pick() ?? (await this.#pool.waitForLink(waitMs, signal));
      return await operation(link, signal);
    } catch (error) {
      if (controller.signal.aborted) throw this.#closedError();
      throw error;
    } finally {
      this.#inFlight.delete(controller);
    }
  }

  onRequest(handler: RequestHandler): void {
    this.#pool.setRequestHandler(handler, this);
  }

  onMessage(handler: MessageHandler): void {
    this.#pool.setMessageHandler(handler, this);
  }

  async close(reason?: DinferError): Promise<void> {
    if (!this.#open) return;
    this.finish(reason);
    await this.#pool.release(this, reason);
  }

  /** Marks the handle closed and fails its pending operations (called by the pool, too). */
  finish(error: DinferError | undefined): void {
    if (!this.#open) return;
    this.#open = false;
    for (const controller of this.#inFlight) controller.abort(error);
    this.#resolveClosed(error);
  }

  #closedError(): DinferError {
    return new DinferError(DinferErrorCode.TRANSPORT_CLOSED, `connection to ${this.remoteAddress} is closed`);
  }
}
