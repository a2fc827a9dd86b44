/**
 * End to end, failures on real (namespaced) hosts: `dinfer master` and each `dinfer worker`
 * run in their own network namespace with their own address, joined by a bridge (see
 * `netns/network.ts`). A middle-stage worker is SIGKILLed mid-stream, a worker's link is
 * taken down and brought back, and a worker's link is made ten times slower than the others;
 * every answer is checked against the whole model's local `predict`. Each test runs once per
 * transport of `TRANSPORTS` and data path of `DATA_PATHS` (`netns/data-path.ts`).
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { TransportKind } from '../src/cluster/transport-factory.js';
import type { StatusReport } from '../src/status/status-report.js';
import {
  getJson,
  killAllChildren,
  maxRelativeError,
  metricValue,
  removeTempDirs,
  v2Infer,
  waitFor,
} from './e2e-helpers.js';
import { loadMnistReference, MNIST_RTOL, type MnistReference } from './mnist-reference.js';
import { runLoad } from './netns/bounded-load.js';
import { DATA_PATHS, type DataPath } from './netns/data-path.js';
import { describeNetns } from './netns/describe-netns.js';
import { type NetnsCluster, type NetnsClusterOptions, startNetnsCluster } from './netns/netns-cluster.js';

/** The cluster transports the tests run over (Socket.IO passes too; one more entry runs it). */
const TRANSPORTS: readonly TransportKind[] = ['tcp'];
/**
 * conv1 | pool1 + conv2 | pool2 ... predictions: the middle stage holds the heaviest layer, so
 * the load scheduler gives it the fourth worker as a second replica.
 */
const CUTS = [1, 3];

/** The test digits and the whole model's answers to them. */
let mnist: MnistReference;
let cluster: NetnsCluster | undefined;

beforeAll(async () => {
  mnist = await loadMnistReference(200);
});

afterEach(async () => {
  await killAllChildren();
  await cluster?.network.destroy();
  cluster = undefined;
});

afterAll(async () => {
  await killAllChildren();
  await removeTempDirs();
});

/** A 4-worker, 3-stage cluster of real processes in namespaces; `cluster` for the cleanup. */
async function start(
  transport: TransportKind,
  dataPath: DataPath,
  options: Partial<NetnsClusterOptions> = {},
): Promise<NetnsCluster> {
  cluster = await startNetnsCluster({
    modelJsonPath: mnist.modelJsonPath,
    workers: 4,
    transport,
    dataPath,
    scheduler: 'load',
    cuts: CUTS,
    heartbeatTimeoutMs: 30_000,
    ...options,
  });
  return cluster;
}

/** One digit through `POST /v2/models/:name/infer`; throws unless it matches the local answer. */
async function inferDigit(c: NetnsCluster, digit: number): Promise<{ degraded: boolean }> {
  const answer = await v2Infer(c.httpUrl, 'mnist_cnn', {
    name: mnist.inputName,
    shape: [1, 28, 28, 1],
    data: mnist.pixels(digit),
  });
  if (answer.status !== 200) throw new Error(`answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  const error = maxRelativeError(answer.body.outputs[0]!.data, mnist.expected(digit), 1e-6);
  if (!(error < MNIST_RTOL))
    throw new Error(`digit ${digit}: relative error ${error} against the local predict`);
  return { degraded: answer.body.parameters.degraded };
}

/** The two replicas of the middle stage, from `/api/status`. */
function middleReplicas(status: StatusReport): [string, string] {
  const replicas = status.stages.find((s) => s.index === 1)?.replicas ?? [];
  expect(replicas, JSON.stringify(status.stages)).toHaveLength(2);
  return [replicas[0]!, replicas[1]!];
}

/** Stage calls each worker (by id) has completed, from `/api/status`. */
function completedById(status: StatusReport): Map<string, number> {
  return new Map(status.workers.map((w) => [w.id, w.completed]));
}

async function retries(c: NetnsCluster): Promise<number> {
  const answer = await getJson<string>(`${c.httpUrl}/metrics`);
  return metricValue(String(answer.body), 'dinfer_stage_retries_total');
}

for (const transport of TRANSPORTS) {
  for (const dataPath of DATA_PATHS) {
    describeNetns(`cluster failures on namespaced hosts (${transport}, ${dataPath} data path)`, () => {
      it('a middle-stage worker SIGKILLed mid-stream: every request is answered as predict answers it', async () => {
        const c = await start(transport, dataPath);
        const initial = await c.status();
        const [victimId, survivorId] = middleReplicas(initial);
        const victim = c.workerOf(initial, victimId);
        const retriesBefore = await retries(c);
        const total = 300;
        const load = runLoad({
          total,
          concurrency: 16,
          send: (i) => inferDigit(c, i),
          deadlineMs: 90_000,
        });
        // Mid-stream: answers have come back, and the victim has served and holds requests now.
        await waitFor(
          'the victim to hold requests in flight',
          async () => {
            if (load.succeeded() < 50) return false;
            const victimNow = (await c.status()).workers.find((w) => w.id === victimId);
            return victimNow !== undefined && victimNow.completed > 0 && victimNow.inflight > 0;
          },
          30_000,
          5,
        );
        victim.child.process.kill('SIGKILL');
        const answeredAtKill = load.succeeded();
        const result = await load.done;
        expect(result.failures).toEqual([]);
        expect(result.succeeded).toBe(total);
        expect(answeredAtKill).toBeLessThan(total);
        const after = await waitFor('the killed worker to be removed', async () => {
          const status = await c.status();
          return status.workers.every((w) => w.id !== victimId) && status;
        });
        expect(after.stages.find((s) => s.index === 1)?.replicas).toEqual([survivorId]);
        // The surviving replica serves the middle stage: nothing runs on the master.
        expect((await inferDigit(c, 7)).degraded).toBe(false);
        console.info(
          `[${transport}, ${dataPath}] SIGKILL after ${answeredAtKill}/${total} answers; ` +
            `${(await retries(c)) - retriesBefore} stage calls retried`,
        );
      });

      it('a worker whose link goes down is removed, requests keep being answered, and it rejoins and serves once the link is back', async () => {
        const heartbeatTimeoutMs = 1500;
        const c = await start(transport, dataPath, { heartbeatTimeoutMs });
        const initial = await c.status();
        const [victimId] = middleReplicas(initial);
        const victim = c.workerOf(initial, victimId);
        const others = initial.workers.map((w) => w.id).filter((id) => id !== victimId);
        const stop = new AbortController();
        const load = runLoad({
          total: 5000,
          concurrency: 4,
          send: (i) => inferDigit(c, i),
          stop: stop.signal,
          deadlineMs: 90_000,
        });
        try {
          await waitFor('the first answers', () => load.succeeded() >= 20, 20_000);
          await c.network.linkDown(victim.name);
          const downAt = Date.now();
          await waitFor(
            'the cut-off worker to be removed',
            async () => (await c.status()).workers.every((w) => w.id !== victimId),
            heartbeatTimeoutMs + 15_000,
            25,
          );
          const removedMs = Date.now() - downAt;
          const answeredAtRemoval = load.succeeded();
          await waitFor(
            'answers while the link is down',
            () => load.succeeded() >= answeredAtRemoval + 20,
            20_000,
          );
          await c.network.linkUp(victim.name);
          const upAt = Date.now();
          const rejoined = await waitFor(
            'the worker to rejoin and hold a stage again',
            async () =>
              (await c.status()).workers.find(
                (w) => w.name === victim.name && w.id !== victimId && w.stages.length > 0,
              ),
            30_000,
            25,
          );
          const rejoinedMs = Date.now() - upAt;
          await waitFor(
            'the rejoined worker to serve',
            async () => ((await c.status()).workers.find((w) => w.id === rejoined.id)?.completed ?? 0) > 0,
            20_000,
            25,
          );
          stop.abort();
          const result = await load.done;
          expect(result.failures).toEqual([]);
          expect(result.succeeded).toBe(result.sent);
          const final = await c.status();
          for (const id of others) expect(final.workers.map((w) => w.id)).toContain(id);
          expect(c.master.output()).toMatch(
            new RegExp(`worker ${victimId} left: (heartbeat timeout|\\d+ health pings failed)`),
          );
          console.info(
            `[${transport}, ${dataPath}] link down: removed after ${removedMs} ms (heartbeat timeout ${heartbeatTimeoutMs} ms); ` +
              `link up: rejoined as ${rejoined.id} after ${rejoinedMs} ms; ${result.succeeded} requests, all answered`,
          );
        } finally {
          stop.abort();
          await load.done;
        }
      });

      it('the load scheduler moves traffic off a worker whose link is ten times slower than the others', async () => {
        const fastMbit = 5;
        const c = await start(transport, dataPath, { workerLink: { rateMbit: fastMbit } });
        const initial = await c.status();
        const [fastId, slowId] = middleReplicas(initial);
        const slow = c.workerOf(initial, slowId);
        const send = (i: number) => inferDigit(c, i);
        const warmUp = await runLoad({ total: 50, concurrency: 8, send, deadlineMs: 60_000 }).done;
        expect(warmUp.failures).toEqual([]);
        await c.network.shape(slow.name, { rateMbit: fastMbit / 10 });
        const before = completedById(await c.status());
        const total = 150;
        const result = await runLoad({ total, concurrency: 16, send, deadlineMs: 90_000 }).done;
        expect(result.failures).toEqual([]);
        expect(result.succeeded).toBe(total);
        const after = completedById(await c.status());
        // Stage calls (batches of requests) each middle-stage replica served during the load.
        const served = (id: string) => (after.get(id) ?? 0) - (before.get(id) ?? 0);
        console.info(
          `[${transport}, ${dataPath}] ${total} requests in ${(result.elapsedMs / 1000).toFixed(1)} s: middle-stage calls ` +
            `over ${fastMbit / 10} Mbit/s ${served(slowId)}, over ${fastMbit} Mbit/s ${served(fastId)}`,
        );
        expect(served(fastId)).toBeGreaterThan(0);
        // Round-robin would give each replica half; the load scheduler leaves the slow link under a third.
        expect(served(slowId)).toBeLessThan(served(fastId) / 2);
      });
    });
  }
}
