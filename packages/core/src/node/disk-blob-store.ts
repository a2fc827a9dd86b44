/**
 * A disk cache of immutable blobs (stage topologies and weights) addressed by their SHA-256,
 * safe to share between the processes of one machine (what `dinfer up` does, and the default
 * for every worker on a machine).
 *
 * Layout under `dir`:
 * - `blobs/<sha256>`: complete blobs, each verified against its name before it got there
 *   (written whole by an atomic rename, so readers never see a half-written blob);
 * - `partial/<sha256>.<owner>`: blobs still being received, appended chunk by chunk by the one
 *   store instance that owns them (`<owner>` is `<pid>.<random>`), kept across restarts so a
 *   transfer resumes where it stopped: a store that opens adopts the partial files of owners
 *   whose process is gone, and deletes those untouched for longer than `stalePartialMs`;
 * - `tmp/<owner>/`: scratch files of {@link BlobStore.put}, removed with their owner.
 *
 * Two workers receiving the same blob each write their own partial file and move it into
 * `blobs/` when verified; a blob another process completed is picked up the first time it is
 * asked for. Complete and partial blobs together stay within `maxBytes`: least recently used
 * unpinned complete blobs are evicted to make room; pinned blobs never are. Recency survives a
 * restart through the files' modification times.
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DinferError, DinferErrorCode } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import {
  type BlobStore,
  cacheFullError,
  checkAppend,
  checkBlobId,
  checkBlobSize,
  checkChunkPosition,
  isBlobId,
  PinCounts,
} from '../ship/blob-store.js';

/** Default bound on the total bytes of complete and partial blobs: 4 GiB. */
export const DEFAULT_BLOB_CACHE_BYTES = 4 * 1024 * 1024 * 1024;

/** Default age after which an orphaned partial blob is deleted instead of resumed: 24 h. */
export const DEFAULT_STALE_PARTIAL_MS = 24 * 60 * 60 * 1000;

/** Options for {@link createBlobStore}. */
export interface BlobStoreOptions {
  /** Directory of the cache; created when missing. */
  readonly dir: string;
  /** Bound on the total bytes of complete and partial blobs. Default 4 GiB. */
  readonly maxBytes?: number | undefined;
  /** Orphaned partial blobs untouched for longer than this are deleted when the store opens. Default 24 h. */
  readonly stalePartialMs?: number | undefined;
  readonly logger?: Logger | undefined;
}

/** A {@link BlobStore} in a directory. */
export interface DiskBlobStore extends BlobStore {
  /** The cache directory. */
  readonly dir: string;
}

/** `<sha256>.<pid>.<random>`, or a bare `<sha256>` left by an older version of the store. */
const PARTIAL = /^([0-9a-f]{64})(?:\.(\d+)\.([0-9a-f]+))?$/;
const OWNER = /^(\d+)\.([0-9a-f]+)$/;

function ioError(what: string, error: unknown, details: Record<string, unknown>): DinferError {
  return new DinferError(DinferErrorCode.MODEL_IO, `blob store: ${what}: ${(error as Error).message}`, {
    cause: error,
    details,
  });
}

/** True while a process with this id runs on this machine (signal 0 checks without signalling). */
function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Streams a file through SHA-256. */
function hashFile(path: string): Promise<{ sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    const stream = createReadStream(path);
    stream.on('data', (chunk) => {
      const buffer = chunk as Buffer;
      bytes += buffer.byteLength;
      hash.update(buffer);
    });
    stream.on('error', reject);
    stream.on('end', () => resolve({ sha256: hash.digest('hex'), bytes }));
  });
}

interface Entry {
  size: number;
  /** Logical clock of the last use; larger is more recent. */
  used: number;
}

interface Partial {
  size: number;
  /** Declared total size; unknown after a restart until the next chunk says it. */
  total: number | undefined;
}

class DirectoryBlobStore implements DiskBlobStore {
  readonly dir: string;
  readonly maxBytes: number;
  readonly #owner = `${process.pid}.${randomBytes(6).toString('hex')}`;
  readonly #blobDir: string;
  readonly #partialDir: string;
  readonly #tmpRoot: string;
  readonly #tmpDir: string;
  readonly #stalePartialMs: number;
  readonly #logger: Logger;
  readonly #blobs = new Map<string, Entry>();
  readonly #partials = new Map<string, Partial>();
  readonly #pins = new PinCounts();
  /** Per-blob operation chains: appends, completion and deletion of one blob never interleave. */
  readonly #locks = new Map<string, Promise<unknown>>();
  #clock = 0;
  #total = 0;
  #partialTotal = 0;
  #closed = false;

  constructor(options: BlobStoreOptions) {
    if (typeof options.dir !== 'string' || options.dir.length === 0) {
      throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'blob store needs a directory');
    }
    const maxBytes = options.maxBytes ?? DEFAULT_BLOB_CACHE_BYTES;
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        'blob store maxBytes must be a positive integer',
        {
          details: { maxBytes },
        },
      );
    }
    const stale = options.stalePartialMs ?? DEFAULT_STALE_PARTIAL_MS;
    if (!(stale > 0)) {
      throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'blob store stalePartialMs must be positive', {
        details: { stalePartialMs: stale },
      });
    }
    this.dir = options.dir;
    this.maxBytes = maxBytes;
    this.#stalePartialMs = stale;
    this.#logger = options.logger ?? silentLogger;
    this.#blobDir = join(this.dir, 'blobs');
    this.#partialDir = join(this.dir, 'partial');
    this.#tmpRoot = join(this.dir, 'tmp');
    this.#tmpDir = join(this.#tmpRoot, this.#owner);
    this.#rebuild();
  }

  /** Reads the directory once, synchronously (a store is created at start-up). */
  #rebuild(): void {
    try {
      mkdirSync(this.#blobDir, { recursive: true });
      mkdirSync(this.#partialDir, { recursive: true });
      mkdirSync(this.#tmpDir, { recursive: true });
      for (const name of readdirSync(this.#tmpRoot)) {
        const owner = OWNER.exec(name);
        // Scratch space of a store whose process is gone (or of an older layout): nothing
        // there can be finished, so it goes.
        if (owner === null || !processAlive(Number(owner[1]))) {
          rmSync(join(this.#tmpRoot, name), { recursive: true, force: true });
        }
      }
      const found: { sha: string; size: number; mtime: number }[] = [];
      for (const name of readdirSync(this.#blobDir)) {
        if (!isBlobId(name)) continue;
        const info = statSync(join(this.#blobDir, name));
        if (info.isFile()) found.push({ sha: name, size: info.size, mtime: info.mtimeMs });
      }
      found.sort((a, b) => a.mtime - b.mtime || (a.sha < b.sha ? -1 : 1));
      for (const { sha, size } of found) {
        this.#blobs.set(sha, { size, used: ++this.#clock });
        this.#total += size;
      }
      this.#adoptOrphans();
    } catch (error) {
      if (error instanceof DinferError) throw error;
      throw ioError(`cannot open ${this.dir}`, error, { dir: this.dir });
    }
    this.#logger.debug(
      { dir: this.dir, blobs: this.#blobs.size, partials: this.#partials.size, bytes: this.#total },
      'blob store opened',
    );
  }

  /**
   * Takes over the partial blobs of owners that are gone, so their transfers resume here;
   * drops those of blobs already complete and those untouched for longer than the stale age.
   */
  #adoptOrphans(): void {
    const now = Date.now();
    for (const name of readdirSync(this.#partialDir)) {
      const match = PARTIAL.exec(name);
      if (match === null) continue;
      const [, sha, pid] = match as unknown as [string, string, string | undefined];
      if (pid !== undefined && processAlive(Number(pid))) continue;
      const path = join(this.#partialDir, name);
      let info: ReturnType<typeof statSync>;
      try {
        info = statSync(path);
      } catch {
        continue; // another store adopted it first
      }
      if (!info.isFile()) continue;
      if (this.#blobs.has(sha) || this.#partials.has(sha) || now - info.mtimeMs > this.#stalePartialMs) {
        rmSync(path, { force: true });
        continue;
      }
      try {
        renameSync(path, this.#partialPath(sha));
      } catch {
        continue; // another store adopted it first
      }
      this.#partials.set(sha, { size: info.size, total: undefined });
      this.#partialTotal += info.size;
    }
  }

  #partialPath(sha256: string): string {
    return join(this.#partialDir, `${sha256}.${this.#owner}`);
  }

  #withLock<T>(sha256: string, task: () => Promise<T>): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new DinferError(DinferErrorCode.NOT_READY, `blob store ${this.dir} is closed`));
    }
    const previous = this.#locks.get(sha256) ?? Promise.resolve();
    const next = previous.then(task, task);
    const settled = next.catch(() => undefined);
    this.#locks.set(sha256, settled);
    void settled.then(() => {
      if (this.#locks.get(sha256) === settled) this.#locks.delete(sha256);
    });
    return next;
  }

  list(): string[] {
    return [...this.#blobs.entries()].sort((a, b) => a[1].used - b[1].used).map(([sha]) => sha);
  }

  has(sha256: string): boolean {
    if (this.#blobs.has(sha256)) return true;
    // Completed by another process sharing the directory since this store opened?
    if (!isBlobId(sha256)) return false;
    const path = join(this.#blobDir, sha256);
    if (!existsSync(path)) return false;
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      return false;
    }
    this.#blobs.set(sha256, { size, used: ++this.#clock });
    this.#total += size;
    this.#dropPartial(sha256);
    return true;
  }

  receivedBytes(sha256: string): number {
    return this.#partials.get(sha256)?.size ?? 0;
  }

  totalBytes(): number {
    return this.#total;
  }

  partialBytes(): number {
    return this.#partialTotal;
  }

  async append(sha256: string, offset: number, bytes: Uint8Array, totalBytes: number): Promise<number> {
    checkAppend(sha256, offset, bytes, totalBytes, this.maxBytes);
    return this.#withLock(sha256, async () => {
      if (this.has(sha256)) {
        throw new DinferError(DinferErrorCode.PROTOCOL, `blob ${sha256} is already complete`, {
          details: { sha256, complete: true },
        });
      }
      const partial = this.#partials.get(sha256) ?? { size: 0, total: undefined };
      if (partial.size > totalBytes) {
        // A partial file longer than the blob it is for is wrong whatever its bytes are
        // (written by a runtime that misbehaved): drop it, the transfer starts over.
        this.#logger.warn(
          { sha256, bytes: partial.size, totalBytes },
          'partial blob longer than its blob, dropped',
        );
        await this.#removePartial(sha256);
        throw new DinferError(
          DinferErrorCode.PROTOCOL,
          `blob ${sha256}: the partial copy held ${partial.size} bytes of a ${totalBytes}-byte blob and was dropped; start again at offset 0`,
          { details: { sha256, offset, expectedOffset: 0 } },
        );
      }
      checkChunkPosition(sha256, offset, bytes.byteLength, totalBytes, partial);
      await this.#makeRoom(bytes.byteLength, sha256);
      const path = this.#partialPath(sha256);
      try {
        const handle = await open(path, 'a');
        try {
          await handle.write(bytes, 0, bytes.byteLength);
        } finally {
          await handle.close();
        }
      } catch (error) {
        // Whatever reached the disk is the new resume point.
        const onDisk = await stat(path).then(
          (s) => s.size,
          () => 0,
        );
        this.#partialTotal += onDisk - partial.size;
        partial.size = onDisk;
        this.#partials.set(sha256, partial);
        throw ioError(`cannot write ${path}`, error, { sha256 });
      }
      partial.size += bytes.byteLength;
      partial.total = totalBytes;
      this.#partialTotal += bytes.byteLength;
      this.#partials.set(sha256, partial);
      return partial.size;
    });
  }

  async complete(sha256: string): Promise<void> {
    checkBlobId(sha256);
    return this.#withLock(sha256, async () => {
      if (this.#blobs.has(sha256)) return;
      const partial = this.#partials.get(sha256);
      if (partial === undefined) {
        if (this.has(sha256)) return; // another process completed it meanwhile
        throw new DinferError(DinferErrorCode.PROTOCOL, `blob ${sha256}: nothing received to complete`, {
          details: { sha256 },
        });
      }
      const path = this.#partialPath(sha256);
      let actual: { sha256: string; bytes: number };
      try {
        actual = await hashFile(path);
      } catch (error) {
        throw ioError(`cannot read ${path}`, error, { sha256 });
      }
      if (partial.total !== undefined && actual.bytes !== partial.total) {
        if (actual.bytes > partial.total) await this.#removePartial(sha256);
        throw new DinferError(
          DinferErrorCode.PROTOCOL,
          `blob ${sha256}: ${actual.bytes} of ${partial.total} bytes received, cannot complete yet`,
          { details: { sha256, receivedBytes: actual.bytes, totalBytes: partial.total } },
        );
      }
      if (actual.sha256 !== sha256) {
        await this.#removePartial(sha256);
        this.#logger.warn(
          { sha256, actual: actual.sha256, bytes: actual.bytes },
          'blob hash mismatch, discarded',
        );
        throw new DinferError(
          DinferErrorCode.HASH_MISMATCH,
          `blob ${sha256}: received bytes hash to ${actual.sha256}; discarded`,
          { details: { sha256, actualSha256: actual.sha256, bytes: actual.bytes } },
        );
      }
      try {
        // Atomic: readers (in any process) see no blob or the whole verified one.
        await rename(path, join(this.#blobDir, sha256));
      } catch (error) {
        throw ioError(`cannot move ${path} into the cache`, error, { sha256 });
      }
      this.#dropPartial(sha256);
      await this.#insert(sha256, actual.bytes);
    });
  }

  async read(sha256: string): Promise<Uint8Array> {
    checkBlobId(sha256);
    if (!this.has(sha256)) {
      throw new DinferError(DinferErrorCode.MODEL_NOT_FOUND, `blob ${sha256} is not in the cache`, {
        details: { sha256 },
      });
    }
    const entry = this.#blobs.get(sha256) as Entry;
    entry.used = ++this.#clock;
    const path = join(this.#blobDir, sha256);
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#forget(sha256);
        throw new DinferError(
          DinferErrorCode.MODEL_NOT_FOUND,
          `blob ${sha256} vanished from ${this.#blobDir}`,
          {
            details: { sha256 },
            cause: error,
          },
        );
      }
      throw ioError(`cannot read ${path}`, error, { sha256 });
    }
    // Recency for the next start-up; failing to record it is harmless.
    const now = new Date();
    await utimes(path, now, now).catch(() => undefined);
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }

  async put(bytes: Uint8Array): Promise<string> {
    if (!(bytes instanceof Uint8Array)) {
      throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'blob must be a Uint8Array');
    }
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    checkBlobSize(sha256, bytes.byteLength, this.maxBytes);
    await this.#withLock(sha256, async () => {
      if (this.has(sha256)) {
        (this.#blobs.get(sha256) as Entry).used = ++this.#clock;
        return;
      }
      const held = this.#partials.get(sha256)?.size ?? 0;
      await this.#makeRoom(Math.max(0, bytes.byteLength - held), sha256);
      const tmp = join(this.#tmpDir, `${sha256}.${randomBytes(6).toString('hex')}`);
      try {
        await writeFile(tmp, bytes);
        await rename(tmp, join(this.#blobDir, sha256));
      } catch (error) {
        await rm(tmp, { force: true });
        throw ioError(`cannot store blob ${sha256}`, error, { sha256 });
      }
      await this.#removePartial(sha256);
      await this.#insert(sha256, bytes.byteLength);
    });
    return sha256;
  }

  pin(sha256: string): void {
    this.#pins.pin(sha256);
  }

  unpin(sha256: string): void {
    this.#pins.unpin(sha256);
  }

  async delete(sha256: string): Promise<void> {
    checkBlobId(sha256);
    return this.#withLock(sha256, async () => {
      this.#forget(sha256);
      await rm(join(this.#blobDir, sha256), { force: true });
      await this.#removePartial(sha256);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#locks.values()]);
    // Bare names belong to no live owner: the next store to open the cache adopts them.
    for (const sha256 of [...this.#partials.keys()]) {
      const bare = join(this.#partialDir, sha256);
      if (!existsSync(bare)) await rename(this.#partialPath(sha256), bare).catch(() => undefined);
      this.#dropPartial(sha256);
    }
    await rm(this.#tmpDir, { recursive: true, force: true });
  }

  #forget(sha256: string): void {
    const entry = this.#blobs.get(sha256);
    if (entry === undefined) return;
    this.#blobs.delete(sha256);
    this.#total -= entry.size;
  }

  /** Forgets this store's partial copy of `sha256` (its file is gone or moved). */
  #dropPartial(sha256: string): void {
    const partial = this.#partials.get(sha256);
    if (partial === undefined) return;
    this.#partials.delete(sha256);
    this.#partialTotal -= partial.size;
  }

  async #removePartial(sha256: string): Promise<void> {
    this.#dropPartial(sha256);
    await rm(this.#partialPath(sha256), { force: true });
  }

  /**
   * Evicts least recently used unpinned complete blobs until `incoming` more bytes fit within
   * `maxBytes` (complete and partial blobs together).
   * @throws DinferError CACHE_FULL when only pinned blobs (or partial ones) are left to evict.
   */
  async #makeRoom(incoming: number, keep: string): Promise<void> {
    if (this.#total + this.#partialTotal + incoming <= this.maxBytes) return;
    for (const victim of this.list()) {
      if (this.#total + this.#partialTotal + incoming <= this.maxBytes) break;
      if (victim === keep || this.#pins.has(victim)) continue;
      const bytes = this.#blobs.get(victim)?.size ?? 0;
      this.#forget(victim);
      await rm(join(this.#blobDir, victim), { force: true });
      this.#logger.info({ sha256: victim, bytes, totalBytes: this.#total }, 'blob evicted');
    }
    if (this.#total + this.#partialTotal + incoming > this.maxBytes) {
      throw cacheFullError(incoming, this.maxBytes, this.#total, this.#partialTotal);
    }
  }

  /** Indexes a new complete blob, then evicts least recently used unpinned blobs over the bound. */
  async #insert(sha256: string, size: number): Promise<void> {
    this.#blobs.set(sha256, { size, used: ++this.#clock });
    this.#total += size;
    try {
      await this.#makeRoom(0, sha256);
    } catch {
      this.#logger.warn(
        { totalBytes: this.#total, partialBytes: this.#partialTotal, maxBytes: this.maxBytes },
        'blob cache over its bound: the rest is pinned',
      );
    }
  }
}

/**
 * Opens (creating when needed) the blob cache in `options.dir`, rebuilding its index from
 * the directory: complete blobs are listed again and partial ones (of this store's earlier
 * runs, or of processes that are gone) resume where they stopped.
 *
 * @throws DinferError INVALID_ARGUMENT for bad options, MODEL_IO when the directory cannot be used.
 */
export function createBlobStore(options: BlobStoreOptions): DiskBlobStore {
  return new DirectoryBlobStore(options);
}
