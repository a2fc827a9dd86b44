/**
 * The catalogue of every metric dinfer reports: its Prometheus type, help text, label names
 * and histogram buckets. {@link prometheusMetrics} registers these up front, so a scrape
 * shows each family (with its HELP and TYPE) before the first sample, and the exposition
 * stays stable across releases.
 *
 * Names follow `dinfer_<subsystem>_<name>_<unit>` (counters end in `_total`), except the
 * `ai_inference_*` / `ai_active_workers` names users already know from the previous
 * deployment. Label names are the union of what every emitter passes: a call may leave some
 * out.
 *
 * @module
 */

/** A Prometheus metric type dinfer uses. */
export type MetricType = 'counter' | 'gauge' | 'histogram';

/** How one metric is exposed. */
export interface MetricDefinition {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Histogram bucket upper bounds (histograms only). */
  readonly buckets?: readonly number[] | undefined;
}

/** Buckets for durations in seconds: 1 ms to 60 s. */
export const SECONDS_BUCKETS: readonly number[] = Object.freeze([
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
]);

/** Buckets for batch sizes. */
export const BATCH_SIZE_BUCKETS: readonly number[] = Object.freeze([1, 2, 4, 8, 16, 32, 64, 128]);

/** Buckets for byte sizes: 1 KiB to 1 GiB, by powers of 4. */
export const BYTES_BUCKETS: readonly number[] = Object.freeze(
  Array.from({ length: 11 }, (_, i) => 1024 * 4 ** i),
);

const counter = (name: string, help: string, labelNames: readonly string[] = []): MetricDefinition => ({
  name,
  type: 'counter',
  help,
  labelNames,
});
const gauge = (name: string, help: string, labelNames: readonly string[] = []): MetricDefinition => ({
  name,
  type: 'gauge',
  help,
  labelNames,
});
const histogram = (
  name: string,
  help: string,
  labelNames: readonly string[] = [],
  buckets: readonly number[] = SECONDS_BUCKETS,
): MetricDefinition => ({ name, type: 'histogram', help, labelNames, buckets });

const STAGE = ['model', 'stage'] as const;
const TRANSPORT = ['transport'] as const;

/** Every metric dinfer's core, transports, server decorators and HTTP API emit. */
export const DINFER_METRICS: readonly MetricDefinition[] = Object.freeze([
  // HTTP API (server), the names users already know.
  counter(
    'ai_inference_requests_total',
    'Inference HTTP requests answered, by model and outcome: success (2xx), client_error (4xx), server_error (5xx).',
    ['model', 'status'],
  ),
  histogram(
    'ai_inference_latency_seconds',
    'Time from arrival to answer of successful inference HTTP requests, in seconds.',
    ['model'],
  ),
  gauge('ai_active_workers', 'Workers connected to the master.'),

  // Coordinator: per-stage timing, traffic and retries.
  histogram(
    'dinfer_stage_duration_seconds',
    'Wall time of one stage call as seen by the master (queue + compute + transfer), in seconds.',
    STAGE,
  ),
  histogram(
    'dinfer_stage_compute_seconds',
    'Compute time of one stage call on its worker, in seconds.',
    STAGE,
  ),
  histogram(
    'dinfer_stage_queue_seconds',
    'Time one stage call waited in its worker queue, in seconds.',
    STAGE,
  ),
  histogram(
    'dinfer_stage_transfer_seconds',
    'Time one stage call spent on the wire (both directions, encoding included), in seconds.',
    STAGE,
  ),
  counter('dinfer_stage_bytes_sent_total', 'Activation bytes the master sent to stage workers.', STAGE),
  counter(
    'dinfer_stage_bytes_received_total',
    'Activation bytes the master received from stage workers.',
    STAGE,
  ),
  counter('dinfer_stage_retries_total', 'Stage calls retried after a failure.', STAGE),
  gauge('dinfer_degraded', '1 while the master runs at least one stage itself (degraded mode), else 0.'),

  // Coordinator: per-worker state from heartbeats and the breaker.
  gauge('dinfer_worker_breaker_open', '1 while the circuit breaker keeps traffic off the worker, else 0.', [
    'worker',
  ]),
  gauge('dinfer_worker_cpu_ratio', 'CPU use of the worker (0-1) from its last heartbeat.', ['worker']),
  gauge(
    'dinfer_worker_free_memory_bytes',
    'Free memory of the worker machine from its last heartbeat, in bytes.',
    ['worker'],
  ),
  gauge('dinfer_worker_queue_length', 'Requests queued on the worker from its last heartbeat.', ['worker']),

  // Heartbeat receiver.
  counter(
    'dinfer_heartbeat_received_total',
    'Heartbeat packets received, by result (accepted or why they were refused).',
    ['result'],
  ),
  counter('dinfer_heartbeat_timeouts_total', 'Workers removed because their heartbeats stopped.'),

  // Transports and connections.
  counter('dinfer_transport_requests_total', 'Requests sent over a connection, by outcome.', [
    'transport',
    'outcome',
  ]),
  histogram(
    'dinfer_transport_request_duration_seconds',
    'Round trip of successful requests over a connection, in seconds.',
    TRANSPORT,
  ),
  counter(
    'dinfer_transport_connections_opened_total',
    'Authenticated connections opened, by side (dialer or listener).',
    ['transport', 'side'],
  ),
  counter(
    'dinfer_transport_connections_closed_total',
    'Connections closed, by reason (error code or clean).',
    ['transport', 'reason'],
  ),
  counter(
    'dinfer_transport_handshake_failures_total',
    'Connections refused during the handshake (listener side), by error code.',
    ['transport', 'code'],
  ),
  counter(
    'dinfer_transport_protocol_errors_total',
    'Connections closed for a protocol violation, by error code.',
    ['transport', 'code'],
  ),
  counter(
    'dinfer_transport_frames_rejected_total',
    'Incoming frames rejected (oversize or malformed), by code.',
    ['transport', 'code'],
  ),
  counter('dinfer_transport_reconnects_total', 'Links a reconnecting dialer opened again.', TRANSPORT),
  counter('dinfer_transport_sent_bytes_total', 'Bytes written to connections.', TRANSPORT),
  counter('dinfer_transport_received_bytes_total', 'Bytes read from connections.', TRANSPORT),

  // Worker runtime (reported by worker processes).
  counter('dinfer_worker_infer_total', 'Stage calls a worker answered, by status (ok or an error code).', [
    'status',
  ]),
  histogram('dinfer_worker_compute_seconds', 'Compute time of one stage call on this worker, in seconds.'),
  gauge('dinfer_worker_stages', 'Stages loaded on this worker.'),
  counter('dinfer_worker_reconnects_total', 'Times this worker rejoined its master.'),
  counter('dinfer_worker_blob_received_bytes_total', 'Shard bytes this worker received from its master.'),
  counter(
    'dinfer_shard_sent_bytes_total',
    'Shard bytes the master put on the wire (chunks and deltas, after compression).',
    ['model'],
  ),

  // Server decorators: dynamic batching and the result cache.
  histogram(
    'dinfer_batch_size',
    'Rows (examples) per inference call issued by the dynamic batcher.',
    ['model'],
    BATCH_SIZE_BUCKETS,
  ),
  gauge('dinfer_queue_length', 'Requests waiting in the dynamic batcher queue.', ['model']),
  histogram('dinfer_queue_wait_seconds', 'Time a request waited in the batcher queue, in seconds.', [
    'model',
  ]),
  counter('dinfer_cache_hits_total', 'Result cache lookups that found an answer.', ['model']),
  counter('dinfer_cache_misses_total', 'Result cache lookups that found nothing.', ['model']),
]);
