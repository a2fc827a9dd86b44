/**
 * dinfer core: partition TensorFlow.js LayersModels into pipeline stages, plan cuts, and
 * move activations between master and workers over pluggable transports.
 *
 * @packageDocumentation
 */
export * from './backend.js';
export * from './connection/authenticate.js';
export * from './connection/channel-connection.js';
export * from './connection/frame-channel.js';
export * from './connection/rpc-header.js';
export * from './errors.js';
export * from './logger.js';
export * from './metrics.js';
export * from './model/analyze.js';
export * from './model/artifacts.js';
export * from './model/cost-model.js';
export * from './model/fs-handler.js';
export * from './model/http-loader.js';
export * from './model/io.js';
export * from './model/manifest.js';
export * from './model/partition.js';
export * from './model/planner.js';
export * from './model/profile.js';
export * from './model/run-partition.js';
export * from './model/tensor-names.js';
export * from './model/types.js';
export * from './protocol/frame-codec.js';
export * from './protocol/handshake.js';
export * from './protocol/json-guard.js';
export * from './protocol/message-fields.js';
export * from './protocol/messages.js';
export * from './protocol/tensors-message.js';
export * from './protocol/version.js';
export * from './runtime/blob-shipper.js';
export * from './runtime/blob-store.js';
export * from './runtime/capabilities.js';
export * from './runtime/coordinator.js';
export * from './runtime/deployment.js';
export * from './runtime/heartbeat.js';
export * from './runtime/inference-service.js';
export * from './runtime/load-monitor.js';
export * from './runtime/loaded-stage.js';
export * from './runtime/local-service.js';
export * from './runtime/messages.js';
export * from './runtime/remote-worker.js';
export * from './runtime/stage-artifacts.js';
export * from './runtime/validate-inputs.js';
export * from './runtime/worker.js';
export * from './runtime/worker-queue.js';
export * from './scheduler.js';
export * from './schedulers/capability-based.js';
export * from './schedulers/fallback.js';
export * from './schedulers/load-based.js';
export * from './schedulers/round-robin.js';
export * from './tensor/codec.js';
export * from './tensor/descriptor.js';
export * from './tensor/fp16.js';
export * from './tensor/int8.js';
export * from './tensor/tfjs.js';
export * from './tensor/types.js';
export * from './transport.js';
