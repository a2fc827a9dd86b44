import type { Logger } from '@dinfer/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DINFER_METRICS, prometheusMetrics } from '../src/index.js';

/** A logger that keeps its warnings. */
function recordingLogger(): Logger & { warnings: { context: Record<string, unknown>; message: string }[] } {
  const warnings: { context: Record<string, unknown>; message: string }[] = [];
  return {
    warnings,
    debug() {},
    info() {},
    warn(context, message) {
      warnings.push({ context, message });
    },
    error() {},
  };
}

/** `# TYPE name type` lines of an exposition, as a map. */
function types(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** The value of the sample line `name{labels}` (labels as exposed, in order), if any. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('prometheusMetrics', () => {
  it('registers every catalogued metric with its type and help, before any sample', async () => {
    const metrics = prometheusMetrics({ collectDefault: false });
    const text = await metrics.exposition();
    const exposed = types(text);
    for (const d of DINFER_METRICS) {
      expect(exposed.get(d.name), d.name).toBe(d.type);
      expect(text).toContain(`# HELP ${d.name} ${d.help}`);
    }
    expect(exposed.size).toBe(DINFER_METRICS.length);
  });

  it('follows the naming rules: dinfer_ or the known ai_ names, counters end in _total', () => {
    const known = new Set([
      'ai_inference_requests_total',
      'ai_inference_latency_seconds',
      'ai_active_workers',
    ]);
    const names = DINFER_METRICS.map((d) => d.name);
    expect(new Set(names).size).toBe(names.length);
    for (const d of DINFER_METRICS) {
      expect(d.name.startsWith('dinfer_') || known.has(d.name), d.name).toBe(true);
      if (d.type === 'counter') expect(d.name.endsWith('_total'), d.name).toBe(true);
      if (d.type === 'histogram') expect(d.buckets?.length, d.name).toBeGreaterThan(0);
      if (d.name.endsWith('_seconds')) expect(d.type, d.name).not.toBe('counter');
    }
    for (const name of [
      'dinfer_batch_size',
      'dinfer_queue_length',
      'dinfer_queue_wait_seconds',
      'dinfer_cache_hits_total',
      'dinfer_cache_misses_total',
      'dinfer_stage_compute_seconds',
      'dinfer_stage_transfer_seconds',
      'dinfer_stage_bytes_sent_total',
      'dinfer_stage_retries_total',
      'dinfer_worker_breaker_open',
      'dinfer_worker_cpu_ratio',
      'dinfer_worker_free_memory_bytes',
      'dinfer_degraded',
    ]) {
      expect(names).toContain(name);
    }
  });

  it('records counters, gauges and histograms with their labels', async () => {
    const metrics = prometheusMetrics({ collectDefault: false });
    metrics.increment('ai_inference_requests_total', { model: 'm', status: 'success' });
    metrics.increment('ai_inference_requests_total', { model: 'm', status: 'success' }, 2);
    metrics.increment('ai_inference_requests_total', { model: 'm', status: 'server_error' });
    metrics.set('ai_active_workers', {}, 3);
    metrics.set('dinfer_worker_cpu_ratio', { worker: 'w1' }, 0.25);
    const observations = [0.004, 0.02, 0.3, 7];
    for (const v of observations) metrics.observe('ai_inference_latency_seconds', { model: 'm' }, v);
    metrics.observe('dinfer_batch_size', { model: 'm' }, 4);
    const text = await metrics.exposition();
    expect(sample(text, 'ai_inference_requests_total{model="m",status="success"}')).toBe(3);
    expect(sample(text, 'ai_inference_requests_total{model="m",status="server_error"}')).toBe(1);
    expect(sample(text, 'ai_active_workers')).toBe(3);
    expect(sample(text, 'dinfer_worker_cpu_ratio{worker="w1"}')).toBe(0.25);
    expect(sample(text, 'ai_inference_latency_seconds_count{model="m"}')).toBe(observations.length);
    expect(sample(text, 'ai_inference_latency_seconds_sum{model="m"}')).toBeCloseTo(
      observations.reduce((a, b) => a + b, 0),
      9,
    );
    // Cumulative buckets: count of observations <= the bound, computed independently.
    for (const le of [0.005, 0.025, 0.5, 10]) {
      expect(sample(text, `ai_inference_latency_seconds_bucket{le="${le}",model="m"}`), `le ${le}`).toBe(
        observations.filter((v) => v <= le).length,
      );
    }
    expect(sample(text, 'dinfer_batch_size_bucket{le="4",model="m"}')).toBe(1);
    expect(sample(text, 'dinfer_batch_size_bucket{le="2",model="m"}')).toBe(0);
  });

  it('includes the default Node process metrics unless switched off', async () => {
    const withDefaults = await prometheusMetrics().exposition();
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
    ]) {
      expect(types(withDefaults).has(name), name).toBe(true);
    }
    const without = await prometheusMetrics({ collectDefault: false }).exposition();
    expect(types(without).has('process_cpu_user_seconds_total')).toBe(false);
  });

  it('creates unknown names on first use with the first call labels, and says so once', async () => {
    const logger = recordingLogger();
    const metrics = prometheusMetrics({ collectDefault: false, logger });
    metrics.increment('dinfer_custom_events_total', { kind: 'a' });
    metrics.increment('dinfer_custom_events_total', { kind: 'a' }, 4);
    metrics.observe('dinfer_custom_payload_bytes', {}, 5000);
    metrics.set('dinfer_custom_level', { zone: 'z' }, -2);
    const text = await metrics.exposition();
    expect(types(text).get('dinfer_custom_events_total')).toBe('counter');
    expect(types(text).get('dinfer_custom_payload_bytes')).toBe('histogram');
    expect(types(text).get('dinfer_custom_level')).toBe('gauge');
    expect(sample(text, 'dinfer_custom_events_total{kind="a"}')).toBe(5);
    expect(sample(text, 'dinfer_custom_level{zone="z"}')).toBe(-2);
    // Byte histograms get byte buckets: 5000 lands above 4 KiB, at or below 16 KiB.
    expect(sample(text, 'dinfer_custom_payload_bytes_bucket{le="4096"}')).toBe(0);
    expect(sample(text, 'dinfer_custom_payload_bytes_bucket{le="16384"}')).toBe(1);
    const lazy = logger.warnings.filter((w) => w.message.includes('created on first use'));
    expect(lazy.map((w) => w.context.metric)).toEqual([
      'dinfer_custom_events_total',
      'dinfer_custom_payload_bytes',
      'dinfer_custom_level',
    ]);
  });

  it('never throws: drops bad calls and trims undeclared labels, logging each kind once', async () => {
    const logger = recordingLogger();
    const metrics = prometheusMetrics({ collectDefault: false, logger });
    const calls = () => {
      metrics.increment('dinfer_stage_retries_total', { model: 'm', stage: '0', extra: 'x' });
      metrics.increment('dinfer_stage_retries_total', { model: 'm', stage: '0' }, -1);
      metrics.increment('dinfer_stage_retries_total', { model: 'm', stage: '0' }, Number.NaN);
      metrics.observe('dinfer_stage_retries_total', { model: 'm', stage: '0' }, 1);
      metrics.set('ai_inference_latency_seconds', { model: 'm' }, 1);
      metrics.increment('bad name!', {});
    };
    expect(calls).not.toThrow();
    expect(calls).not.toThrow();
    const text = await metrics.exposition();
    // Only the first call (its extra label trimmed) counted, twice.
    expect(sample(text, 'dinfer_stage_retries_total{model="m",stage="0"}')).toBe(2);
    expect(text).not.toContain('bad name');
    // One warning per kind of problem and metric, however often it recurs (-1 and NaN are one kind).
    expect(logger.warnings.map((w) => w.message)).toEqual([
      'label not declared for this metric: dropped',
      'counter increment dropped: not a finite non-negative number',
      'observe on a non-histogram dropped',
      'set on a non-gauge dropped',
      'invalid metric name; calls dropped',
    ]);
  });

  it('removes one series, leaving the others of the metric', async () => {
    const metrics = prometheusMetrics({ collectDefault: false });
    metrics.set('dinfer_worker_cpu_ratio', { worker: 'w1' }, 0.5);
    metrics.set('dinfer_worker_cpu_ratio', { worker: 'w2' }, 0.75);
    metrics.remove('dinfer_worker_cpu_ratio', { worker: 'w1' });
    // Unknown metrics, undeclared labels and absent series are no-ops, never throws.
    metrics.remove('dinfer_no_such_metric', { worker: 'w1' });
    metrics.remove('dinfer_worker_cpu_ratio', { other: 'x' });
    metrics.remove('dinfer_worker_cpu_ratio', { worker: 'w9' });
    const text = await metrics.exposition();
    expect(sample(text, 'dinfer_worker_cpu_ratio{worker="w1"}')).toBeUndefined();
    expect(sample(text, 'dinfer_worker_cpu_ratio{worker="w2"}')).toBe(0.75);
  });

  it('shares one registry between instances without double registration', async () => {
    const registry = new Registry();
    const a = prometheusMetrics({ registry });
    const b = prometheusMetrics({ registry });
    a.increment('dinfer_cache_hits_total', { model: 'm' });
    b.increment('dinfer_cache_hits_total', { model: 'm' });
    expect(sample(await registry.metrics(), 'dinfer_cache_hits_total{model="m"}')).toBe(2);
    expect(a.contentType).toContain('text/plain');
  });
});
