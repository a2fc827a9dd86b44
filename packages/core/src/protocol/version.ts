/**
 * The wire protocol version. Peers with a different version are refused at the handshake.
 *
 * 2: session keys and pooled links (`auth.join`), `reject.code`, and Socket.IO carrying the
 * same length-prefixed frames as TCP.
 */
export const PROTOCOL_VERSION = 2;
