/**
 * `@dinfer/core/node`: what only Node.js can do, for masters and workers that run on it. The
 * TF.js backend picker (tfjs-node-gpu > tfjs-node > wasm > cpu), the disk blob store, and
 * signed UDP heartbeats. Everything here plugs into the portable runtime of `@dinfer/core`
 * (`createWorker({ store, heartbeats })`, `createCoordinator({ heartbeat: { receiver } })`).
 *
 * @packageDocumentation
 */
export { type InitBackendOptions, initBackend } from './backend.js';
export {
  type BlobStoreOptions,
  createBlobStore,
  DEFAULT_BLOB_CACHE_BYTES,
  DEFAULT_STALE_PARTIAL_MS,
  type DiskBlobStore,
} from './disk-blob-store.js';
export {
  checkWorkerLoad,
  decodeHeartbeat,
  encodeHeartbeat,
  HEARTBEAT_MAX_PACKET_BYTES,
  HEARTBEAT_MAX_WORKER_ID_LENGTH,
  HEARTBEAT_VERSION,
  type HeartbeatDecodeResult,
  type HeartbeatKeyLookup,
  type HeartbeatPayload,
  type HeartbeatRejectReason,
} from './heartbeat/heartbeat-packet.js';
export {
  createHeartbeatReceiver,
  DEFAULT_HEARTBEAT_MAX_SKEW_MS,
  DEFAULT_HEARTBEAT_MAX_WORKERS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
} from './heartbeat/heartbeat-receiver.js';
export { createHeartbeatSender } from './heartbeat/heartbeat-sender.js';
