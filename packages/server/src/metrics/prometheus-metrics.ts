/**
 * A prom-client implementation of core's {@link Metrics}: the master passes one instance to
 * its coordinator, transports and HTTP API, and serves its registry at `GET /metrics`.
 *
 * @module
 */
import { type Logger, type Metrics, silentLogger } from '@dinfer/core';
import { Counter, Gauge, Histogram, type Metric, Registry } from 'prom-client';
import {
  BYTES_BUCKETS,
  DINFER_METRICS,
  type MetricDefinition,
  type MetricType,
  SECONDS_BUCKETS,
} from './definitions.js';
import { collectProcessMetrics } from './process-metrics.js';

/** Options of {@link prometheusMetrics}. */
export interface PrometheusMetricsOptions {
  /** Registry to register into. Default: a new one (not prom-client's global registry). */
  readonly registry?: Registry | undefined;
  /** Also collect Node's process metrics (`process_*`, `nodejs_*`; see {@link collectProcessMetrics}). Default true. */
  readonly collectDefault?: boolean | undefined;
  /** Extra definitions, registered beside {@link DINFER_METRICS} (same name: these win). */
  readonly definitions?: readonly MetricDefinition[] | undefined;
  /** Told once about each metric created on the fly or each call it had to drop. */
  readonly logger?: Logger | undefined;
}

/** {@link Metrics} backed by a prom-client registry. */
export interface PrometheusMetrics extends Metrics {
  readonly registry: Registry;
  /** `Content-Type` of {@link PrometheusMetrics.exposition}. */
  readonly contentType: string;
  /** The registry in the Prometheus text exposition format. */
  exposition(): Promise<string>;
  /** Forgets the series of `name` with exactly `labels`; no-op when there is none. */
  remove(name: string, labels: Record<string, string>): void;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

interface Entry {
  readonly type: MetricType;
  readonly metric: Counter | Gauge | Histogram;
  readonly labels: ReadonlySet<string>;
}

function typeOf(metric: Metric): MetricType | undefined {
  if (metric instanceof Counter) return 'counter';
  if (metric instanceof Gauge) return 'gauge';
  if (metric instanceof Histogram) return 'histogram';
  return undefined;
}

function create(definition: MetricDefinition, registry: Registry): Counter | Gauge | Histogram {
  const common = {
    name: definition.name,
    help: definition.help,
    labelNames: [...definition.labelNames],
    registers: [registry],
  };
  switch (definition.type) {
    case 'counter':
      return new Counter(common);
    case 'gauge':
      return new Gauge(common);
    case 'histogram':
      return new Histogram({ ...common, buckets: [...(definition.buckets ?? SECONDS_BUCKETS)] });
  }
}

class PromMetrics implements PrometheusMetrics {
  readonly registry: Registry;
  readonly #entries = new Map<string, Entry>();
  readonly #told = new Set<string>();
  readonly #log: Logger;

  constructor(options: PrometheusMetricsOptions) {
    this.registry = options.registry ?? new Registry();
    this.#log = options.logger ?? silentLogger;
    const definitions = new Map<string, MetricDefinition>();
    for (const d of [...DINFER_METRICS, ...(options.definitions ?? [])]) definitions.set(d.name, d);
    for (const definition of definitions.values()) this.#register(definition);
    if (options.collectDefault ?? true) collectProcessMetrics(this.registry);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  increment(name: string, labels: Record<string, string> = {}, value = 1): void {
    const entry = this.#entry(name, 'counter', labels);
    if (entry === undefined) return;
    if (!Number.isFinite(value) || (entry.type === 'counter' && value < 0)) {
      this.#tellOnce(
        `value:${name}`,
        { metric: name, value },
        'counter increment dropped: not a finite non-negative number',
      );
      return;
    }
    if (entry.type === 'histogram') {
      this.#tellOnce(`type:${name}:counter`, { metric: name }, 'increment on a histogram dropped');
      return;
    }
    (entry.metric as Counter | Gauge).inc(this.#labels(name, entry, labels), value);
  }

  observe(name: string, labels: Record<string, string>, value: number): void {
    const entry = this.#entry(name, 'histogram', labels);
    if (entry === undefined) return;
    if (entry.type !== 'histogram') {
      this.#tellOnce(
        `type:${name}:histogram`,
        { metric: name, type: entry.type },
        'observe on a non-histogram dropped',
      );
      return;
    }
    if (!Number.isFinite(value)) {
      this.#tellOnce(`value:${name}`, { metric: name, value }, 'observation dropped: not a finite number');
      return;
    }
    (entry.metric as Histogram).observe(this.#labels(name, entry, labels), value);
  }

  set(name: string, labels: Record<string, string>, value: number): void {
    const entry = this.#entry(name, 'gauge', labels);
    if (entry === undefined) return;
    if (entry.type !== 'gauge') {
      this.#tellOnce(`type:${name}:gauge`, { metric: name, type: entry.type }, 'set on a non-gauge dropped');
      return;
    }
    if (Number.isNaN(value)) {
      this.#tellOnce(`value:${name}`, { metric: name }, 'gauge value dropped: NaN');
      return;
    }
    (entry.metric as Gauge).set(this.#labels(name, entry, labels), value);
  }

  remove(name: string, labels: Record<string, string>): void {
    const entry = this.#entries.get(name);
    if (entry === undefined) return;
    for (const key in labels) if (!entry.labels.has(key)) return;
    // A series needs every label of its metric; without one, there is no such series.
    for (const key of entry.labels) if (!(key in labels)) return;
    entry.metric.remove(labels);
  }

  #register(definition: MetricDefinition): Entry | undefined {
    // A metric already in a shared registry (another instance made it) is reused when its type matches.
    const existing = this.registry.getSingleMetric(definition.name);
    let metric: Counter | Gauge | Histogram;
    let labelNames = definition.labelNames;
    if (existing !== undefined) {
      const type = typeOf(existing);
      if (type !== definition.type) {
        this.#tellOnce(
          `clash:${definition.name}`,
          { metric: definition.name, expected: definition.type },
          'a metric of another type is already registered under this name; its calls are dropped',
        );
        return undefined;
      }
      metric = existing as Counter | Gauge | Histogram;
      labelNames = ((existing as unknown as { labelNames?: string[] }).labelNames ?? []) as readonly string[];
    } else {
      metric = create(definition, this.registry);
    }
    const entry: Entry = { type: definition.type, metric, labels: new Set(labelNames) };
    this.#entries.set(definition.name, entry);
    return entry;
  }

  /** The metric called `name`, created on first use (with the first call's labels) when unknown. */
  #entry(name: string, type: MetricType, labels: Record<string, string>): Entry | undefined {
    const known = this.#entries.get(name);
    if (known !== undefined) return known;
    if (!METRIC_NAME.test(name)) {
      this.#tellOnce(`name:${name}`, { metric: name }, 'invalid metric name; calls dropped');
      return undefined;
    }
    const labelNames = Object.keys(labels).filter((l) => LABEL_NAME.test(l) && !l.startsWith('__'));
    const definition: MetricDefinition = {
      name,
      type,
      help: `${name} (not in the dinfer metric catalogue; created on first use)`,
      labelNames,
      ...(type === 'histogram' ? { buckets: name.endsWith('_bytes') ? BYTES_BUCKETS : SECONDS_BUCKETS } : {}),
    };
    this.#tellOnce(
      `lazy:${name}`,
      { metric: name, type, labels: labelNames },
      'metric not in the catalogue: created on first use',
    );
    return this.#register(definition);
  }

  /** `labels` restricted to the metric's label names (extra ones would make prom-client throw). */
  #labels(name: string, entry: Entry, labels: Record<string, string>): Record<string, string> {
    let extra: string | undefined;
    for (const key in labels) {
      if (!entry.labels.has(key)) {
        extra = key;
        break;
      }
    }
    if (extra === undefined) return labels;
    this.#tellOnce(
      `label:${name}:${extra}`,
      { metric: name, label: extra, known: [...entry.labels] },
      'label not declared for this metric: dropped',
    );
    const kept: Record<string, string> = {};
    for (const key in labels) if (entry.labels.has(key)) kept[key] = labels[key] as string;
    return kept;
  }

  #tellOnce(key: string, context: Record<string, unknown>, message: string): void {
    if (this.#told.has(key)) return;
    this.#told.add(key);
    this.#log.warn(context, message);
  }
}

/**
 * Creates a {@link Metrics} that records into a prom-client registry. Every metric of
 * {@link DINFER_METRICS} is registered at once with its type, help, labels and buckets; a
 * name outside the catalogue is created on its first call (as the type the call implies,
 * with that call's label names) and logged once. Metric calls never throw: a call that
 * cannot be recorded (wrong type, undeclared label, non-finite value) is dropped or trimmed
 * and logged once, so instrumentation can never fail a request. `remove` forgets one series
 * (a worker's, when it leaves); removing a series that does not exist does nothing.
 */
export function prometheusMetrics(options: PrometheusMetricsOptions = {}): PrometheusMetrics {
  return new PromMetrics(options);
}
