/**
 * `pnpm bench:transport`: every transport benchmark in one run. The TCP part
 * (`transport-tcp.ts`) always runs; the Socket.IO part (`transport-socketio.ts`, exporting
 * `runSocketIoBench()`) runs when that module is present.
 *
 * Options: `--quick` scales iteration counts down (a smoke run, noisier numbers).
 *
 * @module
 */
import { runTcpBench } from './transport-tcp.js';

/** The optional Socket.IO part, loaded by path so this entry builds with or without it. */
interface SocketIoBenchModule {
  runSocketIoBench?: (options?: { scale?: number }) => Promise<unknown>;
}

async function loadSocketIoBench(): Promise<SocketIoBenchModule | undefined> {
  const specifier = './transport-socketio.js';
  try {
    return (await import(specifier)) as SocketIoBenchModule;
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw error;
  }
}

async function main(): Promise<void> {
  const scale = process.argv.includes('--quick') ? 0.25 : 1;
  const rows = await runTcpBench({ scale });
  const socketIo = await loadSocketIoBench();
  if (typeof socketIo?.runSocketIoBench === 'function') await socketIo.runSocketIoBench({ scale });
  else console.log('\n(socket.io part not present: src/bench/transport-socketio.ts)');
  const missed = rows.filter(
    (row) => /MB/.test(row.size) && (row.rttRatio > 1.3 || row.throughputRatio > 1.3),
  );
  console.log(
    missed.length === 0
      ? '\nTCP targets met: transport/baseline <= 1.3x at 1.6 MB and 16 MB.'
      : `\nTCP targets missed at: ${missed.map((row) => row.size).join(', ')}`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
