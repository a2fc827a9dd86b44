/**
 * The exposition against the real Prometheus tools: `promtool check metrics` lints it, and a
 * real Prometheus server scrapes a live HTTP API and answers a PromQL query about it.
 * Both binaries come from Debian's `prometheus` package (.ci/run installs it); without them
 * these tests fail rather than skip.
 */

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { localInferenceService } from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpApi, type PrometheusMetrics, prometheusMetrics } from '../src/index.js';

const SUCCESSES = 5;
const CLIENT_ERRORS = 2;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Runs `promtool check metrics` on `text`; rejects with a clear message when promtool is missing. */
function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', ['check', 'metrics'], { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error('promtool not found: install the Debian package "prometheus" (.ci/run does)'));
        return;
      }
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
    child.stdin?.end(text);
  });
}

describe('Prometheus exposition', () => {
  let app: FastifyInstance;
  let metrics: PrometheusMetrics;
  let baseUrl: string;

  beforeAll(async () => {
    await initBackend();
    const input = tf.input({ shape: [4], name: 'x' });
    const out = tf.layers.dense({ units: 3, activation: 'softmax' }).apply(input) as tf.SymbolicTensor;
    const service = localInferenceService(tf.model({ inputs: input, outputs: out }), {
      name: 'tiny',
      version: '1',
    });
    metrics = prometheusMetrics();
    app = createHttpApi(service, { metrics, status: undefined });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    baseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    for (let i = 0; i < SUCCESSES; i++) {
      const res = await fetch(`${baseUrl}/api/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ input: [i, 1, 2, 3] }),
      });
      expect(res.status).toBe(200);
    }
    for (let i = 0; i < CLIENT_ERRORS; i++) {
      const res = await fetch(`${baseUrl}/api/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ input: [1] }),
      });
      expect(res.status).toBe(400);
    }
    // What a master also reports: coordinator, transport, heartbeat and decorator samples.
    metrics.set('ai_active_workers', {}, 2);
    metrics.observe('dinfer_stage_compute_seconds', { model: 'tiny', stage: '0' }, 0.012);
    metrics.observe('dinfer_stage_transfer_seconds', { model: 'tiny', stage: '1' }, 0.002);
    metrics.increment('dinfer_stage_bytes_sent_total', { model: 'tiny', stage: '0' }, 4096);
    metrics.increment('dinfer_transport_requests_total', { transport: 'tcp', outcome: 'ok' });
    metrics.increment('dinfer_heartbeat_received_total', { result: 'accepted' });
    metrics.set('dinfer_worker_breaker_open', { worker: 'w1' }, 0);
    metrics.set('dinfer_worker_cpu_ratio', { worker: 'w1' }, 0.4);
    metrics.observe('dinfer_batch_size', { model: 'tiny' }, 3);
    metrics.increment('dinfer_cache_hits_total', { model: 'tiny' });
    metrics.set('dinfer_degraded', {}, 0);
  });

  afterAll(async () => {
    await app?.close();
  });

  it('passes promtool check metrics', async () => {
    const res = await fetch(`${baseUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('ai_inference_requests_total{model="tiny",status="success"} 5');
    expect(text).toContain('process_cpu_user_seconds_total');
    // Not one finding, Node's own process metrics included.
    const full = await promtoolCheck(text);
    expect(full.output).toBe('');
    expect(full.code).toBe(0);
    const ours = text
      .split('\n')
      .filter((line) => !/^(# (HELP|TYPE) )?(process_|nodejs_)/.test(line))
      .join('\n');
    expect(ours).toContain('# TYPE dinfer_stage_compute_seconds histogram');
    const strict = await promtoolCheck(ours);
    expect(strict.output).toBe('');
    expect(strict.code).toBe(0);
  });

  it('leaves out the *_total gauges of Node, whose counts the per-type gauges still carry', async () => {
    const text = await metrics.exposition();
    expect(text).not.toMatch(/^nodejs_active_\w+_total/m);
    const counts: Record<string, () => number> = {
      nodejs_active_handles: () =>
        (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length,
      nodejs_active_resources: () => process.getActiveResourcesInfo().length,
    };
    for (const [name, count] of Object.entries(counts)) {
      expect(metrics.registry.getSingleMetric(`${name}_total`), name).toBeUndefined();
      const before = count();
      const { values } = await metrics.registry.getSingleMetric(name)!.get();
      const after = count();
      const sum = values.reduce((total, v) => total + v.value, 0);
      expect(sum, name).toBeGreaterThan(0);
      expect(sum, name).toBeGreaterThanOrEqual(Math.min(before, after));
      expect(sum, name).toBeLessThanOrEqual(Math.max(before, after));
    }
  });

  it('promtool catches a broken exposition (the check is not a no-op)', async () => {
    const { code, output } = await promtoolCheck('# TYPE requests counter\nrequests 1\n');
    expect(code).not.toBe(0);
    expect(output).toMatch(/_total|help/i);
  });

  it('is scraped by a real Prometheus server and queried through its HTTP API', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dinfer-prom-'));
    const promPort = await freePort();
    const target = new URL(baseUrl).host;
    const config = path.join(dir, 'prometheus.yml');
    await writeFile(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 1s',
        'scrape_configs:',
        '  - job_name: dinfer',
        `    static_configs: [{ targets: ['${target}'] }]`,
        '',
      ].join('\n'),
    );
    let server: ChildProcess | undefined;
    let log = '';
    try {
      server = spawn(
        'prometheus',
        [
          `--config.file=${config}`,
          `--storage.tsdb.path=${path.join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${promPort}`,
          '--log.level=warn',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const spawned = server;
      const exited = new Promise<never>((_, reject) => {
        spawned.once('error', (error) =>
          reject(new Error(`cannot start prometheus (install Debian's "prometheus"): ${error.message}`)),
        );
        spawned.once('exit', (code) => reject(new Error(`prometheus exited with ${code}: ${log}`)));
      });
      exited.catch(() => {});
      for (const stream of [server.stdout, server.stderr])
        stream?.on('data', (chunk) => (log += String(chunk)));

      const query = `ai_inference_requests_total{job="dinfer",model="tiny",status="success"}`;
      const deadline = Date.now() + 25_000;
      let value: number | undefined;
      while (value === undefined) {
        if (Date.now() > deadline) throw new Error(`no scrape within 25 s; prometheus said: ${log}`);
        await Promise.race([new Promise((r) => setTimeout(r, 300)), exited]);
        const res = await fetch(
          `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(query)}`,
        ).catch(() => undefined);
        if (res?.status !== 200) continue;
        const body = (await res.json()) as {
          status: string;
          data: { result: { metric: Record<string, string>; value: [number, string] }[] };
        };
        expect(body.status).toBe('success');
        const first = body.data.result[0];
        if (first) {
          expect(first.metric.instance).toBe(target);
          value = Number(first.value[1]);
        }
      }
      expect(value).toBe(SUCCESSES);
      const up = await fetch(
        `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent('up{job="dinfer"}')}`,
      );
      const upBody = (await up.json()) as { data: { result: { value: [number, string] }[] } };
      expect(upBody.data.result[0]?.value[1]).toBe('1');
    } finally {
      if (server && server.exitCode === null && server.signalCode === null) {
        const gone = new Promise((r) => server?.once('exit', r));
        server.kill('SIGTERM');
        const timer = setTimeout(() => server?.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    }
  }, 40_000);
});
