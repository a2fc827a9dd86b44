/**
 * What `dinfer master` and `dinfer up` print while a cluster forms: progress bars for shard
 * shipping in a terminal, plain lines otherwise; and the structured logger.
 *
 * @module
 */
import type { CoordinatorEvent, Logger } from '@dinfer/core';
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { pino } from 'pino';
import type { CliIo } from './common.js';
import { formatBytes } from './common.js';

/** Structured JSON logs on stderr at `level` (the `logLevel` setting). */
export function createLogger(level: string): Logger & pino.Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination(2));
}

/** Renders coordinator events for people. */
export interface ClusterReporter {
  onEvent(event: CoordinatorEvent): void;
  /** Stops the progress bars (before printing the final summary). */
  stop(): void;
}

/** Creates a reporter: bars when stderr is a terminal, one line per milestone otherwise. */
export function createClusterReporter(io: CliIo, tty = Boolean(process.stderr.isTTY)): ClusterReporter {
  const multibar = tty
    ? new MultiBar(
        {
          format: ' {stage} -> {worker} [{bar}] {percentage}% {sent}/{size}',
          hideCursor: true,
          clearOnComplete: false,
        },
        Presets.shades_classic,
      )
    : undefined;
  const bars = new Map<string, SingleBar>();
  return {
    onEvent(event) {
      switch (event.type) {
        case 'worker.joined':
          io.err(`worker ${event.workerId} (${event.name}) joined`);
          break;
        case 'worker.left':
          io.err(`worker ${event.workerId} left: ${event.reason}`);
          break;
        case 'shard.progress': {
          const key = `${event.workerId}/${event.stage}`;
          if (multibar) {
            let bar = bars.get(key);
            const payload = {
              stage: event.stage,
              worker: event.workerId,
              sent: formatBytes(event.sentBytes),
              // Not `total`: cli-progress reserves that name for the bar's raw total.
              size: formatBytes(event.totalBytes),
            };
            if (!bar) {
              bar = multibar.create(event.totalBytes, 0, payload);
              bars.set(key, bar);
            }
            bar.update(event.sentBytes, payload);
          } else if (event.sentBytes === event.totalBytes && !bars.has(key)) {
            bars.set(key, undefined as unknown as SingleBar);
            io.err(`shipped ${event.stage} to ${event.workerId} (${formatBytes(event.totalBytes)})`);
          }
          break;
        }
        case 'stage.loaded':
          if (!multibar) io.err(`${event.stage} loaded on ${event.workerId} in ${event.ms} ms`);
          break;
        case 'stage.failed':
          io.err(`loading ${event.stage} on ${event.workerId} failed: ${event.error}`);
          break;
        case 'placement.failed':
          io.err(`placing ${event.model} version ${event.version} failed: ${event.error}`);
          break;
        case 'version.planned':
          io.err(
            `planned ${event.model} version ${event.version} for the workers: cuts [${event.cuts.join(', ')}]`,
          );
          break;
        case 'degraded':
          io.err(
            event.active
              ? `degraded: no worker serves ${event.model} stage ${event.stage}; the master runs it`
              : `${event.model} stage ${event.stage} is served by a worker again`,
          );
          break;
        case 'ready':
          multibar?.stop();
          break;
      }
    },
    stop() {
      multibar?.stop();
    },
  };
}

/** Resolves on the first SIGINT or SIGTERM. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const handler = (signal: NodeJS.Signals) => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
      resolve(signal);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}

/** The lines printed once a master is ready: URLs and a copy-paste request. */
export function readyBanner(
  httpUrl: string,
  modelName: string,
  inputShape: readonly (number | null)[],
): string {
  const dims = inputShape.slice(1).map((d) => d ?? 1);
  const pyShape = dims.join(',');
  return [
    `ready: serving model "${modelName}"`,
    `  HTTP API      ${httpUrl}/api/infer`,
    `  KServe v2     ${httpUrl}/v2/models/${modelName}/infer`,
    `  health        ${httpUrl}/v2/health/ready`,
    'try it (one example of zeros):',
    `  node -e 'const s=[${pyShape}];const z=(d)=>d<s.length?Array.from({length:s[d]},()=>z(d+1)):0;` +
      `fetch("${httpUrl}/api/infer",{method:"POST",headers:{"content-type":"application/json"},` +
      `body:JSON.stringify({input:z(0)})}).then(r=>r.json()).then(j=>console.log(JSON.stringify(j.predictions[0].top)))'`,
    `  curl -s ${httpUrl}/v2/health/ready -o /dev/null -w '%{http_code}\\n'`,
  ].join('\n');
}
