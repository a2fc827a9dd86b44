/**
 * dinfer core: partition TensorFlow.js LayersModels into pipeline stages, plan the cuts, place
 * the stages on workers and move activations between them over pluggable transports.
 *
 * This entry point is portable (Node and browsers): what only Node can do (the tfjs-node
 * backend picker, the disk blob store, UDP heartbeats) is in `@dinfer/core/node`; test kits
 * for your own transports, schedulers and blob stores are in `@dinfer/core/testing`; reference
 * models are in `@dinfer/core/models`. Model files on a path need a file system (Node); in a
 * browser, load models from URLs.
 *
 * @packageDocumentation
 */

export { type BackendInfo, type BackendName, describeBackend, parseBackendName } from './backend-info.js';
export type { ReconnectOptions } from './connection/backoff.js';
export { ChannelEvents, type ChannelEventsOptions } from './connection/channel-events.js';
export type {
  Connection,
  ConnectionSession,
  MessageHandler,
  RequestContext,
  RequestHandler,
  RequestOptions,
} from './connection/connection.js';
export type { ConnectionOptions } from './connection/connection-options.js';
export { type DialConnectionOptions, dialConnection } from './connection/dial-connection.js';
export { type FrameChannel, PRE_AUTH_MAX_FRAME_BYTES } from './connection/frame-channel.js';
export {
  type ListenForConnectionsOptions,
  listenForConnections,
} from './connection/listen-for-connections.js';
export { DinferError, DinferErrorCode, type DinferErrorOptions, isDinferError } from './errors.js';
export type {
  HeartbeatInfo,
  HeartbeatKey,
  HeartbeatReceiver,
  HeartbeatReceiverFactory,
  HeartbeatReceiverOptions,
  HeartbeatSender,
  HeartbeatSenderFactory,
  HeartbeatSenderOptions,
} from './heartbeats.js';
export { type Logger, silentLogger } from './logger.js';
export {
  type ClusterStatus,
  type Coordinator,
  type CoordinatorEvent,
  type CoordinatorOptions,
  createCoordinator,
  type RolloutOptions,
  type StageStatus,
  type VersionState,
  type VersionStatus,
  type WaitReadyOptions,
  type WorkerStatus,
} from './master/coordinator.js';
export {
  createDeployment,
  type Deployment,
  type DeploymentContext,
  type DeploymentPartition,
  type DeploymentPlanOptions,
  type DeploymentSpec,
  type DeploymentStage,
} from './master/deployment.js';
export type { BreakerOptions, RemoteWorkerState } from './master/remote-worker.js';
export { type Metrics, noopMetrics } from './metrics.js';
export { analyzeModel, analyzeModelJson } from './model/analyze.js';
export { type ModelArtifactSource, openModelArtifacts, type SourceWeight } from './model/artifact-source.js';
export {
  type CheckedModelJson,
  checkWeightBytes,
  parseModelJson,
  type ReadModelOptions,
} from './model/artifacts.js';
export { disposeModel } from './model/dispose-model.js';
export { fileSystemHandler, type WrittenArtifacts } from './model/fs-handler.js';
export { isHttpSource } from './model/http-loader.js';
export {
  type LoadModelOptions,
  loadLayersModel,
  modelFromArtifacts,
  modelToArtifacts,
  readModelArtifacts,
  type SavedModel,
  saveLayersModel,
} from './model/io.js';
export type { WeightGroupReader } from './model/model-from-weights.js';
export {
  manifestWeightQuantization,
  type StoredQuantization,
  sourceWeightQuantization,
  type WeightQuantizationByName,
} from './model/source-quantization.js';
export type {
  CrossingTensor,
  CutInfo,
  DType,
  LayerCall,
  LayerInfo,
  ModelAnalysis,
  Plan,
  StagePlan,
  SymbolicShape,
  TensorSpec,
} from './model/types.js';
export {
  type ArtifactPartition,
  type ArtifactStage,
  type PartitionArtifactsOptions,
  partitionArtifacts,
} from './partition/artifact-partition.js';
export {
  type LoadedPartition,
  loadPartition,
  loadPartitionStage,
  PARTITION_FORMAT,
  type PartitionManifest,
  type PartitionManifestStage,
  readPartitionManifest,
  savePartition,
} from './partition/manifest.js';
export {
  type Partition,
  type PartitionStage,
  partitionModel,
  type StageSignature,
} from './partition/partition.js';
export {
  type ModelInputs,
  type RunnablePartition,
  type RunnableStage,
  runPartition,
  runStage,
} from './partition/run-partition.js';
export {
  type HeldStageBlobs,
  type HeldTensorBlob,
  modelFromBlobs,
  type StageBlobs,
  type StageToBlobsOptions,
  stageToBlobs,
  type TensorBlob,
} from './partition/stage-artifacts.js';
export {
  decodeStored,
  WEIGHT_QUANTIZATIONS,
  type WeightQuantization,
  type WeightQuantizationPlan,
} from './partition/weight-quantization.js';
export { type CapabilityBasedOptions, capabilityBasedScheduler } from './place/capability-based.js';
export { fallbackScheduler } from './place/fallback.js';
export { type LoadBasedOptions, loadBasedScheduler } from './place/load-based.js';
export { roundRobinScheduler } from './place/round-robin.js';
export { type CostModelOptions, estimateLayerCosts, estimateLayerMs } from './plan/cost-model.js';
export {
  evaluateCuts,
  type PlannedStage,
  type PlanOptions,
  type PlanResult,
  planCuts,
} from './plan/planner.js';
export { clockReader, type ProfileClock, type ProfileOptions, profileLayers } from './plan/profile.js';
export { profileTopology } from './plan/profile-topology.js';
export { type StageMemory, type StageMemoryOptions, stageMemoryModel } from './plan/stage-memory.js';
export { allocateFrameBody, releaseAttachments } from './protocol/frame-buffer-pool.js';
export {
  DEFAULT_MAX_FRAME_BYTES,
  type EncodeFrameOptions,
  encodeFrame,
  FrameDecoder,
  type FrameDecoderOptions,
} from './protocol/frame-codec.js';
export type { StageKey } from './protocol/messages.js';
export { PROTOCOL_VERSION } from './protocol/version.js';
export {
  isScheduler,
  type Placement,
  type PlacementRequest,
  type Scheduler,
  type StageRequirement,
  schedulerSymbol,
  type WorkerCapabilities,
  type WorkerLoad,
  type WorkerView,
} from './scheduler.js';
export { type BatchingOptions, type BatchingService, batchingService } from './serving/batching-service.js';
export {
  type CachingOptions,
  type CachingService,
  cachingService,
  type ResultCacheStats,
} from './serving/caching-service.js';
export type {
  InferenceService,
  InferOptions,
  InferResult,
  MemberResult,
  ServedModel,
  ServiceHealth,
  StageTrace,
} from './serving/inference-service.js';
export { type LocalInferenceServiceOptions, localInferenceService } from './serving/local-service.js';
export { type BlobSource, readBlob } from './ship/blob-source.js';
export type { BlobStore } from './ship/blob-store.js';
export { type MemoryBlobStoreOptions, memoryBlobStore } from './ship/memory-blob-store.js';
export {
  decodeTensors,
  type EncodedTensors,
  type EncodeTensorsOptions,
  encodeTensors,
} from './tensor/codec.js';
export type { TensorLimits } from './tensor/descriptor.js';
export { fromTfTensor, toTfTensor } from './tensor/tfjs.js';
export type {
  Int8Quantization,
  TensorArray,
  TensorArrayByDType,
  TensorCompression,
  TensorData,
  TensorDescriptor,
  TensorDType,
  TensorEncoding,
} from './tensor/types.js';
export {
  type DialOptions,
  type Envelope,
  isTransport,
  type Listener,
  type ListenOptions,
  type MessageHeader,
  type Transport,
  type TransportCapabilities,
  type TransportComponents,
  transportSymbol,
} from './transport.js';
export {
  backendMemoryLimit,
  defaultMemoryBudget,
  type MeasureCapabilitiesOptions,
  measureCapabilities,
} from './worker/capabilities.js';
export {
  createWorker,
  type DinferWorker,
  type WorkerOptions,
  type WorkerState,
  type WorkerStopOptions,
} from './worker/worker.js';
