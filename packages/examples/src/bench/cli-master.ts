/**
 * The reference master, `dinfer master` from the built `@dinfer/server` CLI, run as a child
 * process of `pnpm bench:pipeline`: the bench drives it through its HTTP API only (KServe v2
 * infer, readiness, and `GET /metrics` for the master's own CPU time and stage timings).
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { stopChild } from './bench-child.js';
import { dinferBin, freePort } from './dinfer-cli.js';

/** Options of {@link startCliMaster}. */
export interface CliMasterOptions {
  /** model.json to serve. */
  readonly model: string;
  readonly name: string;
  readonly cuts: readonly number[];
  readonly token: string;
  /** Extra `dinfer master` flags (e.g. `--max-batch-size 1`). */
  readonly flags?: readonly string[];
  /** Node options of the master process (e.g. `--cpu-prof`). */
  readonly nodeArgs?: readonly string[];
}

/** Prometheus samples by `name{labels}` (labels as the exposition writes them). */
export type MetricSamples = ReadonlyMap<string, number>;

/** A running `dinfer master`. */
export interface CliMaster {
  readonly url: string;
  /** Address workers dial. */
  readonly clusterAddress: string;
  readonly process: ChildProcess;
  /** Resolves once `GET /v2/health/ready` answers 200. */
  waitReady(timeoutMs: number): Promise<void>;
  /** The master's metrics now. */
  scrape(): Promise<MetricSamples>;
  /** Stops it (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
}

/** Parses a Prometheus text exposition into samples (comments and NaN skipped). */
export function parseMetrics(text: string): MetricSamples {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const value = Number(line.slice(space + 1));
    if (Number.isFinite(value)) samples.set(line.slice(0, space), value);
  }
  return samples;
}

/** Starts `dinfer master` on free loopback ports and resolves once it listens. */
export async function startCliMaster(options: CliMasterOptions): Promise<CliMaster> {
  const cli = dinferBin();
  const [httpPort, clusterPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${httpPort}`;
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeArgs ?? []),
      cli,
      'master',
      ...['--model', options.model, '--name', options.name, '--cuts', options.cuts.join(',')],
      ...['--http-host', '127.0.0.1', '--http-port', String(httpPort)],
      ...['--cluster-host', '127.0.0.1', '--cluster-port', String(clusterPort), '--token', options.token],
      ...(options.flags ?? []),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) =>
      reject(new Error(`dinfer master exited (code ${code}, signal ${signal}):\n${stderr}`)),
    );
  });
  exited.catch(() => {});
  const get = async (route: string): Promise<Response | undefined> => {
    try {
      return await fetch(`${url}${route}`);
    } catch {
      return undefined;
    }
  };
  const poll = async (route: string, ok: (r: Response) => boolean, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const response = await Promise.race([get(route), exited]);
      if (response !== undefined && ok(response)) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`dinfer master: ${route} not ready in ${timeoutMs} ms:\n${stderr}`);
  };
  // Listening (HTTP answers at once; readiness comes with the workers).
  await poll('/v2/health/live', (r) => r.status === 200, 120_000);
  return {
    url,
    clusterAddress: `127.0.0.1:${clusterPort}`,
    process: child,
    waitReady: (timeoutMs) => poll('/v2/health/ready', (r) => r.status === 200, timeoutMs),
    async scrape() {
      const response = await fetch(`${url}/metrics`);
      return parseMetrics(await response.text());
    },
    stop: () => stopChild(child, () => child.kill('SIGTERM')),
  };
}
