/**
 * End to end, failures: real worker processes on loopback (both transports) are killed,
 * stopped, refused or impersonated, and every request still gets the whole model's answer.
 */

import { createSocket } from 'node:dgram';
import type { CoordinatorEvent, WorkerLoad } from '@dinfer/core';
import { encodeHeartbeat } from '@dinfer/core/node';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TransportKind } from '../src/cluster/transport-factory.js';
import {
  cleanUpAfterEachTest,
  getJson,
  type InProcessMaster,
  type InProcessMasterOptions,
  listFiles,
  maxRelativeError,
  metricValue,
  nest,
  postJson,
  type SimpleAnswer,
  spawnWorker,
  spawnWorkers,
  startMasterInProcess,
  TRANSPORTS,
  topIndices,
  v2Infer,
  type WorkerChild,
  waitFor,
  withTimeout,
} from './e2e-helpers.js';
import { loadMnistReference, MNIST_RTOL, type MnistReference } from './mnist-reference.js';

const DIGITS = 200;

/** The test digits and the whole model's answers to them. */
let mnist: MnistReference;
let master: InProcessMaster | undefined;

beforeAll(async () => {
  mnist = await loadMnistReference(DIGITS);
});

cleanUpAfterEachTest(() => {
  const current = master;
  master = undefined;
  return current;
});

/** A master for the MNIST CNN (2 stages) and `workers` worker processes, ready. */
async function cluster(
  transport: TransportKind,
  workers: number,
  options: Partial<InProcessMasterOptions> = {},
): Promise<{ master: InProcessMaster; children: WorkerChild[]; events: CoordinatorEvent[] }> {
  const events: CoordinatorEvent[] = [];
  master = await startMasterInProcess({
    model: mnist.modelJsonPath,
    transport,
    stages: 2,
    onEvent: (event) => events.push(event),
    ...options,
  });
  const children = await spawnWorkers(master, transport, workers);
  await withTimeout(
    master.ready,
    30_000,
    `the cluster to be ready; worker output:\n${children.map((c) => c.output()).join('\n')}`,
  );
  await everyWorkerHoldsAStage(master, workers);
  return { master, children, events };
}

/** Waits until `count` workers have joined and each has a stage loaded (replicas included). */
async function everyWorkerHoldsAStage(master: InProcessMaster, count: number): Promise<void> {
  await waitFor(`${count} workers holding stages`, () => {
    const { workers } = master.coordinator.status();
    return workers.length === count && workers.every((w) => w.stages.length > 0);
  });
}

/** The child process of the worker the master knows as `id`. */
function childOf(master: InProcessMaster, children: readonly WorkerChild[], id: string): WorkerChild {
  const name = master.coordinator.status().workers.find((w) => w.id === id)?.name;
  const child = children.find((c) => c.name === name);
  if (!child) throw new Error(`no child process for worker ${id} (${name})`);
  return child;
}

/** One digit through `POST /v2/models/:name/infer`; checks the answer against the local one. */
async function inferDigit(master: InProcessMaster, digit: number): Promise<{ degraded: boolean }> {
  const answer = await v2Infer(master.httpUrl, master.modelName, {
    name: master.coordinator.models()[0]!.inputs[0]!.name,
    shape: [1, 28, 28, 1],
    data: mnist.pixels(digit),
  });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  const output = answer.body.outputs[0]!.data;
  expect(maxRelativeError(output, mnist.expected(digit), 1e-6)).toBeLessThan(MNIST_RTOL);
  return { degraded: answer.body.parameters.degraded };
}

/** One digit through `POST /api/infer`; checks its top-5 against the local answer. */
async function inferSimple(master: InProcessMaster, digit: number): Promise<SimpleAnswer> {
  const expected = mnist.expected(digit);
  const answer = await postJson<SimpleAnswer>(`${master.httpUrl}/api/infer`, {
    input: nest(mnist.pixels(digit), [28, 28, 1]),
  });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  const top = answer.body.predictions[0]!.top;
  expect(top.map((t) => t.index)).toEqual(topIndices(expected, 0, 10, 5));
  const want = top.map((t) => expected[t.index]!);
  expect(
    maxRelativeError(
      top.map((t) => t.score),
      want,
      1e-6,
    ),
  ).toBeLessThan(MNIST_RTOL);
  return answer.body;
}

async function retries(master: InProcessMaster): Promise<number> {
  return metricValue(await master.metrics.exposition(), 'dinfer_stage_retries_total');
}

describe.each(TRANSPORTS)('cluster failures over %s', (transport) => {
  it('a worker killed in the middle of 200 concurrent requests: every answer is right', async () => {
    const { master, children } = await cluster(transport, 3);
    const replicated = master.coordinator.status().stages.find((s) => s.replicas.length >= 2);
    expect(replicated, 'a stage with two replicas').toBeDefined();
    const victimId = replicated!.replicas[0]!;
    const victim = childOf(master, children, victimId);
    const retriesBefore = await retries(master);

    let completed = 0;
    let completedAfterKill = 0;
    let killed = false;
    const requests = Array.from({ length: 200 }, (_, i) =>
      inferDigit(master, i).then(() => {
        completed++;
        if (killed) completedAfterKill++;
      }),
    );
    await waitFor('a quarter of the requests to complete', () => completed >= 50, 30_000, 5);
    victim.process.kill('SIGKILL');
    killed = true;
    const completedAtKill = completed;
    await withTimeout(Promise.all(requests), 60_000, 'the 200 requests');
    expect(completed).toBe(200);
    expect(completedAfterKill).toBeGreaterThan(0);
    await waitFor('the killed worker to be removed', () =>
      master.coordinator.status().workers.every((w) => w.id !== victimId),
    );
    const retried = (await retries(master)) - retriesBefore;
    console.info(
      `[${transport}] SIGKILL after ${completedAtKill}/200 answers; ${completedAfterKill} answered afterwards; ` +
        `${retried} stage calls retried`,
    );
    // The surviving replica took over: nothing ran on the master.
    const after = await inferSimple(master, 7);
    expect(after.degraded).toBe(false);
  });

  it('the only worker of a stage killed: requests still succeed and the stage is re-placed', async () => {
    const { master, children } = await cluster(transport, 2);
    const stage1 = master.coordinator.status().stages.find((s) => s.index === 1)!;
    expect(stage1.replicas).toHaveLength(1);
    const victimId = stage1.replicas[0]!;
    const survivorId = master.coordinator.status().workers.find((w) => w.id !== victimId)!.id;
    childOf(master, children, victimId).process.kill('SIGKILL');
    const killedAt = Date.now();
    let degradedAnswers = 0;
    let i = 0;
    // Until the survivor serves both stages, every request must still succeed (degraded or not).
    await waitFor(
      'the survivor to serve both stages',
      async () => {
        const answer = await inferSimple(master, i++);
        if (answer.degraded) {
          degradedAnswers++;
          expect(answer.nodes.some((n) => n.worker === 'master')).toBe(true);
        }
        expect((await getJson(`${master.httpUrl}/v2/health/ready`)).status).toBe(200);
        const stages = master.coordinator.status().stages;
        return stages.every((s) => s.replicas.includes(survivorId)) && !answer.degraded;
      },
      20_000,
      20,
    );
    const replacedMs = Date.now() - killedAt;
    const after = await inferSimple(master, 3);
    expect(after.degraded).toBe(false);
    expect(after.nodes.map((n) => n.worker)).toEqual([survivorId, survivorId]);
    expect((await getJson(`${master.httpUrl}/v2/health/ready`)).status).toBe(200);
    console.info(
      `[${transport}] stage 1 re-placed on ${survivorId} ${replacedMs} ms after SIGKILL; ` +
        `${i} requests meanwhile, ${degradedAnswers} degraded`,
    );
  });

  it('a worker with a wrong token is refused and never receives a shard', async () => {
    master = await startMasterInProcess({ model: mnist.modelJsonPath, transport, stages: 2, minWorkers: 1 });
    const intruder = await spawnWorker({
      master: master.clusterAddress,
      token: 'not-the-cluster-token',
      transport,
      name: 'intruder',
    });
    const refused = await waitFor(
      'the intruder to exit or report AUTH_FAILED',
      () => intruder.hasExited() || /AUTH_FAILED/.test(intruder.output()),
      20_000,
    );
    expect(refused).toBe(true);
    const exit = intruder.hasExited() ? await intruder.exited : undefined;
    if (exit) expect(exit.code).not.toBe(0);
    expect(intruder.output()).toMatch(/AUTH_FAILED|auth/i);
    expect(master.coordinator.status().workers).toHaveLength(0);
    expect(master.coordinator.health().ready).toBe(false);

    // Control: genuine workers joining the same master do receive shards; the intruder still has none.
    const genuine = await spawnWorkers(master, transport, 2);
    await withTimeout(master.ready, 30_000, 'the genuine workers');
    await everyWorkerHoldsAStage(master, 2);
    await inferDigit(master, 1);
    for (const worker of genuine) expect((await listFiles(worker.cacheDir)).length).toBeGreaterThan(0);
    expect(await listFiles(intruder.cacheDir)).toEqual([]);
    expect(
      master.coordinator
        .status()
        .workers.map((w) => w.name)
        .sort(),
    ).toEqual(['worker-1', 'worker-2']);
    const auth = intruder.lines.find((l) => /AUTH_FAILED|auth/i.test(l)) ?? '';
    console.info(
      `[${transport}] intruder ${exit ? `exited with code ${exit.code}` : 'still running'}: ${auth}`,
    );
  });

  it('a stopped worker (SIGSTOP) is removed after the heartbeat timeout and requests still succeed', async () => {
    const timeoutMs = 1500;
    const { master, children, events } = await cluster(transport, 3, { heartbeatTimeoutMs: timeoutMs });
    // Healthy workers must not time out: let a few heartbeat timeouts pass first.
    await new Promise((resolve) => setTimeout(resolve, 2 * timeoutMs));
    expect(events.filter((e) => e.type === 'worker.left')).toEqual([]);
    const replicated = master.coordinator.status().stages.find((s) => s.replicas.length >= 2)!;
    const victimId = replicated.replicas[0]!;
    const victim = childOf(master, children, victimId);
    const retriesBefore = await retries(master);
    victim.process.kill('SIGSTOP');
    const stoppedAt = Date.now();
    try {
      // Requests sent now may be routed to the stopped worker; they must still succeed.
      const during = Array.from({ length: 20 }, (_, i) => inferDigit(master, i));
      const left = await waitFor(
        'the stopped worker to be removed',
        () => events.find((e) => e.type === 'worker.left' && e.workerId === victimId),
        timeoutMs + 3000,
        10,
      );
      const detectedMs = Date.now() - stoppedAt;
      expect(left.type === 'worker.left' && left.reason).toMatch(/heartbeat/);
      await withTimeout(Promise.all(during), 30_000, 'the requests sent while the worker was stopped');
      for (let i = 0; i < 10; i++) await inferDigit(master, 100 + i);
      expect(
        events.filter((e) => e.type === 'worker.left').map((e) => e.type === 'worker.left' && e.workerId),
      ).toEqual([victimId]);
      console.info(
        `[${transport}] heartbeat timeout ${timeoutMs} ms: SIGSTOPped worker removed after ${detectedMs} ms; ` +
          `${(await retries(master)) - retriesBefore} stage calls retried`,
      );
    } finally {
      victim.process.kill('SIGCONT');
    }
    // Continued, it notices the closed link and joins again under a new id.
    await waitFor(
      'the continued worker to rejoin',
      () => master.coordinator.status().workers.some((w) => w.name === victim.name && w.id !== victimId),
      20_000,
    );
  });

  it('forged, unsigned and token-signed UDP heartbeats claiming a real worker are ignored', async () => {
    const { master } = await cluster(transport, 2);
    const target = await waitFor(
      'a heartbeat from a worker',
      () => master.coordinator.status().workers.find((w) => w.heartbeatAgeMs !== null),
      10_000,
    );
    const port = Number(master.clusterAddress.slice(master.clusterAddress.lastIndexOf(':') + 1));
    const absurd: WorkerLoad = { cpu: 0.999, freeMemoryBytes: 1, queueLength: 123_456, latencyMs: 98_765 };
    const payload = (seq: number) => ({
      v: 1 as const,
      workerId: target.id,
      boot: `forged${seq}`,
      bootAt: Date.now(),
      seq,
      sentAt: Date.now(),
      load: absurd,
    });
    const socket = createSocket('udp4');
    const send = (packet: Buffer) =>
      new Promise<void>((resolve, reject) =>
        socket.send(packet, port, '127.0.0.1', (error) => (error ? reject(error) : resolve())),
      );
    const counter = async (result: string) =>
      metricValue(await master.metrics.exposition(), 'dinfer_heartbeat_received_total', { result });
    try {
      const forgedBefore = await counter('forged');
      const unsignedBefore = await counter('unsigned');
      await send(encodeHeartbeat(payload(1), 'a-wrong-token'));
      await send(encodeHeartbeat(payload(2)));
      await waitFor(
        'the forged beat to be rejected',
        async () => (await counter('forged')) > forgedBefore,
        5000,
        10,
      );
      await waitFor(
        'the unsigned beat to be rejected',
        async () => (await counter('unsigned')) > unsignedBefore,
        5000,
        10,
      );
      const seen = master.coordinator.status().workers.find((w) => w.id === target.id)!;
      expect(seen.queueLength).not.toBe(absurd.queueLength);
      expect(seen.cpu).not.toBe(absurd.cpu);

      // What another worker of the cluster could send: the packet signed with the cluster
      // token itself. Beats speak for a worker only with its own connection's session key, so
      // this is refused as forged too, and the worker's load stays its own.
      const forgedByToken = await counter('forged');
      await send(encodeHeartbeat(payload(3), master.token));
      await waitFor(
        'the token-signed beat to be rejected',
        async () => (await counter('forged')) > forgedByToken,
        5000,
        10,
      );
      const after = master.coordinator.status().workers.find((w) => w.id === target.id)!;
      expect(after.queueLength).not.toBe(absurd.queueLength);
      // Control: the worker's own (session-signed) beats are still taken after all that.
      const acceptedBefore = await counter('accepted');
      await waitFor(
        "the worker's own beats to keep arriving",
        async () => (await counter('accepted')) > acceptedBefore,
        10_000,
        20,
      );
      expect(master.coordinator.status().workers.some((w) => w.id === target.id)).toBe(true);
    } finally {
      socket.close();
    }
    await inferDigit(master, 5);
  });
});
