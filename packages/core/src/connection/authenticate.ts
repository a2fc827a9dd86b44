/**
 * Runs the cluster-token handshake (`protocol/handshake.ts`) over a {@link FrameChannel}, for
 * either role, before anything else crosses the channel.
 *
 * @module
 */
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import { DialerHandshake, ListenerHandshake, rejectFor, type SessionLookup } from '../protocol/handshake.js';
import { assertSafeJson } from '../protocol/json-guard.js';
import { messageEnvelope } from '../protocol/messages.js';
import type { Envelope, MessageHeader } from '../transport.js';
import type { ConnectionSession } from './connection.js';
import type { FrameChannel } from './frame-channel.js';

/** Options for {@link authenticateListenerSide} and {@link authenticateDialerSide}. */
export interface AuthenticateOptions {
  /** Fails the handshake with `DINFER_ERR_TIMEOUT` (and closes the channel) after this many ms. Default 10 000. */
  timeoutMs?: number | undefined;
  /** Aborts the handshake with `DINFER_ERR_ABORTED` (and closes the channel). */
  signal?: AbortSignal | undefined;
  /**
   * The channel's incoming frame limit once the next frames can be trusted: the listener
   * raises it just before sending `welcome` (the dialer has proved the token), the dialer just
   * before sending `auth` (the listener may send anything right after its `welcome`, even in
   * the same packet). Default: the limit is left as it is.
   */
  maxFrameBytes?: number | undefined;
}

/** Options of {@link authenticateListenerSide}. */
export interface ListenerAuthenticateOptions extends AuthenticateOptions {
  /** Finds the open session a joining link names (a pooled dialer's further link). Default: joins refused. */
  sessions?: SessionLookup | undefined;
}

/** Options of {@link authenticateDialerSide}. */
export interface DialerAuthenticateOptions extends AuthenticateOptions {
  /** An open session the new link joins, as a further link of the same connection. */
  join?: ConnectionSession | undefined;
}

/** A channel whose peer has authenticated, with the session both sides now share. */
export interface AuthenticatedChannel extends FrameChannel {
  /** The session of this link: a new one, or the one it joined. */
  readonly session: ConnectionSession;
  /** True when the link joined an existing session instead of opening one. */
  readonly joined: boolean;
}

/** Default handshake timeout, in ms. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * The channel handed on after a successful handshake: it holds envelopes that arrive after
 * the handshake's last message until the next consumer installs its handler, so nothing the
 * peer sends right after the handshake is lost.
 */
class HandoffChannel implements AuthenticatedChannel {
  readonly session: ConnectionSession;
  readonly joined: boolean;
  readonly #inner: FrameChannel;
  /** Runs a task after the envelopes still in the handshake's pipeline (at once when there are none). */
  readonly #inOrder: (task: () => void) => void;
  readonly #queue: Envelope[] = [];
  #handler: ((envelope: Envelope) => void) | undefined;

  constructor(
    inner: FrameChannel,
    session: ConnectionSession,
    joined: boolean,
    inOrder: (task: () => void) => void,
  ) {
    this.#inner = inner;
    this.session = session;
    this.joined = joined;
    this.#inOrder = inOrder;
  }

  get remoteAddress(): string {
    return this.#inner.remoteAddress;
  }

  deliver(envelope: Envelope): void {
    if (this.#handler !== undefined && this.#queue.length === 0) this.#handler(envelope);
    else this.#queue.push(envelope);
  }

  send(envelope: Envelope): Promise<void> {
    return this.#inner.send(envelope);
  }

  onEnvelope(handler: (envelope: Envelope) => void): void {
    this.#handler = handler;
    while (this.#queue.length > 0 && this.#handler === handler) handler(this.#queue.shift()!);
  }

  onClose(handler: (error: DinferError | undefined) => void): void {
    // A close never overtakes envelopes that arrived before it.
    this.#inner.onClose((error) => this.#inOrder(() => handler(error)));
  }

  setMaxIncomingFrameBytes(bytes: number): void {
    this.#inner.setMaxIncomingFrameBytes(bytes);
  }

  close(error?: DinferError): void {
    this.#inner.close(error);
  }
}

/** What one step of a handshake does with an incoming message. */
type Step = (header: MessageHeader) => Promise<{ session: ConnectionSession; joined: boolean } | undefined>;

/**
 * Drives one side of the handshake: `step` consumes each incoming envelope, in order, until
 * it returns the session; the channel's later envelopes go to the returned {@link HandoffChannel}.
 */
function run(
  channel: FrameChannel,
  role: 'listener' | 'dialer',
  options: AuthenticateOptions,
  start: () => Promise<void>,
  step: Step,
  onFailure: (error: DinferError) => void,
): Promise<AuthenticatedChannel> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  return new Promise<AuthenticatedChannel>((resolve, reject) => {
    let state: 'running' | 'failed' | HandoffChannel = 'running';
    // Steps are async (WebCrypto): envelopes (and the close) are processed one after the
    // other, in order; once the handshake is done and the pipeline empty, directly.
    let chain: Promise<void> = Promise.resolve();
    let pending = 0;
    const enqueue = (task: () => void | Promise<void>): void => {
      pending += 1;
      chain = chain
        .then(task)
        .catch(() => {})
        .then(() => {
          pending -= 1;
        });
    };
    const inOrder = (task: () => void): void => {
      if (pending === 0) task();
      else enqueue(task);
    };
    const fail = (error: DinferError) => {
      if (state !== 'running') return;
      state = 'failed';
      cleanup();
      onFailure(error);
      reject(error);
    };
    const timer = setTimeout(
      () =>
        fail(
          new DinferError(
            DinferErrorCode.TIMEOUT,
            `${role} handshake with ${channel.remoteAddress} timed out after ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    const signal = options.signal;
    const onAbort = () =>
      fail(new DinferError(DinferErrorCode.ABORTED, `${role} handshake aborted`, { cause: signal?.reason }));
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    const closed = (error: DinferError | undefined): void => {
      if (state !== 'running') return;
      state = 'failed';
      cleanup();
      reject(
        new DinferError(
          DinferErrorCode.TRANSPORT_CLOSED,
          `connection to ${channel.remoteAddress} closed during the ${role} handshake${error ? `: ${error.message}` : ''}`,
          error === undefined ? {} : { cause: error },
        ),
      );
    };
    // After the envelopes that arrived before it (a `reject` just before the close wins).
    channel.onClose((error) => inOrder(() => closed(error)));
    const handle = async (envelope: Envelope): Promise<void> => {
      if (state instanceof HandoffChannel) {
        state.deliver(envelope);
        return;
      }
      if (state === 'failed') return;
      try {
        if (envelope.attachments.length > 0) {
          throw new DinferError(DinferErrorCode.PROTOCOL, 'handshake messages carry no attachments');
        }
        assertSafeJson(envelope.header, 'handshake message', {
          maxDepth: 4,
          maxNodes: 64,
          maxStringLength: 4096,
        });
        const done = await step(envelope.header);
        if (done !== undefined && state === 'running') {
          cleanup();
          const handoff = new HandoffChannel(channel, done.session, done.joined, inOrder);
          state = handoff;
          resolve(handoff);
        }
      } catch (error) {
        fail(
          isDinferError(error)
            ? error
            : new DinferError(DinferErrorCode.PROTOCOL, 'malformed handshake message', { cause: error }),
        );
      }
    };
    channel.onEnvelope((envelope) => {
      if (state instanceof HandoffChannel && pending === 0) state.deliver(envelope);
      else enqueue(() => handle(envelope));
    });
    start().catch((error: unknown) =>
      fail(
        isDinferError(error)
          ? error
          : new DinferError(DinferErrorCode.TRANSPORT_CLOSED, 'could not send the handshake', {
              cause: error,
            }),
      ),
    );
  });
}

/**
 * Listener side: sends `hello`, checks the dialer's `auth` and answers `welcome`. On failure
 * it sends `reject`, closes the channel and throws `DINFER_ERR_AUTH_FAILED`,
 * `DINFER_ERR_PROTOCOL_VERSION`, `DINFER_ERR_PROTOCOL`, `DINFER_ERR_TIMEOUT`,
 * `DINFER_ERR_ABORTED` or `DINFER_ERR_TRANSPORT_CLOSED`.
 *
 * Call it right after creating the channel (it installs the channel's envelope handler).
 * Resolves with the channel to hand to `createChannelConnection`, carrying the session.
 *
 * @param token the cluster token; `undefined` accepts any dialer (the protocol version is still checked).
 */
export function authenticateListenerSide(
  channel: FrameChannel,
  token: string | undefined,
  options: ListenerAuthenticateOptions = {},
): Promise<AuthenticatedChannel> {
  const handshake = new ListenerHandshake(token);
  return run(
    channel,
    'listener',
    options,
    () => channel.send(messageEnvelope(handshake.hello())),
    async (header) => {
      const verdict = await handshake.verify(header, options.sessions);
      if (options.maxFrameBytes !== undefined) channel.setMaxIncomingFrameBytes(options.maxFrameBytes);
      channel.send(messageEnvelope(verdict.welcome)).catch(() => {});
      return verdict;
    },
    (error) => {
      channel.send(messageEnvelope(rejectFor(error))).catch(() => {});
      channel.close(error);
    },
  );
}

/**
 * Dialer side: answers the listener's `hello` with `auth` and checks its `welcome` (mutual
 * authentication). On failure it closes the channel and throws `DINFER_ERR_AUTH_FAILED`
 * (wrong or missing token, on either side), `DINFER_ERR_PROTOCOL_VERSION`,
 * `DINFER_ERR_PROTOCOL`, `DINFER_ERR_TIMEOUT`, `DINFER_ERR_ABORTED` or
 * `DINFER_ERR_TRANSPORT_CLOSED` (also when the session to join is gone).
 *
 * Call it right after creating the channel (it installs the channel's envelope handler).
 * Resolves with the channel to hand to `createChannelConnection`, carrying the session.
 *
 * @param token the cluster token; `undefined` when the cluster runs without one.
 */
export function authenticateDialerSide(
  channel: FrameChannel,
  token: string | undefined,
  options: DialerAuthenticateOptions = {},
): Promise<AuthenticatedChannel> {
  const handshake = new DialerHandshake(token, options.join);
  let answered = false;
  return run(
    channel,
    'dialer',
    options,
    async () => {},
    async (header) => {
      if (!answered) {
        answered = true;
        const auth = await handshake.answer(header);
        if (options.maxFrameBytes !== undefined) channel.setMaxIncomingFrameBytes(options.maxFrameBytes);
        channel.send(messageEnvelope(auth)).catch(() => {});
        return undefined;
      }
      const session = await handshake.confirm(header);
      return { session, joined: options.join !== undefined };
    },
    (error) => channel.close(error),
  );
}
