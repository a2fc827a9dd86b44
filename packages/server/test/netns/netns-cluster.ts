/**
 * A dinfer cluster on a {@link TestNetwork}: `dinfer master` in host `master` and each
 * `dinfer worker` in a host of its own (`worker1`, `worker2`, ...), all real processes of the
 * built CLI. The test process talks HTTP to the master across the bridge and reads the
 * cluster through `GET /api/status`.
 *
 * @module
 */
import type { SchedulerKind } from '../../src/cluster/scheduler-factory.js';
import type { TransportKind } from '../../src/cluster/transport-factory.js';
import type { StatusReport, StatusWorker } from '../../src/status/status-report.js';
import {
  type ChildHandle,
  CLI_MAIN,
  getJson,
  randomToken,
  requireBuiltCli,
  tempDir,
  waitFor,
} from '../e2e-helpers.js';
import { type DataPath, dataPathArgs } from './data-path.js';
import { createNetwork, type TestNetwork } from './network.js';
import type { LinkShape } from './shaping.js';

/** Ports inside the master's namespace (each namespace has its own port space). */
const HTTP_PORT = 8080;
const CLUSTER_PORT = 7070;

/** Options of {@link startNetnsCluster}. */
export interface NetnsClusterOptions {
  readonly modelJsonPath: string;
  readonly workers: number;
  readonly transport: TransportKind;
  readonly dataPath: DataPath;
  readonly scheduler: SchedulerKind;
  /** Explicit cut indices (`--cuts`); stages are planned from FLOPs estimates (`--no-profile`). */
  readonly cuts: readonly number[];
  /** `--heartbeat-timeout` in ms. */
  readonly heartbeatTimeoutMs: number;
  /** Shaping of every worker's link (the master's stays unshaped). */
  readonly workerLink?: LinkShape;
  /** More `dinfer master` flags. */
  readonly masterArgs?: readonly string[];
  /** Bound on the wait for every worker to hold a stage, in ms. Default 60 000. */
  readonly readyTimeoutMs?: number;
}

/** One worker of a {@link NetnsCluster}. */
export interface NetnsWorker {
  /** Its host in the network, and the `--name` it announces. */
  readonly name: string;
  readonly child: ChildHandle;
}

/** A running namespaced cluster. */
export interface NetnsCluster {
  readonly network: TestNetwork;
  readonly master: ChildHandle;
  readonly workers: readonly NetnsWorker[];
  /** The master's HTTP base URL, on its namespace address. */
  readonly httpUrl: string;
  /** `GET /api/status`. */
  status(): Promise<StatusReport>;
  /** The worker the master lists under `id`. */
  workerOf(status: StatusReport, id: string): NetnsWorker;
  /** Every process's output, for failure messages. */
  output(): string;
}

/** The `/api/status` entry of the worker called `name`, if the master lists it. */
export function listedWorker(status: StatusReport, name: string): StatusWorker | undefined {
  return status.workers.find((w) => w.name === name);
}

/** Creates the network, starts the master and the workers, and waits until each worker holds a stage. */
export async function startNetnsCluster(options: NetnsClusterOptions): Promise<NetnsCluster> {
  requireBuiltCli();
  const network = await createNetwork({
    hosts: [
      'master',
      ...workerNames(options.workers).map((name) =>
        options.workerLink ? { name, shape: options.workerLink } : name,
      ),
    ],
  });
  try {
    return await startOn(network, options);
  } catch (error) {
    await network.destroy().catch(() => {});
    throw error;
  }
}

function workerNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `worker${i + 1}`);
}

async function startOn(network: TestNetwork, options: NetnsClusterOptions): Promise<NetnsCluster> {
  const masterAddress = network.host('master').address;
  const token = randomToken();
  const master = network.spawn('master', 'master', process.execPath, [
    CLI_MAIN,
    'master',
    '--model',
    options.modelJsonPath,
    '--cuts',
    options.cuts.join(','),
    '--no-profile',
    '--scheduler',
    options.scheduler,
    '--transport',
    options.transport,
    '--http-host',
    '0.0.0.0',
    '--http-port',
    String(HTTP_PORT),
    '--cluster-host',
    '0.0.0.0',
    '--cluster-port',
    String(CLUSTER_PORT),
    '--token',
    token,
    '--min-workers',
    String(options.workers),
    '--heartbeat-timeout',
    String(options.heartbeatTimeoutMs),
    // Failure tests repeat inputs and must reach the workers each time.
    '--no-cache',
    ...dataPathArgs('master', options.dataPath),
    ...(options.masterArgs ?? []),
  ]);
  const workers: NetnsWorker[] = [];
  for (const name of workerNames(options.workers)) {
    const cacheDir = await tempDir(`dinfer-netns-${name}-`);
    const child = network.spawn(name, name, process.execPath, [
      CLI_MAIN,
      'worker',
      '--master',
      `${masterAddress}:${CLUSTER_PORT}`,
      '--token',
      token,
      '--transport',
      options.transport,
      '--name',
      name,
      '--cache-dir',
      cacheDir,
      ...dataPathArgs('worker', options.dataPath),
    ]);
    workers.push({ name, child });
  }
  const httpUrl = `http://${masterAddress}:${HTTP_PORT}`;
  const output = () =>
    [master, ...workers.map((w) => w.child)].map((c) => `--- ${c.name}\n${c.output()}`).join('\n');
  const status = async (): Promise<StatusReport> => {
    const answer = await getJson<StatusReport>(`${httpUrl}/api/status`);
    if (answer.status !== 200) throw new Error(`GET /api/status answered ${answer.status}`);
    return answer.body;
  };
  await waitFor(
    'every worker to hold a stage',
    async () => {
      if (master.hasExited()) throw new Error(`the master exited:\n${output()}`);
      const report = await status().catch(() => undefined);
      return (
        report?.ready &&
        report.workers.length === options.workers &&
        report.workers.every((w) => w.stages.length > 0)
      );
    },
    options.readyTimeoutMs ?? 60_000,
    100,
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; output:\n${output()}`);
  });
  return {
    network,
    master,
    workers,
    httpUrl,
    status,
    workerOf(report, id) {
      const name = report.workers.find((w) => w.id === id)?.name;
      const worker = workers.find((w) => w.name === name);
      if (!worker) throw new Error(`no worker process for worker ${id} (${name})`);
      return worker;
    },
    output,
  };
}
