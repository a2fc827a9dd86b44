/**
 * Test kit for implementers of dinfer extension points: an in-memory transport and
 * runner-agnostic compliance suites.
 *
 * @packageDocumentation
 */

export * from './blob-store-suite.js';
export * from './counting-transport.js';
export * from './frame-inbox.js';
export * from './memory-channel.js';
export * from './memory-transport.js';
export * from './raw-socket.js';
export * from './scheduler-suite.js';
export * from './seeded-random.js';
export * from './transport-suite.js';
