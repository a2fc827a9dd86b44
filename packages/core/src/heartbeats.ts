/**
 * The heartbeat extension point: how a worker reports that it is alive (and its load) to the
 * master beside their connection, and how the master receives it. Core's runtimes take
 * factories of these (`WorkerOptions.heartbeats`, `CoordinatorOptions.heartbeat.receiver`);
 * `@dinfer/core/node` implements them over signed UDP datagrams. Without them the master's
 * health pings, which carry the load too, watch every worker.
 *
 * @module
 */
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { WorkerLoad } from './scheduler.js';

/** A key that signs heartbeats: a connection's session key (or, for tests, any string). */
export type HeartbeatKey = Uint8Array | string;

/** Options of {@link createHeartbeatSender}. */
export interface HeartbeatSenderOptions {
  /** The master's heartbeat address: an IPv4/IPv6 literal or a host name (resolved at start). */
  readonly host: string;
  readonly port: number;
  /**
   * Signs every packet: the session key of this worker's connection to the master
   * (`Connection.session.key`); `undefined` sends unsigned packets (a cluster without a
   * credential).
   */
  readonly key: HeartbeatKey | undefined;
  readonly workerId: string;
  /** Time between two beats, in ms (the first beat leaves at start). */
  readonly intervalMs: number;
  /** Called before each beat; a throw or an invalid load skips that beat (logged). */
  readonly getLoad: () => WorkerLoad;
  readonly logger?: Logger | undefined;
}

/** A running (or stopped) heartbeat sender. */
export interface HeartbeatSender {
  /**
   * Starts beating. Each start begins a new run: a fresh random boot id and `seq` from 0, so a
   * receiver treats it as a restart. Calling it while started does nothing.
   */
  start(): void;
  /** Stops beating and closes the socket. Safe to call more than once. */
  stop(): Promise<void>;
}

/** What the receiver knows about an accepted beat, besides the load. */
export interface HeartbeatInfo {
  /** Source address and port of the datagram. */
  readonly address: string;
  readonly port: number;
  readonly seq: number;
  /** Sender clock at send time (ms since epoch). */
  readonly sentAt: number;
  /** Receiver clock at arrival (ms since epoch). */
  readonly receivedAt: number;
  /** The sender's run id. */
  readonly boot: string;
  /** True when this beat starts a new run of a worker seen before (the worker restarted). */
  readonly restarted: boolean;
  /** True when the packet carried a tag (always true for a worker watched with a key). */
  readonly signed: boolean;
}

/** Options of {@link createHeartbeatReceiver}. */
export interface HeartbeatReceiverOptions {
  /** Address to bind; an IPv6 literal selects udp6. Default `0.0.0.0`. */
  readonly host?: string | undefined;
  /** Port to bind; 0 picks a free one (see {@link HeartbeatReceiver.port}). */
  readonly port: number;
  /** A watched worker with no accepted beat for this long times out. Default 30 000 ms. */
  readonly timeoutMs?: number | undefined;
  /** How often timeouts are checked. Default `min(1000, timeoutMs / 4)` ms. */
  readonly checkIntervalMs?: number | undefined;
  /** Largest tolerated `|sentAt - now|`, in ms. Default 60 000. */
  readonly maxSkewMs?: number | undefined;
  /** Most worker ids remembered at once; beats of further ids are refused. Default 10 000. */
  readonly maxWorkers?: number | undefined;
  /** Called for every accepted beat (watched or not). Exceptions are logged, not propagated. */
  readonly onBeat: (workerId: string, load: WorkerLoad, info: HeartbeatInfo) => void;
  /** Called once when a watched worker falls silent; an accepted beat re-arms it. */
  readonly onTimeout: (workerId: string) => void;
  readonly logger?: Logger | undefined;
  /**
   * Receives `dinfer_heartbeat_received_total{result}` (result `accepted` or a
   * {@link HeartbeatRejectReason}) and `dinfer_heartbeat_timeouts_total`.
   */
  readonly metrics?: Metrics | undefined;
}

/** A bound heartbeat receiver. */
export interface HeartbeatReceiver {
  /** The bound UDP port. */
  readonly port: number;
  /**
   * Starts accepting beats of `workerId`, signed with `key` (its connection's session key), or
   * unchecked with `'unsigned'` (a cluster without a credential); silence is counted from the
   * later of its last accepted beat and this call. Watching it again with another key (the
   * worker joined again) starts a new run: its replay state is reset.
   */
  watch(workerId: string, key: HeartbeatKey | 'unsigned'): void;
  /** Stops watching `workerId`: its beats are refused from now on. */
  forget(workerId: string): void;
  /** Time of the last accepted beat of `workerId` (ms since epoch), if any. */
  lastSeen(workerId: string): number | undefined;
  /** Datagrams refused so far (any reason). */
  readonly rejected: number;
  /** Beats accepted so far. */
  readonly accepted: number;
  /** Closes the socket and stops the timeout timer. Safe to call more than once. */
  stop(): Promise<void>;
}

/** Makes a worker's heartbeat sender (e.g. `createHeartbeatSender` from `@dinfer/core/node`). */
export type HeartbeatSenderFactory = (options: HeartbeatSenderOptions) => HeartbeatSender;

/** Binds the master's heartbeat receiver (e.g. `createHeartbeatReceiver` from `@dinfer/core/node`). */
export type HeartbeatReceiverFactory = (options: HeartbeatReceiverOptions) => Promise<HeartbeatReceiver>;
