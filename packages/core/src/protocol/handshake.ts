/**
 * Challenge/response authentication with a shared cluster token (HMAC-SHA256), and the
 * session key both sides derive from it.
 *
 * The token never crosses the wire. The exchange, run by core's upgrader on every channel:
 *
 * 1. listener → dialer: `hello`   `{ protocol, nonce: serverNonce }`
 * 2. dialer → listener: `auth`    `{ protocol, nonce: clientNonce, proof: clientProof, join?, joinProof? }`
 * 3. listener → dialer: `welcome` `{ protocol, proof: serverProof }` or `reject` `{ reason, code? }`
 *
 * Both proofs bind both nonces and a role label, so neither can be replayed or reflected.
 * The dialer checks `serverProof` too (mutual authentication). Nothing but these messages
 * is accepted on a channel before `welcome`.
 *
 * Both sides then hold a 32-byte session key, `HMAC(token, "session" + both nonces)`, which
 * never crosses the wire; its public id is `HMAC(key, "session-id")`. A further link of the
 * same connection (a pooled dialer) names that id in `join` and proves it holds the key
 * with `joinProof = HMAC(key, "join" + the new link's nonces)`.
 *
 * Portable: WebCrypto (`globalThis.crypto.subtle`, `crypto.getRandomValues`) and `btoa` only,
 * so it runs in Node 20+ and in browsers. Proofs are compared in constant time.
 *
 * @module
 */
import type { ConnectionSession } from '../connection/connection.js';
import { DinferError, DinferErrorCode } from '../errors.js';
import { parseMessageHeader } from './messages.js';
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
  /** Id of an open session this link joins (a further link of a pooled connection). */
  readonly join?: string;
  /** Proof that the dialer holds the key of the session it joins. */
  readonly joinProof?: string;
};

/** Step 3 (success): the listener proves it knows the token too. */
export type WelcomeMessage = {
  readonly type: 'welcome';
  readonly protocol: number;
  readonly proof: string;
};

/** Step 3 (failure): sent just before the listener closes the channel. */
export type RejectMessage = {
  readonly type: 'reject';
  readonly reason: string;
  /** The `DINFER_ERR_*` code of the refusal. */
  readonly code?: string;
};

/** Any handshake message. */
export type HandshakeMessage = HelloMessage | AuthMessage | WelcomeMessage | RejectMessage;

/** Finds an open session by id, for a link that asks to join one. */
export type SessionLookup = (id: string) => ConnectionSession | undefined;

/** What a successful {@link ListenerHandshake.verify} yields. */
export interface ListenerVerdict {
  /** The message to send back. */
  readonly welcome: WelcomeMessage;
  /** The session the link belongs to: a new one, or the one it joined. */
  readonly session: ConnectionSession;
  /** True when the link joined an existing session. */
  readonly joined: boolean;
}

const NONCE_BYTES = 32;
const SESSION_ID_CHARS = 22;
const encoder = new TextEncoder();
/** HMAC key used when the cluster runs without a token (the session key is then public). */
const NO_TOKEN_KEY = encoder.encode('dinfer/no-cluster-token');

function subtle(): SubtleCrypto {
  const crypto = globalThis.crypto;
  if (crypto?.subtle === undefined) {
    throw new DinferError(DinferErrorCode.INTERNAL, 'WebCrypto (globalThis.crypto.subtle) is not available');
  }
  return crypto.subtle;
}

async function hmac(key: Uint8Array, text: string): Promise<Uint8Array> {
  const imported = await subtle().importKey(
    'raw',
    key as Uint8Array<ArrayBuffer>,
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  return new Uint8Array(await subtle().sign('HMAC', imported, encoder.encode(text)));
}

function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function randomNonce(): string {
  return toBase64(globalThis.crypto.getRandomValues(new Uint8Array(NONCE_BYTES)));
}

function tokenKey(token: string | undefined): Uint8Array {
  return token === undefined ? NO_TOKEN_KEY : encoder.encode(token);
}

function label(what: string, first: string, second: string): string {
  return `dinfer/${PROTOCOL_VERSION} ${what} ${first} ${second}`;
}

async function proof(
  token: string,
  role: 'client' | 'server',
  first: string,
  second: string,
): Promise<string> {
  return toBase64(await hmac(encoder.encode(token), label(role, first, second)));
}

/** Derives the session of a fresh link from the token and both nonces. */
async function deriveSession(
  token: string | undefined,
  serverNonce: string,
  clientNonce: string,
): Promise<ConnectionSession> {
  const key = await hmac(tokenKey(token), label('session', serverNonce, clientNonce));
  const id = toBase64(await hmac(key, label('session-id', '', '')))
    .replace(/[+/=]/g, '')
    .slice(0, SESSION_ID_CHARS);
  return { id, key, authenticated: token !== undefined };
}

async function joinProof(session: ConnectionSession, serverNonce: string, clientNonce: string) {
  return toBase64(await hmac(session.key, label('join', serverNonce, clientNonce)));
}

/**
 * Compares two strings in time that depends on their length only, not on where they differ
 * (for proofs, whose length is public).
 */
export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

function typeOf(message: unknown): unknown {
  return typeof message === 'object' && message !== null ? (message as { type?: unknown }).type : undefined;
}

function protocolOf(message: unknown): unknown {
  return (message as { protocol?: unknown }).protocol;
}

function parse<T>(message: unknown, what: string): T {
  try {
    return parseMessageHeader(message) as T;
  } catch (error) {
    throw new DinferError(DinferErrorCode.PROTOCOL, `malformed ${what} message`, { cause: error });
  }
}

/** Listener side of the handshake. Create one per incoming channel. */
export class ListenerHandshake {
  readonly #token: string | undefined;
  readonly #nonce = randomNonce();

  /** @param token the cluster token; `undefined` disables authentication (the version is still checked). */
  constructor(token: string | undefined) {
    this.#token = token;
  }

  /** The challenge to send first. */
  hello(): HelloMessage {
    return { type: 'hello', protocol: PROTOCOL_VERSION, nonce: this.#nonce };
  }

  /**
   * Checks the dialer's `auth` message and returns the `welcome` to send with the link's
   * session, or throws a `DinferError` (`AUTH_FAILED`, `PROTOCOL_VERSION`, `PROTOCOL`, or
   * `TRANSPORT_CLOSED` when the session to join is no longer open); the caller then sends
   * {@link rejectFor} the error and closes.
   *
   * @param sessions finds the open session a joining link names; without it, joins are refused.
   */
  async verify(message: unknown, sessions?: SessionLookup): Promise<ListenerVerdict> {
    if (typeOf(message) !== 'auth') {
      throw new DinferError(DinferErrorCode.AUTH_FAILED, 'expected an auth message before anything else');
    }
    const protocol = protocolOf(message);
    if (protocol !== PROTOCOL_VERSION) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL_VERSION,
        `peer speaks protocol ${String(protocol).slice(0, 32)}, this side speaks ${PROTOCOL_VERSION}`,
      );
    }
    const auth = parse<AuthMessage>(message, 'auth');
    const token = this.#token;
    if (token !== undefined) {
      const expected = await proof(token, 'client', this.#nonce, auth.nonce);
      if (!constantTimeEqual(auth.proof, expected)) {
        throw new DinferError(DinferErrorCode.AUTH_FAILED, 'cluster token proof did not verify');
      }
    }
    let session: ConnectionSession;
    const joined = auth.join !== undefined;
    if (auth.join !== undefined) {
      const open = sessions?.(auth.join);
      if (open === undefined) {
        throw new DinferError(DinferErrorCode.TRANSPORT_CLOSED, `no open session ${auth.join} to join`);
      }
      const expected = await joinProof(open, this.#nonce, auth.nonce);
      if (auth.joinProof === undefined || !constantTimeEqual(auth.joinProof, expected)) {
        throw new DinferError(DinferErrorCode.AUTH_FAILED, 'session join proof did not verify');
      }
      session = open;
    } else {
      session = await deriveSession(token, this.#nonce, auth.nonce);
    }
    const serverProof = token === undefined ? '' : await proof(token, 'server', auth.nonce, this.#nonce);
    return { welcome: { type: 'welcome', protocol: PROTOCOL_VERSION, proof: serverProof }, session, joined };
  }
}

/** Dialer side of the handshake. Create one per outgoing channel. */
export class DialerHandshake {
  readonly #token: string | undefined;
  readonly #join: ConnectionSession | undefined;
  readonly #nonce = randomNonce();
  #serverNonce: string | undefined;

  /**
   * @param token the cluster token; `undefined` when the cluster runs without one.
   * @param join an open session of this connection that the new link joins (pooling).
   */
  constructor(token: string | undefined, join?: ConnectionSession) {
    this.#token = token;
    this.#join = join;
  }

  /** Answers the listener's `hello`; throws on a version mismatch or a malformed challenge. */
  async answer(message: unknown): Promise<AuthMessage> {
    if (typeOf(message) !== 'hello') {
      throw new DinferError(DinferErrorCode.PROTOCOL, 'expected a hello message from the listener');
    }
    const protocol = protocolOf(message);
    if (protocol !== PROTOCOL_VERSION) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL_VERSION,
        `listener speaks protocol ${String(protocol).slice(0, 32)}, this side speaks ${PROTOCOL_VERSION}`,
      );
    }
    const hello = parse<HelloMessage>(message, 'hello');
    this.#serverNonce = hello.nonce;
    const token = this.#token;
    const clientProof = token === undefined ? '' : await proof(token, 'client', hello.nonce, this.#nonce);
    const join = this.#join;
    return {
      type: 'auth',
      protocol: PROTOCOL_VERSION,
      nonce: this.#nonce,
      proof: clientProof,
      ...(join === undefined
        ? {}
        : { join: join.id, joinProof: await joinProof(join, hello.nonce, this.#nonce) }),
    };
  }

  /**
   * Checks the listener's final answer (`welcome` with a valid proof) and returns the link's
   * session; throws `AUTH_FAILED` (or the refusal's `PROTOCOL_VERSION` / `TRANSPORT_CLOSED`
   * code) otherwise.
   */
  async confirm(message: unknown): Promise<ConnectionSession> {
    const serverNonce = this.#serverNonce;
    if (typeOf(message) === 'reject') {
      const reject = parse<RejectMessage>(message, 'reject');
      const code =
        reject.code === DinferErrorCode.PROTOCOL_VERSION || reject.code === DinferErrorCode.TRANSPORT_CLOSED
          ? reject.code
          : DinferErrorCode.AUTH_FAILED;
      throw new DinferError(code, `listener rejected the connection: ${reject.reason}`);
    }
    if (typeOf(message) !== 'welcome' || serverNonce === undefined) {
      throw new DinferError(DinferErrorCode.PROTOCOL, 'expected a welcome message from the listener');
    }
    const welcome = parse<WelcomeMessage>(message, 'welcome');
    const token = this.#token;
    if (token !== undefined) {
      const expected = await proof(token, 'server', this.#nonce, serverNonce);
      if (!constantTimeEqual(welcome.proof, expected)) {
        throw new DinferError(
          DinferErrorCode.AUTH_FAILED,
          'listener could not prove it holds the cluster token',
        );
      }
    }
    return this.#join ?? (await deriveSession(token, serverNonce, this.#nonce));
  }
}

/** The `reject` message to send for a handshake error before closing. */
export function rejectFor(error: unknown): RejectMessage {
  if (!(error instanceof DinferError)) return { type: 'reject', reason: 'handshake failed' };
  return { type: 'reject', reason: `${error.code}: ${error.message}`.slice(0, 4096), code: error.code };
}
