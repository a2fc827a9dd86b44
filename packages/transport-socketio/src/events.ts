/**
 * The Socket.IO events this transport speaks, and the shapes of their arguments.
 *
 * | event           | direction         | arguments                                              |
 * |-----------------|-------------------|--------------------------------------------------------|
 * | `dinfer:hello`  | listener → dialer | `HelloMessage`                                         |
 * | `dinfer:auth`   | dialer → listener | `AuthMessage`                                          |
 * | `dinfer:welcome`| listener → dialer | `WelcomeMessage`                                       |
 * | `dinfer:reject` | listener → dialer | `RejectMessage`, then the listener disconnects         |
 * | `dinfer:msg`    | both              | `header`, `attachments[]`                              |
 * | `dinfer:req`    | both              | `id`, `header`, `attachments[]`, ack(`WireReply`)      |
 * | `dinfer:cancel` | both              | `id` (the requester gave up)                           |
 * | `dinfer:bye`    | both              | `WireError` or nothing, then the sender disconnects    |
 *
 * Attachments travel as socket.io binary parts (one WebSocket binary message each), never as
 * JSON arrays. The protocol version also rides in the socket.io `auth` payload, so a
 * mismatched peer is refused by a server middleware before any event.
 *
 * @module
 */

/** Event names, by role. */
export const SocketIoEvent = {
  HELLO: 'dinfer:hello',
  AUTH: 'dinfer:auth',
  WELCOME: 'dinfer:welcome',
  REJECT: 'dinfer:reject',
  MESSAGE: 'dinfer:msg',
  REQUEST: 'dinfer:req',
  CANCEL: 'dinfer:cancel',
  BYE: 'dinfer:bye',
} as const;

/** An error as it crosses the wire (in a reply or a `bye`). */
export interface WireError {
  readonly code: string;
  readonly message: string;
}

/** What the ack of a `dinfer:req` carries: the reply envelope, or the handler's error. */
export type WireReply =
  | { readonly header: Record<string, unknown>; readonly attachments: readonly Uint8Array[] }
  | { readonly error: WireError };

/** The socket.io `auth` payload a dialer sends with every (re)connection. */
export interface SocketIoAuthPayload {
  readonly protocol: number;
}
