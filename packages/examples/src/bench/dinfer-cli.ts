/**
 * What the benchmarks that run the reference CLI as child processes share: where the `dinfer`
 * CLI is (the `bin` of the `@dinfer/server` this package depends on) and free loopback ports.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import path from 'node:path';

/** The `dinfer` CLI of `@dinfer/server`, from its package's `bin`; throws when it is not built. */
export function dinferBin(): string {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('@dinfer/server/package.json');
  const { bin } = require('@dinfer/server/package.json') as { bin: { dinfer: string } };
  const cli = path.join(path.dirname(manifest), bin.dinfer);
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build the repository first (pnpm build)`);
  return cli;
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
