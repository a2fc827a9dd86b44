/**
 * dinfer core: partition TensorFlow.js LayersModels into pipeline stages, plan cuts, and
 * move activations between master and workers over pluggable transports.
 *
 * @packageDocumentation
 */
export * from './backend.js';
export * from './errors.js';
export * from './logger.js';
export * from './metrics.js';
export * from './transport.js';
export * from './protocol/handshake.js';
export * from './protocol/version.js';
