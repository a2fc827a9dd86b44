/**
 * The control plane as an attacker on the network, or a web page the operator visits, sees
 * it: model control is off unless enabled and then needs the admin token; cross-site requests
 * and foreign Host headers (DNS rebinding) are refused; readiness says when the served model
 * is gone; status and metrics can be restricted; error answers name no absolute path.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  createCoordinator,
  DinferError,
  DinferErrorCode,
  type InferenceService,
  type ServedModel,
} from '@dinfer/core';
import { memoryTransport } from '@dinfer/core/testing';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createHttpApi, type HttpApiOptions } from '../src/http/api.js';
import type { RepositoryRoutesTarget } from '../src/http/repository-routes.js';
import { prometheusMetrics } from '../src/metrics/prometheus-metrics.js';
import { createModelRepository } from '../src/repository/model-repository.js';

const ADMIN = 'an-admin-token-of-32-characters!';

/** One model served while loaded, and a repository over it that records its calls. */
function fakeCluster(): { service: InferenceService; repository: RepositoryRoutesTarget; calls: string[] } {
  const calls: string[] = [];
  let loaded = true;
  const model: ServedModel = {
    name: 'mnist',
    version: '1',
    inputs: [{ name: 'x', shape: [null, 2], dtype: 'float32' }],
    outputs: [{ name: 'y', shape: [null, 2], dtype: 'float32' }],
  };
  const service: InferenceService = {
    models: () => (loaded ? [model] : []),
    health: () => ({ live: true, ready: true, degraded: false }),
    infer: async (name, inputs) => {
      if (!loaded) throw new DinferError(DinferErrorCode.UNKNOWN_MODEL, `unknown model "${name}"`);
      return {
        model: name,
        version: '1',
        outputs: [{ ...inputs[0]!, name: 'y' }],
        nodes: [],
        degraded: false,
        processingTimeMs: 0,
      };
    },
  };
  const repository: RepositoryRoutesTarget = {
    dir: undefined,
    index: async () => [{ name: 'mnist', version: '1', state: loaded ? 'READY' : 'UNAVAILABLE', reason: '' }],
    load: async (name) => {
      calls.push(`load ${name}`);
      loaded = true;
      return { name, version: '1', action: 'deployed' };
    },
    unload: async (name) => {
      calls.push(`unload ${name}`);
      loaded = false;
      return { name };
    },
  };
  return { service, repository, calls };
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

function api(options: HttpApiOptions = {}): { app: FastifyInstance; calls: string[] } {
  const cluster = fakeCluster();
  const app = createHttpApi(cluster.service, { repository: cluster.repository, ...options });
  apps.push(app);
  return { app, calls: cluster.calls };
}

async function answer(app: FastifyInstance, request: InjectOptions) {
  const res = await app.inject(request);
  const json = String(res.headers['content-type'] ?? '').startsWith('application/json');
  const body = json ? (JSON.parse(res.body) as Record<string, unknown>) : {};
  return { status: res.statusCode, body, headers: res.headers };
}

const unload: InjectOptions = { method: 'POST', url: '/v2/repository/models/mnist/unload' };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('model control', () => {
  it('is off by default: a bodiless POST cannot unload the served model', async () => {
    const { app, calls } = api();
    const res = await answer(app, unload);
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('DINFER_ERR_FORBIDDEN');
    expect(res.body.error).toMatch(/model control is off: start the master with --model-control/);
    expect(calls).toEqual([]);
    expect(
      (await answer(app, { method: 'POST', url: '/v2/models/mnist/infer', payload: infer })).status,
    ).toBe(200);
  });

  it('needs the admin token once enabled, compared in full', async () => {
    const { app, calls } = api({ modelControl: true, adminToken: ADMIN });
    const none = await answer(app, unload);
    expect(none.status).toBe(401);
    expect(none.body.code).toBe('DINFER_ERR_AUTH_FAILED');
    expect(none.headers['www-authenticate']).toBe('Bearer realm="dinfer"');
    for (const wrong of [ADMIN.slice(0, -1), `${ADMIN}x`, 'x'.repeat(ADMIN.length), ADMIN.toUpperCase()]) {
      expect((await answer(app, { ...unload, headers: bearer(wrong) })).status, wrong).toBe(401);
    }
    expect((await answer(app, { ...unload, headers: { authorization: ADMIN } })).status).toBe(401);
    expect(calls).toEqual([]);
    const ok = await answer(app, { ...unload, headers: bearer(ADMIN) });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ name: 'mnist', state: 'UNAVAILABLE' });
    const back = await answer(app, {
      method: 'POST',
      url: '/v2/repository/models/mnist/load',
      headers: bearer(ADMIN),
    });
    expect(back.status).toBe(200);
    expect(calls).toEqual(['unload mnist', 'load mnist']);
  });

  it('cannot be enabled without an admin token, nor with a short one', () => {
    const cluster = fakeCluster();
    expect(() =>
      createHttpApi(cluster.service, { repository: cluster.repository, modelControl: true }),
    ).toThrow(/model control needs an admin token/);
    expect(() =>
      createHttpApi(cluster.service, {
        repository: cluster.repository,
        modelControl: true,
        adminToken: 'short',
      }),
    ).toThrow(/admin token is 5 characters; use at least 16.*openssl rand -base64 32/);
  });
});

const infer = { inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] };

describe('cross-site requests', () => {
  it('refuses a web page on another site, even with the token (a browser may hold none)', async () => {
    const { app, calls } = api({ modelControl: true, adminToken: ADMIN });
    const fromPage = [
      { origin: 'http://evil.example' },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site', origin: 'http://localhost:3000' },
    ];
    for (const headers of fromPage) {
      const res = await answer(app, { ...unload, headers: { ...headers, ...bearer(ADMIN) } });
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(res.body.code).toBe('DINFER_ERR_FORBIDDEN');
      expect(res.body.error).toMatch(/cross-site POST refused/);
      // Inference too: a page must not spend the cluster's compute.
      const inference = await answer(app, {
        method: 'POST',
        url: '/v2/models/mnist/infer',
        headers,
        payload: infer,
      });
      expect(inference.status, JSON.stringify(headers)).toBe(403);
    }
    expect(calls).toEqual([]);
  });

  it('answers the same origin, and clients that are no browser', async () => {
    const { app } = api();
    const same = { origin: 'http://localhost:80', 'sec-fetch-site': 'same-origin' };
    const res = await answer(app, {
      method: 'POST',
      url: '/v2/models/mnist/infer',
      headers: same,
      payload: infer,
    });
    expect(res.status).toBe(200);
    expect(
      (await answer(app, { method: 'POST', url: '/v2/models/mnist/infer', payload: infer })).status,
    ).toBe(200);
    // Reading is not refused: a link from another site to the status page still opens it.
    const page = await answer(app, {
      method: 'GET',
      url: '/api/status',
      headers: { 'sec-fetch-site': 'cross-site' },
    });
    expect(page.status).toBe(200);
  });
});

describe('the Host header', () => {
  it('refuses names the master does not serve (DNS rebinding)', async () => {
    const { app } = api();
    for (const host of ['evil.example', 'evil.example:80', 'localhost.evil.example']) {
      const res = await answer(app, { method: 'GET', url: '/api/status', headers: { host } });
      expect(res.status, host).toBe(403);
      expect(res.body.code).toBe('DINFER_ERR_FORBIDDEN');
      expect(res.body.error).toMatch(/Host ".*" is not a name this server answers to.*--allowed-hosts/);
    }
    for (const host of ['localhost', 'localhost:8080', '127.0.0.1:8080', '[::1]:8080', 'app.localhost']) {
      expect((await answer(app, { method: 'GET', url: '/api/status', headers: { host } })).status, host).toBe(
        200,
      );
    }
  });

  it('accepts the configured names, with subdomain patterns, and any with *', async () => {
    const { app } = api({ allowedHosts: ['dinfer.example.com', '*.internal'] });
    for (const host of ['dinfer.example.com:8080', 'gpu.internal', 'a.b.internal']) {
      expect((await answer(app, { method: 'GET', url: '/api/status', headers: { host } })).status, host).toBe(
        200,
      );
    }
    expect(
      (await answer(app, { method: 'GET', url: '/api/status', headers: { host: 'internal.evil' } })).status,
    ).toBe(403);
    const open = api({ allowedHosts: ['*'] }).app;
    expect(
      (await answer(open, { method: 'GET', url: '/api/status', headers: { host: 'any.example' } })).status,
    ).toBe(200);
  });
});

describe('readiness', () => {
  it('is false while the model that was served is not', async () => {
    const { app } = api({ modelControl: true, adminToken: ADMIN });
    expect((await answer(app, { method: 'GET', url: '/v2/health/ready' })).status).toBe(200);
    expect((await answer(app, { ...unload, headers: bearer(ADMIN) })).status).toBe(200);
    const ready = await answer(app, { method: 'GET', url: '/v2/health/ready' });
    expect(ready.status).toBe(503);
    expect(ready.body.error).toMatch(/no model is served/);
    await answer(app, { method: 'POST', url: '/v2/repository/models/mnist/load', headers: bearer(ADMIN) });
    expect((await answer(app, { method: 'GET', url: '/v2/health/ready' })).status).toBe(200);
  });

  it('is false while one of several served models has gone', async () => {
    let served = ['a', 'b'];
    const spec = (name: string): ServedModel => ({ name, version: '1', inputs: [], outputs: [] });
    const app = createHttpApi({
      models: () => served.map(spec),
      health: () => ({ live: true, ready: true, degraded: false }),
      infer: () => Promise.reject(new Error('unused')),
    });
    apps.push(app);
    expect((await answer(app, { method: 'GET', url: '/v2/health/ready' })).status).toBe(200);
    served = ['a'];
    const ready = await answer(app, { method: 'GET', url: '/v2/health/ready' });
    expect(ready.status).toBe(503);
    expect(ready.body.error).toMatch(/model "b" is not served/);
  });
});

describe('status and metrics', () => {
  const metrics = prometheusMetrics({ collectDefault: false });
  const reads = ['/api/status', '/metrics', '/v2/repository/index'];

  it('are open by default', async () => {
    const { app } = api({ metrics });
    for (const url of reads) expect((await answer(app, { method: 'GET', url })).status, url).toBe(200);
  });

  it('need the admin token with statusAccess token', async () => {
    const { app } = api({ metrics, statusAccess: 'token', adminToken: ADMIN });
    for (const url of reads) {
      const res = await answer(app, { method: 'GET', url });
      expect(res.status, url).toBe(401);
      expect(res.body.code).toBe('DINFER_ERR_AUTH_FAILED');
      expect((await answer(app, { method: 'GET', url, headers: bearer(ADMIN) })).status, url).toBe(200);
    }
    // Health and inference stay open.
    expect((await answer(app, { method: 'GET', url: '/v2/health/ready' })).status).toBe(200);
  });

  it('answer loopback clients (or the token) only with statusAccess loopback', async () => {
    const { app } = api({ metrics, statusAccess: 'loopback', adminToken: ADMIN });
    for (const url of reads) {
      expect((await answer(app, { method: 'GET', url, remoteAddress: '127.0.0.1' })).status, url).toBe(200);
      expect((await answer(app, { method: 'GET', url, remoteAddress: '::1' })).status, url).toBe(200);
      const remote = await answer(app, { method: 'GET', url, remoteAddress: '10.1.2.3' });
      expect(remote.status, url).toBe(401);
      expect(remote.body.error).toMatch(/only to loopback clients or with the admin token/);
      const withToken = await answer(app, {
        method: 'GET',
        url,
        remoteAddress: '10.1.2.3',
        headers: bearer(ADMIN),
      });
      expect(withToken.status, url).toBe(200);
    }
  });
});

describe('error answers', () => {
  let root = '';
  let app: FastifyInstance;
  const coordinator = createCoordinator({
    transport: memoryTransport(),
    token: 'control-plane-token',
    listen: 'memory:0',
    heartbeat: { enabled: false },
    pingIntervalMs: 0,
  });

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'dinfer-paths-'));
    await mkdir(path.join(root, 'broken', '1'), { recursive: true });
    await writeFile(path.join(root, 'broken', '1', 'model.json'), '{"modelTopology": 5}');
    await coordinator.start();
    const repository = createModelRepository({ coordinator, dir: root });
    app = createHttpApi(coordinator, { repository, modelControl: true, adminToken: ADMIN });
  });

  afterAll(async () => {
    await app?.close();
    await coordinator.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('name no absolute path of the machine', async () => {
    const answers = [
      await app.inject({ method: 'GET', url: '/v2/repository/index' }),
      await app.inject({ method: 'POST', url: '/v2/repository/models/ghost/load', headers: bearer(ADMIN) }),
      await app.inject({ method: 'POST', url: '/v2/repository/models/broken/load', headers: bearer(ADMIN) }),
      await app.inject({
        method: 'POST',
        url: '/v2/repository/models/broken/load',
        headers: bearer(ADMIN),
        payload: { parameters: { version: '7' } },
      }),
    ];
    for (const res of answers) {
      expect(res.body).not.toContain(root);
      expect(res.body).not.toContain(tmpdir());
      expect(res.body).not.toMatch(/(^|[\s"'(])\/[\w.-]+\/[\w.-]+/);
    }
    expect(answers[0]!.statusCode).toBe(200);
    expect(answers[1]!.statusCode).toBe(404);
    expect(answers[2]!.statusCode).toBe(422);
    expect(answers[3]!.statusCode).toBe(404);
    // What the operator needs is still said, relative to the repository.
    expect(answers[1]!.json().error).toMatch(
      /unknown model "ghost": not in the model repository and not loaded/,
    );
    expect(answers[0]!.body).toMatch(/broken/);
  });
});

describe('redactPaths', () => {
  it('shows paths under the repository relative to it and other absolute paths by their last segment', async () => {
    const { redactPaths } = await import('../src/http/redact-paths.js');
    const roots = [{ dir: '/srv/models', name: 'the model repository' }];
    const cases: [string, string][] = [
      ['no model.json in /srv/models/mnist/3', 'no model.json in mnist/3'],
      ['model repository not found: /srv/models', 'model repository not found: the model repository'],
      [
        "ENOENT: no such file or directory, open '/home/op/weights/group1-shard1of1.bin'",
        "ENOENT: no such file or directory, open '<path>/group1-shard1of1.bin'",
      ],
      ['cannot fetch file:///var/lib/dinfer/m/model.json', 'cannot fetch <path>/model.json'],
      ['C:\\Users\\op\\models\\model.json is missing', '<path>/model.json is missing'],
      ['use POST /v2/models/m/infer instead', 'use POST /v2/models/m/infer instead'],
      ['see http://example.com/a/b for help', 'see http://example.com/a/b for help'],
      ['a ratio 1/2 and/or 3/4', 'a ratio 1/2 and/or 3/4'],
    ];
    for (const [text, want] of cases) expect(redactPaths(text, roots), text).toBe(want);
  });
});
