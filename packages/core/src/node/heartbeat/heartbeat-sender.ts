/**
 * The worker side of heartbeats: a UDP socket that sends a signed {@link HeartbeatPayload}
 * to the master every `intervalMs`.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { DinferError, DinferErrorCode } from '../../errors.js';
import type { HeartbeatSender, HeartbeatSenderOptions } from '../../heartbeats.js';
import { silentLogger } from '../../logger.js';
import { encodeHeartbeat, HEARTBEAT_MAX_WORKER_ID_LENGTH, HEARTBEAT_VERSION } from './heartbeat-packet.js';

function checkOptions(options: HeartbeatSenderOptions): void {
  const fail = (message: string): never => {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, message, {
      details: { workerId: options.workerId },
    });
  };
  if (typeof options.host !== 'string' || options.host.length === 0)
    fail('heartbeat host must be a non-empty string');
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
    fail(`heartbeat port ${options.port} is not an integer in 1..65535`);
  }
  if (options.key !== undefined && options.key.length === 0) fail('heartbeat key must not be empty');
  if (typeof options.workerId !== 'string' || options.workerId.length === 0)
    fail('workerId must be a non-empty string');
  if (options.workerId.length > HEARTBEAT_MAX_WORKER_ID_LENGTH) {
    fail(`workerId is longer than ${HEARTBEAT_MAX_WORKER_ID_LENGTH} characters`);
  }
  if (!Number.isFinite(options.intervalMs) || options.intervalMs < 1) {
    fail(`heartbeat intervalMs ${options.intervalMs} must be a finite number >= 1`);
  }
  if (typeof options.getLoad !== 'function') fail('getLoad must be a function');
}

/** State of one started run of a sender. */
interface Run {
  timer: NodeJS.Timeout | undefined;
  socket: dgram.Socket | undefined;
  address: string | undefined;
  resolving: boolean;
  closed: boolean;
}

/** Resolves the destination address and socket family. */
async function resolve(host: string): Promise<{ address: string; family: 4 | 6 }> {
  const literal = isIP(host);
  if (literal !== 0) return { address: host, family: literal as 4 | 6 };
  const found = await lookup(host);
  return { address: found.address, family: found.family === 6 ? 6 : 4 };
}

/**
 * Creates a heartbeat sender (not started). Sending is best effort: send errors and failed
 * name lookups are logged and retried on the next tick; the timer and socket are `unref`ed,
 * so they never keep a process alive on their own.
 *
 * @throws DinferError INVALID_ARGUMENT for invalid options.
 */
export function createHeartbeatSender(options: HeartbeatSenderOptions): HeartbeatSender {
  checkOptions(options);
  const logger = options.logger ?? silentLogger;
  const context = { workerId: options.workerId, host: options.host, port: options.port };

  let run: Run | undefined;
  let boot = '';
  let bootAt = 0;
  let seq = 0;

  const beat = (current: Run): void => {
    if (current.closed) return;
    if (current.socket === undefined || current.address === undefined) {
      if (!current.resolving) void open(current);
      return;
    }
    let packet: Buffer;
    try {
      const load = options.getLoad();
      packet = encodeHeartbeat(
        { v: HEARTBEAT_VERSION, workerId: options.workerId, boot, bootAt, seq, sentAt: Date.now(), load },
        options.key,
      );
    } catch (error) {
      logger.warn({ ...context, err: error }, 'heartbeat skipped: could not build the packet');
      return;
    }
    seq++;
    current.socket.send(packet, options.port, current.address, (error) => {
      if (error) logger.debug({ ...context, err: error }, 'heartbeat send failed');
    });
  };

  const open = async (current: Run): Promise<void> => {
    current.resolving = true;
    try {
      const { address, family } = await resolve(options.host);
      if (current.closed) return;
      const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
      socket.on('error', (error) => logger.debug({ ...context, err: error }, 'heartbeat socket error'));
      socket.unref();
      current.socket = socket;
      current.address = address;
      beat(current);
    } catch (error) {
      logger.warn({ ...context, err: error }, 'heartbeat: could not resolve the master address; retrying');
    } finally {
      current.resolving = false;
    }
  };

  return {
    start() {
      if (run !== undefined) return;
      boot = randomBytes(12).toString('base64url');
      bootAt = Date.now();
      seq = 0;
      const current: Run = {
        timer: undefined,
        socket: undefined,
        address: undefined,
        resolving: false,
        closed: false,
      };
      current.timer = setInterval(() => beat(current), options.intervalMs);
      current.timer.unref();
      run = current;
      void open(current);
      logger.debug({ ...context, boot }, 'heartbeat sender started');
    },
    async stop() {
      const current = run;
      if (current === undefined) return;
      run = undefined;
      current.closed = true;
      clearInterval(current.timer);
      const socket = current.socket;
      current.socket = undefined;
      if (socket !== undefined) await new Promise<void>((done) => socket.close(() => done()));
      logger.debug(context, 'heartbeat sender stopped');
    },
  };
}
