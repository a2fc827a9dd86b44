/**
 * Helpers of the end-to-end tests: a master in the test process, real worker processes
 * (`node dist/cli/main.js worker ...`) on loopback, bounded waits and small HTTP clients.
 * Every child process is tracked so `killAllChildren()` (called from `afterEach`/`afterAll`)
 * leaves nothing behind, even when a test fails.
 *
 * @module
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach } from 'vitest';
import { type MasterHandle, type MasterOptions, startMaster } from '../src/cluster/master.js';
import type { TransportKind } from '../src/cluster/transport-factory.js';

/** The repository root. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The built `dinfer` executable (run `tsc -p tsconfig.build.json` in packages/server first). */
export const CLI_MAIN = path.join(REPO_ROOT, 'packages/server/dist/cli/main.js');

/** `dinfer master` flags for a master on loopback with free ports (HTTP and cluster). */
export const LOOPBACK_MASTER_ARGS: readonly string[] = [
  '--http-host',
  '127.0.0.1',
  '--http-port',
  '0',
  '--cluster-host',
  '127.0.0.1',
  '--cluster-port',
  '0',
];

/** Both cluster transports. */
export const TRANSPORTS: readonly TransportKind[] = ['tcp', 'socketio'];

/** A worker (or any `dinfer` command) running as a child process. */
export interface ChildHandle {
  readonly name: string;
  readonly process: ChildProcess;
  /** Every stdout and stderr line so far. */
  readonly lines: string[];
  /** The stdout lines so far. */
  readonly stdout: string[];
  /** The stderr lines so far. */
  readonly stderr: string[];
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once the process has exited. */
  hasExited(): boolean;
  /** The output so far, one string. */
  output(): string;
}

const children = new Set<ChildHandle>();
const tempDirs = new Set<string>();

/** Throws a clear error when the built CLI is missing. */
export function requireBuiltCli(): void {
  if (!existsSync(CLI_MAIN)) {
    throw new Error(`${CLI_MAIN} is missing: build packages/server (npx tsc -p tsconfig.build.json)`);
  }
}

/** Starts `node dist/cli/main.js <args>` as a tracked child process. */
export function spawnCli(name: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): ChildHandle {
  requireBuiltCli();
  return spawnTracked(name, process.execPath, [CLI_MAIN, ...args], env);
}

/**
 * Starts `command <args>` as a tracked child process (stopped by {@link killAllChildren}),
 * collecting its stdout and stderr lines.
 */
export function spawnTracked(
  name: string,
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): ChildHandle {
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, DINFER_DEBUG: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const stdout: string[] = [];
  const stderr: string[] = [];
  for (const [stream, own] of [
    [child.stdout, stdout],
    [child.stderr, stderr],
  ] as const) {
    if (stream)
      createInterface({ input: stream }).on('line', (line) => {
        lines.push(line);
        own.push(line);
      });
  }
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.once('error', () => {
      done = true;
      resolve({ code: -1, signal: null });
    });
  });
  const handle: ChildHandle = {
    name,
    process: child,
    lines,
    stdout,
    stderr,
    exited,
    hasExited: () => done,
    output: () => lines.join('\n'),
  };
  children.add(handle);
  void exited.then(() => children.delete(handle));
  return handle;
}

/** How a `dinfer` command that ran to its end exited, and what it wrote on each stream. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node dist/cli/main.js <args>` to its end (from the repository root, on wasm). */
export function runBuiltCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  if (!existsSync(CLI_MAIN)) {
    throw new Error(`${CLI_MAIN} is missing: build packages/server (npx tsc -p tsconfig.build.json)`);
  }
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI_MAIN, ...args],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, DINFER_BACKEND: 'wasm', DINFER_DEBUG: '', ...env },
        maxBuffer: 16 << 20,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Options of {@link spawnWorker}. */
export interface SpawnWorkerOptions {
  /** The master's cluster address. */
  readonly master: string;
  readonly token: string;
  /** A built-in transport, or the path of a transport module (relative to the repository root). */
  readonly transport: TransportKind | string;
  readonly name: string;
  /** Shard cache directory; default: a fresh temporary one. */
  readonly cacheDir?: string;
  readonly extraArgs?: readonly string[];
}

/** A worker child process and its shard cache directory. */
export interface WorkerChild extends ChildHandle {
  readonly cacheDir: string;
}

/** Starts `dinfer worker --master ... --token ...` as a real child process. */
export async function spawnWorker(options: SpawnWorkerOptions): Promise<WorkerChild> {
  const cacheDir = options.cacheDir ?? (await tempDir(`dinfer-e2e-${options.name}-`));
  const handle = spawnCli(options.name, [
    'worker',
    '--master',
    options.master,
    '--token',
    options.token,
    '--transport',
    options.transport,
    '--name',
    options.name,
    '--cache-dir',
    cacheDir,
    ...(options.extraArgs ?? []),
  ]);
  return { ...handle, cacheDir };
}

/** Sends `signal` (default SIGKILL) to every tracked child still running and waits for them. */
export async function killAllChildren(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  const running = [...children];
  for (const child of running) {
    if (child.hasExited()) continue;
    // A stopped process ignores SIGTERM until continued; SIGKILL needs no help but SIGCONT is harmless.
    child.process.kill('SIGCONT');
    child.process.kill(signal);
  }
  await Promise.all(running.map((c) => withTimeout(c.exited, 10_000, `${c.name} to exit`).catch(() => {})));
}

/** Removes every temporary directory made by {@link tempDir}. */
export async function removeTempDirs(): Promise<void> {
  const dirs = [...tempDirs];
  tempDirs.clear();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
}

/** A fresh temporary directory, removed by {@link removeTempDirs}. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Every file below `dir` (recursively); empty when `dir` does not exist. */
export async function listFiles(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/** A random cluster token. */
export function randomToken(): string {
  return randomBytes(18).toString('base64url');
}

/** Options of {@link startMasterInProcess}: loopback, ports 0 and no profiling by default. */
export type InProcessMasterOptions = Omit<MasterOptions, 'token'> & { readonly token?: string };

/** A master in the test process, with the token its workers need. */
export interface InProcessMaster extends MasterHandle {
  readonly token: string;
}

/** Starts a master in this process on loopback with free ports and a random token. */
export async function startMasterInProcess(options: InProcessMasterOptions): Promise<InProcessMaster> {
  const token = options.token ?? randomToken();
  const master = await startMaster({
    httpHost: '127.0.0.1',
    httpPort: 0,
    clusterHost: '127.0.0.1',
    clusterPort: 0,
    profile: false,
    // Failure tests repeat inputs and must reach the workers each time: no result cache.
    cacheMaxBytes: 0,
    ...options,
    token,
  });
  // Not a spread: that would freeze the handle's getters (its cuts are known once planned).
  return Object.assign(master, { token });
}

/** Starts `count` workers for `master`, named `<prefix>-1..count`. */
export function spawnWorkers(
  master: InProcessMaster,
  transport: TransportKind,
  count: number,
  prefix = 'worker',
): Promise<WorkerChild[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      spawnWorker({
        master: master.clusterAddress,
        token: master.token,
        transport,
        name: `${prefix}-${i + 1}`,
      }),
    ),
  );
}

/** Rejects with a clear message when `promise` does not settle within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` until it returns a value other than `undefined`/`false`; bounded by `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** An HTTP answer: status and parsed JSON body (or the raw text when not JSON). */
export interface JsonAnswer<T = unknown> {
  readonly status: number;
  readonly body: T;
}

/** POSTs `body` as JSON and parses the answer; bounded by `timeoutMs`. */
export async function postJson<T = unknown>(
  url: string,
  body: unknown,
  timeoutMs = 60_000,
): Promise<JsonAnswer<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: response.status, body: (await parseBody(response)) as T };
}

/** GETs `url`; bounded by `timeoutMs`. */
export async function getJson<T = unknown>(url: string, timeoutMs = 10_000): Promise<JsonAnswer<T>> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: response.status, body: (await parseBody(response)) as T };
}

async function parseBody(response: Response): Promise<unknown> {
  const text = await response.text();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** The body of a v2 inference answer (JSON outputs). */
export interface V2Answer {
  readonly model_name: string;
  readonly parameters: { readonly degraded: boolean; readonly processing_time_ms: number };
  readonly outputs: readonly { name: string; shape: number[]; datatype: string; data: number[] }[];
}

/** Sends one FP32 tensor to `POST /v2/models/:model/infer` and returns the answer. */
export async function v2Infer(
  baseUrl: string,
  model: string,
  input: { readonly name: string; readonly shape: readonly number[]; readonly data: Float32Array },
  timeoutMs = 60_000,
): Promise<JsonAnswer<V2Answer>> {
  return postJson<V2Answer>(
    `${baseUrl}/v2/models/${encodeURIComponent(model)}/infer`,
    { inputs: [{ name: input.name, shape: input.shape, datatype: 'FP32', data: Array.from(input.data) }] },
    timeoutMs,
  );
}

/** The body of a `POST /api/infer` answer. */
export interface SimpleAnswer {
  readonly predictions: readonly { top: readonly { index: number; score: number }[] }[];
  readonly nodes: readonly { stage: number; worker: string; ms: number }[];
  readonly degraded: boolean;
}

/** Reshapes a flat row-major array into nested arrays of `shape` (for `POST /api/infer`). */
export function nest(data: Float32Array, shape: readonly number[]): unknown {
  let offset = 0;
  const build = (dim: number): unknown => {
    if (dim === shape.length) return data[offset++];
    return Array.from({ length: shape[dim]! }, () => build(dim + 1));
  };
  return build(0);
}

/** Largest `|a - e| / max(|e|, floor)` over the elements (throws on a length mismatch). */
export function maxRelativeError(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  floor = 1e-3,
): number {
  if (actual.length !== expected.length) {
    throw new Error(`length mismatch: ${actual.length} values, expected ${expected.length}`);
  }
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    worst = Math.max(worst, Math.abs(actual[i]! - e) / Math.max(floor, Math.abs(e)));
  }
  return worst;
}

/** Indices of the `k` largest values of `values[offset, offset + size)`, best first. */
export function topIndices(values: ArrayLike<number>, offset: number, size: number, k: number): number[] {
  const indices = Array.from({ length: size }, (_, i) => i);
  indices.sort((a, b) => values[offset + b]! - values[offset + a]!);
  return indices.slice(0, k);
}

/** Sum of the samples of `name` in a Prometheus exposition whose labels include every pair of `labels`. */
export function metricValue(exposition: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    const match = /^[^{\s]+(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const text = match[1] ?? '';
    if (Object.entries(labels).every(([k, v]) => text.includes(`${k}="${v}"`))) total += Number(match[2]);
  }
  return total;
}

/**
 * Registers the cleanup of an end-to-end test file: after each test, the master `take()`
 * hands over is stopped and every child process killed; after the file, the temporary
 * directories go too.
 */
export function cleanUpAfterEachTest(take: () => MasterHandle | undefined): void {
  afterEach(async () => {
    await stopMaster(take());
    await killAllChildren();
  });
  afterAll(async () => {
    await killAllChildren();
    await removeTempDirs();
  });
}

/** Stops a master started by {@link startMasterInProcess}, bounded, ignoring errors. */
export async function stopMaster(master: MasterHandle | undefined): Promise<void> {
  if (!master) return;
  await withTimeout(master.stop(), 15_000, 'the master to stop').catch(() => {});
}
