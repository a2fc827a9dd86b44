/**
 * What core needs from its host beyond the web platform's own globals (`crypto`,
 * `performance`, `fetch`): raw deflate both ways, synchronous SHA-256, a yield to the event
 * loop, the process's CPU time and memory, and a file system where there is one. Node gets `node:zlib`, `node:crypto` and `setImmediate` (`node.ts`); browsers and other runtimes get a portable
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

/** Size and kind of a file, from {@link FileAccess.stat}. */
export interface FileStat {
  /** Bytes in the file. */
  readonly size: number;
  /** Whether the path is a directory. */
  readonly directory: boolean;
}

/**
 * The file system, where the runtime has one (Node). Paths are the host's; failures are the
 * host's own errors (Node's carry `code`, e.g. `ENOENT`), which core's model readers turn
 * into DinferErrors.
 */
export interface FileAccess {
  /** An absolute path for a path (relative to the working directory) or a `file://` URL. */
  resolve(source: string): string;
  /** Joins path segments. */
  join(...parts: string[]): string;
  /** The directory part of a path. */
  dirname(path: string): string;
  /** Size and kind of `path`. */
  stat(path: string): Promise<FileStat>;
  /** The whole file as UTF-8 text. */
  readText(path: string, signal?: AbortSignal): Promise<string>;
  /** The whole file. */
  readBytes(path: string, signal?: AbortSignal): Promise<Uint8Array>;
  /** Fills `target` from `position` on; returns the bytes read, fewer only at the end of the file. */
  readInto(path: string, position: number, target: Uint8Array): Promise<number>;
  /** Creates a directory and its parents. */
  makeDirectory(path: string): Promise<void>;
  /** Writes a file in place. */
  writeBytes(path: string, data: Uint8Array): Promise<void>;
  /** Writes a file through a temporary file and a rename, so readers never see it half written. */
  writeAtomically(path: string, data: string | Uint8Array): Promise<void>;
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
  /** CPU time this process has used so far in ms, where the runtime tells (browsers do not). */
  cpuTimeMs(): number | undefined;
  /** Memory this process holds now in bytes (Node: its RSS), where the runtime tells. */
  memoryInUseBytes(): number | undefined;
  /** The file system, or `undefined` in a runtime without one (browsers). */
  readonly files: FileAccess | undefined;
}
