/**
 * Signed UDP heartbeats from workers to the master: the packet format
 * ({@link encodeHeartbeat}), the worker's {@link createHeartbeatSender} and the master's
 * {@link createHeartbeatReceiver}.
 *
 * @module
 */
export * from './heartbeat-packet.js';
export * from './heartbeat-receiver.js';
export * from './heartbeat-sender.js';
