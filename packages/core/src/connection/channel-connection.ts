/**
 * A complete {@link Connection} on top of one {@link FrameChannel}: core's RPC engine
 * (`rpc-connection.ts`) with a single link. `listenForConnections` and `dialConnection` use
 * the same engine after authenticating; this factory is for channels authenticated by hand.
 *
 * @module
 */
import type { Connection, ConnectionSession } from './connection.js';
import type { FrameChannel } from './frame-channel.js';
import { RpcConnection, type RpcConnectionOptions } from './rpc-connection.js';

export { DEFAULT_REQUEST_TIMEOUT_MS } from './rpc-connection.js';

/** Options for {@link createChannelConnection}. */
export type ChannelConnectionOptions = Omit<RpcConnectionOptions, 'redialing'>;

/**
 * Builds a full {@link Connection} on an (already authenticated) {@link FrameChannel}. The
 * connection takes the channel over: it installs the channel's envelope and close handlers.
 * A channel from `authenticateListenerSide`/`authenticateDialerSide` brings its session.
 *
 * Semantics: requests get ids and are matched to replies, any number in flight; one-way
 * messages reach the peer's message handler in order; a handler that throws makes the
 * request reject with `DINFER_ERR_REMOTE` (`details.remoteCode`/`remoteMessage` carry the
 * peer's error); timeouts reject with `DINFER_ERR_TIMEOUT` and aborts with
 * `DINFER_ERR_ABORTED`, and both tell the peer to cancel, so its handler's `context.signal`
 * aborts and nothing more is answered; a close from either side (or the link dropping)
 * rejects every pending request with `DINFER_ERR_TRANSPORT_CLOSED`. Requests and messages
 * arriving before a handler is installed are held (up to `maxQueued`). An invalid header
 * closes the connection with `DINFER_ERR_PROTOCOL`.
 */
export function createChannelConnection(
  channel: FrameChannel & { readonly session?: ConnectionSession | undefined },
  options: ChannelConnectionOptions = {},
): Connection {
  const connection = new RpcConnection(channel.remoteAddress, options);
  connection.attach(channel, channel.session);
  return connection;
}
