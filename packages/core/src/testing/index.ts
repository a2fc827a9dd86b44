/**
 * `@dinfer/core/testing`: the test kit for implementers of dinfer's extension points. Runner-
 * agnostic compliance suites for transports, schedulers and blob stores, an in-memory
 * transport, and the hostile-input helpers those suites use (raw bytes on a socket, garbage
 * frames, the dialer's side of the handshake done by hand).
 *
 * @packageDocumentation
 */

export { idleFrameBytes } from '../protocol/frame-buffer-pool.js';
export { FRAME_MAGIC } from '../protocol/frame-codec.js';
export { type BlobStoreFactory, blobStoreSuite } from './blob-store-suite.js';
export {
  bytesOf,
  type CountingTransport,
  countingTransport,
  type SentRequest,
} from './counting-transport.js';
export { FrameInbox } from './frame-inbox.js';
export { type HandshakeByHand, handshakeByHand } from './handshake-by-hand.js';
export {
  DEFAULT_MEMORY_MAX_FRAME_BYTES,
  injectMemoryGarbage,
  type MemoryChannelPairOptions,
  memoryChannelPair,
  memoryFrameBytes,
} from './memory-channel.js';
export {
  defaultMemoryNetwork,
  type MemoryAcceptor,
  type MemoryDialInfo,
  MemoryNetwork,
  type MemoryTransportOptions,
  memoryTransport,
  sendMemoryGarbage,
} from './memory-transport.js';
export { frameCodecGarbage, type RawSocketOptions, sendRawSocketBytes } from './raw-socket.js';
export { type SchedulerSuiteOptions, type SuiteTest, schedulerSuite } from './scheduler-suite.js';
export { seededRandom } from './seeded-random.js';
export {
  type TransportSuiteFactory,
  type TransportSuiteFactoryOptions,
  type TransportSuiteOptions,
  type TransportSuiteReport,
  type TransportSuiteTest,
  transportSuite,
} from './transport-suite.js';
