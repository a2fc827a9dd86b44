/**
 * What this transport puts on the socket.io wire: one event, carrying pieces of a byte stream.
 *
 * | event          | direction | arguments                                          |
 * |----------------|-----------|----------------------------------------------------|
 * | `dinfer:frame` | both      | one binary part: the next piece of the frame stream |
 *
 * The stream is core's length-prefixed frame codec (`encodeFrame` / `FrameDecoder`), the same
 * bytes TCP carries, cut into pieces of at most {@link SOCKETIO_PIECE_BYTES}. The receiver
 * reassembles them with a per-channel limit: 64 KiB until core's upgrader has authenticated
 * the peer, the transport's `maxFrameBytes` after. So socket.io's own buffer
 * (`maxHttpBufferSize`) stays small, and an unauthenticated peer cannot make a listener hold
 * more than one piece. Any other event closes the channel. The protocol version also rides
 * in the socket.io `auth` payload, so a mismatched peer is refused by a server middleware
 * before any event.
 *
 * @module
 */

/** Event names. */
export const SocketIoEvent = {
  FRAME: 'dinfer:frame',
} as const;

/** Largest piece of the frame stream one event carries: 1 MiB. */
export const SOCKETIO_PIECE_BYTES = 1024 * 1024;

/** The socket.io `auth` payload a dialer sends with its connection. */
export interface SocketIoAuthPayload {
  readonly protocol: number;
}
