/** The wire protocol version. Peers with a different version are refused at the handshake. */
export const PROTOCOL_VERSION = 1;
