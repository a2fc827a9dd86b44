/**
 * Runs the cluster-token handshake (`protocol/handshake.ts`) over a {@link FrameChannel}, for
 * either role, before anything else crosses the channel.
 *
 * @module
 */
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import { DialerHandshake, ListenerHandshake, rejectFor } from '../protocol/handshake.js';
import { assertSafeJson } from '../protocol/json-guard.js';
import type { Envelope, MessageHeader } from '../transport.js';
import type { FrameChannel } from './frame-channel.js';

/** Options for {@link authenticateListenerSide} and {@link authenticateDialerSide}. */
export interface AuthenticateOptions {
  /** Fails the handshake with `DINFER_ERR_TIMEOUT` (and closes the channel) after this many ms. Default 10 000. */
  timeoutMs?: number | undefined;
  /** Aborts the handshake with `DINFER_ERR_ABORTED` (and closes the channel). */
  signal?: AbortSignal | undefined;
}

/** Default handshake timeout, in ms. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * The channel handed on after a successful handshake: it holds envelopes that arrive after
 * the handshake's last message until the next consumer installs its handler, so nothing the
 * peer sends right after the handshake is lost.
 */
class HandoffChannel implements FrameChannel {
  readonly #inner: FrameChannel;
  readonly #queue: Envelope[] = [];
  #handler: ((envelope: Envelope) => void) | undefined;
  #flushing = false;

  constructor(inner: FrameChannel) {
    this.#inner = inner;
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
    if (this.#queue.length > 0 && !this.#flushing) {
      this.#flushing = true;
      queueMicrotask(() => {
        this.#flushing = false;
        while (this.#queue.length > 0 && this.#handler !== undefined) this.#handler(this.#queue.shift()!);
      });
    }
  }

  onClose(handler: (error: DinferError | undefined) => void): void {
    this.#inner.onClose(handler);
  }

  close(error?: DinferError): void {
    this.#inner.close(error);
  }
}

type Step = (header: MessageHeader) => 'done' | 'continue';

/**
 * Drives one side of the handshake: `step` consumes each incoming envelope until it returns
 * `'done'`; the channel's later envelopes go to the returned {@link HandoffChannel}.
 */
function run(
  channel: FrameChannel,
  role: 'listener' | 'dialer',
  options: AuthenticateOptions,
  start: () => Promise<void>,
  step: Step,
  onFailure: (error: DinferError) => void,
): Promise<FrameChannel> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  return new Promise<FrameChannel>((resolve, reject) => {
    let state: 'running' | 'failed' | HandoffChannel = 'running';
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
    channel.onClose((error) => {
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
    });
    channel.onEnvelope((envelope) => {
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
        if (step(envelope.header) === 'done') {
          cleanup();
          const handoff = new HandoffChannel(channel);
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
 * Resolves with the channel to hand to `createChannelConnection`.
 *
 * @param token the cluster token; `undefined` accepts any dialer (the protocol version is still checked).
 */
export function authenticateListenerSide(
  channel: FrameChannel,
  token: string | undefined,
  options: AuthenticateOptions = {},
): Promise<FrameChannel> {
  const handshake = new ListenerHandshake(token);
  return run(
    channel,
    'listener',
    options,
    () => channel.send({ header: handshake.hello() as unknown as MessageHeader, attachments: [] }),
    (header) => {
      const welcome = handshake.verify(header) as unknown as MessageHeader;
      channel.send({ header: welcome, attachments: [] }).catch(() => {});
      return 'done';
    },
    (error) => {
      channel.send({ header: rejectFor(error) as unknown as MessageHeader, attachments: [] }).catch(() => {});
      channel.close(error);
    },
  );
}

/**
 * Dialer side: answers the listener's `hello` with `auth` and checks its `welcome` (mutual
 * authentication). On failure it closes the channel and throws `DINFER_ERR_AUTH_FAILED`
 * (wrong or missing token, on either side), `DINFER_ERR_PROTOCOL_VERSION`,
 * `DINFER_ERR_PROTOCOL`, `DINFER_ERR_TIMEOUT`, `DINFER_ERR_ABORTED` or
 * `DINFER_ERR_TRANSPORT_CLOSED`.
 *
 * Call it right after creating the channel (it installs the channel's envelope handler).
 * Resolves with the channel to hand to `createChannelConnection`.
 *
 * @param token the cluster token; `undefined` when the cluster runs without one.
 */
export function authenticateDialerSide(
  channel: FrameChannel,
  token: string | undefined,
  options: AuthenticateOptions = {},
): Promise<FrameChannel> {
  const handshake = new DialerHandshake(token);
  let answered = false;
  return run(
    channel,
    'dialer',
    options,
    async () => {},
    (header) => {
      if (!answered) {
        const auth = handshake.answer(header);
        answered = true;
        channel.send({ header: auth as unknown as MessageHeader, attachments: [] }).catch(() => {});
        return 'continue';
      }
      handshake.confirm(header);
      return 'done';
    },
    (error) => channel.close(error),
  );
}
