/**
 * What core needs from its host beyond the web platform's own globals (`crypto`,
 * `performance`, `fetch`): raw deflate both ways, synchronous SHA-256, and a yield to the event
 * loop. Node gets `node:zlib`, `node:crypto` and `setImmediate` (`node.ts`); browsers and other runtimes get a portable
 * implementation (`web.ts`). Portable modules import it as `#platform`, which the package's
 * `imports` map resolves per runtime (the `node` condition, else `default`), so a browser
 * bundle of core's worker side never sees a `node:*` module.
 *
 * @module
 */

/** Facts about the machine a process runs on. */
export interface MachineInfo {
  /** Logical CPU cores this process may use (at least 1). */
  readonly cores: number;
  /** Physical memory of the machine in bytes, when the runtime tells (browsers may not). */
  readonly memoryBytes: number | undefined;
  /** A name for this host, for default worker names (`os.hostname()`, a page's host). */
  readonly hostname: string;
  /** This process's id, where there is one. */
  readonly pid: number | undefined;
}

/** The host facilities core's portable modules use. */
export interface Platform {
  /** Raw DEFLATE (RFC 1951, no header) at `level` 0..9. */
  deflateRaw(data: Uint8Array, level: number): Uint8Array;
  /**
   * Inflates raw DEFLATE data, producing at most `maxBytes` bytes.
   * @throws Error when the data is corrupt or inflates to more than `maxBytes` (a deflate bomb).
   */
  inflateRaw(data: Uint8Array, maxBytes: number): Uint8Array;
  /** Hex SHA-256 of the concatenation of `parts`. */
  sha256Hex(parts: readonly Uint8Array[]): string;
  /** Resolves after the event loop has run other pending work (I/O, timers) once. */
  yieldToEventLoop(): Promise<void>;
  /** Facts about this machine. */
  machine(): MachineInfo;
}
