/**
 * A master with a heartbeat receiver watches only the workers that say they send heartbeats:
 * a worker without a sender (a custom worker, a browser tab) stays joined past the heartbeat
 * timeout, kept by health pings, while a worker that said it sends and went silent is removed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { HeartbeatSenderFactory } from '../src/heartbeats.js';
import type { Coordinator, CoordinatorEvent } from '../src/master/coordinator.js';
import { createCoordinator } from '../src/master/coordinator.js';
import { createHeartbeatReceiver } from '../src/node/heartbeat/heartbeat-receiver.js';
import { createWorker, type DinferWorker } from '../src/worker/worker.js';
import { streamTransport } from './fixtures/stream-transport.js';

const TOKEN = 'heartbeat-optional-token';
const caps = { backend: 'wasm' as const, cores: 1, memoryBytes: 1024 ** 3, score: 1 };
let coordinator: Coordinator | undefined;
const workers: DinferWorker[] = [];

afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop().catch(() => {});
  await coordinator?.stop();
  coordinator = undefined;
});

/** A heartbeat sender that never sends: a worker that said it would and then went silent. */
const silentSender: HeartbeatSenderFactory = () => ({ start() {}, async stop() {} });

describe('heartbeats are optional per worker', () => {
  it('removes a silent worker that promised heartbeats, keeps one that sends none', async () => {
    const events: CoordinatorEvent[] = [];
    coordinator = createCoordinator({
      transport: streamTransport(),
      token: TOKEN,
      listen: '127.0.0.1:0',
      heartbeat: {
        receiver: createHeartbeatReceiver,
        host: '127.0.0.1',
        port: 0,
        timeoutMs: 600,
        intervalMs: 200,
      },
      pingIntervalMs: 100,
      onEvent: (e) => events.push(e),
    });
    const { address } = await coordinator.start();
    for (const [name, heartbeats] of [
      ['pings-only', undefined],
      ['silent', silentSender],
    ] as const) {
      const worker = createWorker({
        transport: streamTransport(),
        token: TOKEN,
        master: address,
        name,
        capabilities: caps,
        reconnect: false,
        ...(heartbeats === undefined ? {} : { heartbeats }),
      });
      await worker.start();
      workers.push(worker);
    }
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const names = coordinator.status().workers.map((w) => w.name);
    expect(names).toEqual(['pings-only']);
    const left = events.filter((e) => e.type === 'worker.left');
    expect(left).toHaveLength(1);
    expect(JSON.stringify(left[0])).toMatch(/heartbeat timeout/);
  });
});
