/**
 * The transport and the scheduler that core's README shows ("Writing a transport", "Writing a
 * scheduler") are run through the compliance suites exactly as printed: the snippets named
 * `// file: ...` are written out and imported.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Scheduler, Transport } from '@dinfer/core';
import { frameCodecGarbage, schedulerSuite, sendRawSocketBytes, transportSuite } from '@dinfer/core/testing';
import { afterAll, describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const readme = readFileSync(resolve(here, '../../core/README.md'), 'utf8');
const runDir = join(here, '.readme-run');
rmSync(runDir, { recursive: true, force: true });
mkdirSync(runDir, { recursive: true });
const named = new Map<string, string>();
for (const [, code] of readme.matchAll(/```ts\n([\s\S]*?)```/g)) {
  const name = /^\/\/ file: ([\w-]+\.ts)\n/.exec(code ?? '')?.[1];
  if (name !== undefined) named.set(name, code ?? '');
}
for (const [name, code] of named) writeFileSync(join(runDir, name), code);

const load = async <T>(file: string, exported: string): Promise<() => T> => {
  expect(named.has(file), `core's README has a snippet "// file: ${file}"`).toBe(true);
  const module = (await import(pathToFileURL(join(runDir, file)).href)) as Record<string, unknown>;
  return module[exported] as () => T;
};
const socketTransport = (await load<Transport>('socket-transport.ts', 'socketTransport')) as (
  maxFrameBytes?: number,
) => Transport;
const roomiestScheduler = await load<Scheduler>('roomiest-scheduler.ts', 'roomiestScheduler');

afterAll(() => rmSync(runDir, { recursive: true, force: true }));

describe("core README's transport", () => {
  const report = transportSuite(
    it,
    { create: ({ maxFrameBytes }) => socketTransport(maxFrameBytes), listenAddress: () => '127.0.0.1:0' },
    {
      name: 'readme socket',
      sendRawGarbage: (address, kind) => sendRawSocketBytes(address, frameCodecGarbage(kind)),
      report: () => {},
    },
  );
  it('registers every test of the suite', () => {
    expect(report.skipped).toEqual([]);
  });
  transportSuite(
    it,
    { create: ({ maxFrameBytes }) => socketTransport(maxFrameBytes), listenAddress: () => '127.0.0.1:0' },
    { name: 'readme socket pooled', dial: { poolSize: 3 }, report: () => {} },
  );
});

describe("core README's scheduler", () => {
  schedulerSuite(it, () => roomiestScheduler());
});
