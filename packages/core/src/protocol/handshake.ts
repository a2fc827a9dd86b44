/**
 * Challenge/response authentication with a shared cluster token (HMAC-SHA256).
 *
 * The token never crosses the wire. The exchange, used by every transport:
 *
 * 1. listener → dialer: `hello`   `{ protocol, nonce: serverNonce }`
 * 2. dialer → listener: `auth`    `{ protocol, nonce: clientNonce, proof: clientProof }`
 * 3. listener → dialer: `welcome` `{ protocol, proof: serverProof }` or `reject` `{ reason }`
 *
 * Both proofs bind both nonces and a role label, so neither can be replayed or reflected.
 * The dialer checks `serverProof` too (mutual authentication). Nothing but these messages
 * is accepted on a connection before `welcome`.
 *
 * @module
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { DinferError, DinferErrorCode } from '../errors.js';
import { PROTOCOL_VERSION } from './version.js';

/** Step 1: the listener's challenge. */
export type HelloMessage = {
  readonly type: 'hello';
  readonly protocol: number;
  readonly nonce: string;
};

/** Step 2: the dialer's answer and counter-challenge. */
export type AuthMessage = {
  readonly type: 'auth';
  readonly protocol: number;
  readonly nonce: string;
  readonly proof: string;
};

/** Step 3 (success): the listener proves it knows the token too. */
export type WelcomeMessage = {
  readonly type: 'welcome';
  readonly protocol: number;
  readonly proof: string;
};

/** Step 3 (failure): sent just before the listener closes the connection. */
export type RejectMessage = {
  readonly type: 'reject';
  readonly reason: string;
};

/** Any handshake message. */
export type HandshakeMessage = HelloMessage | AuthMessage | WelcomeMessage | RejectMessage;

const NONCE_BYTES = 32;

function proof(token: string, role: 'client' | 'server', first: string, second: string): string {
  return createHmac('sha256', token)
    .update(`dinfer/${PROTOCOL_VERSION} ${role} ${first} ${second}`)
    .digest('base64');
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function isNonce(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 128;
}

/** Listener side of the handshake. Create one per incoming connection. */
export class ListenerHandshake {
  readonly #token: string | undefined;
  readonly #nonce = randomBytes(NONCE_BYTES).toString('base64');

  /** @param token the cluster token; `undefined` disables authentication (the version is still checked). */
  constructor(token: string | undefined) {
    this.#token = token;
  }

  /** The challenge to send first. */
  hello(): HelloMessage {
    return { type: 'hello', protocol: PROTOCOL_VERSION, nonce: this.#nonce };
  }

  /**
   * Checks the dialer's `auth` message. Returns the `welcome` to send, or throws a
   * `DinferError` (`AUTH_FAILED`, `PROTOCOL_VERSION` or `PROTOCOL`); the caller then sends
   * {@link rejectFor} the error and closes.
   */
  verify(message: unknown): WelcomeMessage {
    const m = message as Partial<AuthMessage> | null;
    if (typeof m !== 'object' || m === null || m.type !== 'auth') {
      throw new DinferError(DinferErrorCode.AUTH_FAILED, 'expected an auth message before anything else');
    }
    if (m.protocol !== PROTOCOL_VERSION) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL_VERSION,
        `peer speaks protocol ${String(m.protocol)}, this side speaks ${PROTOCOL_VERSION}`,
      );
    }
    if (!isNonce(m.nonce) || typeof m.proof !== 'string') {
      throw new DinferError(DinferErrorCode.PROTOCOL, 'malformed auth message');
    }
    if (
      this.#token !== undefined &&
      !safeEqual(m.proof, proof(this.#token, 'client', this.#nonce, m.nonce))
    ) {
      throw new DinferError(DinferErrorCode.AUTH_FAILED, 'cluster token proof did not verify');
    }
    const serverProof = this.#token === undefined ? '' : proof(this.#token, 'server', m.nonce, this.#nonce);
    return { type: 'welcome', protocol: PROTOCOL_VERSION, proof: serverProof };
  }
}

/** Dialer side of the handshake. Create one per outgoing connection. */
export class DialerHandshake {
  readonly #token: string | undefined;
  readonly #nonce = randomBytes(NONCE_BYTES).toString('base64');

  /** @param token the cluster token; `undefined` when the cluster runs without one. */
  constructor(token: string | undefined) {
    this.#token = token;
  }

  /** Answers the listener's `hello`; throws on a version mismatch or malformed challenge. */
  answer(message: unknown): AuthMessage {
    const m = message as Partial<HelloMessage> | null;
    if (typeof m !== 'object' || m === null || m.type !== 'hello') {
      throw new DinferError(DinferErrorCode.PROTOCOL, 'expected a hello message from the listener');
    }
    if (m.protocol !== PROTOCOL_VERSION) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL_VERSION,
        `listener speaks protocol ${String(m.protocol)}, this side speaks ${PROTOCOL_VERSION}`,
      );
    }
    if (!isNonce(m.nonce)) throw new DinferError(DinferErrorCode.PROTOCOL, 'malformed hello message');
    const clientProof = this.#token === undefined ? '' : proof(this.#token, 'client', m.nonce, this.#nonce);
    this.#serverNonce = m.nonce;
    return { type: 'auth', protocol: PROTOCOL_VERSION, nonce: this.#nonce, proof: clientProof };
  }

  #serverNonce: string | undefined;

  /** Checks the listener's final answer (`welcome` with a valid proof); throws otherwise. */
  confirm(message: unknown): void {
    const m = message as Partial<WelcomeMessage | RejectMessage> | null;
    if (typeof m === 'object' && m !== null && m.type === 'reject') {
      const reason = typeof m.reason === 'string' ? m.reason : 'no reason given';
      throw new DinferError(DinferErrorCode.AUTH_FAILED, `listener rejected the connection: ${reason}`);
    }
    if (typeof m !== 'object' || m === null || m.type !== 'welcome' || this.#serverNonce === undefined) {
      throw new DinferError(DinferErrorCode.PROTOCOL, 'expected a welcome message from the listener');
    }
    if (this.#token === undefined) return;
    const expected = proof(this.#token, 'server', this.#nonce, this.#serverNonce);
    if (typeof m.proof !== 'string' || !safeEqual(m.proof, expected)) {
      throw new DinferError(
        DinferErrorCode.AUTH_FAILED,
        'listener could not prove it holds the cluster token',
      );
    }
  }
}

/** The `reject` message to send for a handshake error before closing. */
export function rejectFor(error: unknown): RejectMessage {
  const reason = error instanceof DinferError ? `${error.code}: ${error.message}` : 'handshake failed';
  return { type: 'reject', reason };
}
