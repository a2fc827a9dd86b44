/**
 * The child processes of `pnpm bench:pipeline` (workers and plain predict processes): forked
 * with an IPC channel, they report `{ type: 'ready' }` once set up and then answer commands
 * with typed reports.
 *
 * @module
 */
import { type ChildProcess, fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';

/** What every child may report: `failed` ends its life. */
export interface ChildFailure {
  readonly type: 'failed';
  readonly error: string;
}

/** A forked child: sends commands, waits for reports. */
export interface BenchChild<Command, Report extends { readonly type: string }> {
  readonly name: string;
  readonly process: ChildProcess;
  /** Sends `command` and resolves with the next report of type `type`. */
  ask<T extends Report['type']>(command: Command, type: T): Promise<Extract<Report, { type: T }>>;
  /** Sends `command` without waiting for an answer. */
  tell(command: Command): void;
}

/** Options of {@link forkBenchChild}. */
export interface ForkOptions {
  readonly name: string;
  readonly env: Record<string, string>;
  /** Where the child is registered at once, so it is stopped whatever happens next. */
  readonly children: ChildProcess[];
  readonly readyTimeoutMs: number;
  /** Called if the child exits before it is stopped. */
  readonly onExit: (error: Error) => void;
}

/** Forks `script` and resolves with the child and its `ready` report. */
export function forkBenchChild<Command, Report extends { readonly type: string }>(
  script: string,
  options: ForkOptions,
): Promise<{ child: BenchChild<Command, Report>; ready: Extract<Report, { type: 'ready' }> }> {
  const { name } = options;
  const child = fork(script, [], {
    env: { ...process.env, ...options.env, DINFER_BENCH_NAME: name },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  options.children.push(child);
  const waiters: { type: string; resolve: (report: Report) => void }[] = [];
  const handle: BenchChild<Command, Report> = {
    name,
    process: child,
    ask: (command, type) =>
      new Promise((resolve) => {
        waiters.push({ type, resolve: resolve as (report: Report) => void });
        child.send(command as object);
      }),
    tell: (command) => {
      child.send(command as object);
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} was not ready in ${options.readyTimeoutMs} ms`)),
      options.readyTimeoutMs,
    );
    child.on('message', (message: Report | ChildFailure) => {
      if (message.type === 'failed') {
        clearTimeout(timer);
        reject(new Error(`${name} failed: ${(message as ChildFailure).error}`));
        return;
      }
      if (message.type === 'ready') {
        clearTimeout(timer);
        resolve({ child: handle, ready: message as Extract<Report, { type: 'ready' }> });
        return;
      }
      const index = waiters.findIndex((w) => w.type === message.type);
      if (index >= 0) waiters.splice(index, 1)[0]!.resolve(message as Report);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const error = new Error(`${name} exited (code ${code}, signal ${signal})`);
      reject(error);
      options.onExit(error);
    });
  });
}

/**
 * Stops `child`: `ask` asks it to leave (disconnect, a signal); it is killed if it has not
 * exited 5 s later.
 */
export function stopChild(child: ChildProcess, ask: () => void): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    ask();
  });
}

/** Stops the children: disconnects their IPC (they exit on it), kills those that linger. */
export async function stopBenchChildren(children: readonly ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map((child) =>
      stopChild(child, () => {
        if (child.connected) child.disconnect();
        else child.kill('SIGTERM');
      }),
    ),
  );
}

/** This process' CPU time (user + system, every thread) in ms. */
export function processCpuMs(): number {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1000;
}

/** Cumulative times of a process, in ms. */
export interface ProcessTimes {
  /** CPU time, user + system. */
  readonly cpu: number;
  /** Wall time its event loop was busy (computing, or runnable but waiting for a core). */
  readonly active: number;
  /** Wall time its event loop had nothing to do (waiting for input). */
  readonly idle: number;
}

/** This process' {@link ProcessTimes} since it started. */
export function processTimes(): ProcessTimes {
  const loop = performance.eventLoopUtilization();
  return { cpu: processCpuMs(), active: loop.active, idle: loop.idle };
}

/** `b - a`, field by field. */
export function timesBetween(a: ProcessTimes, b: ProcessTimes): ProcessTimes {
  return { cpu: b.cpu - a.cpu, active: b.active - a.active, idle: b.idle - a.idle };
}
