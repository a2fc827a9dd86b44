/**
 * A disk cache of immutable blobs (stage topologies and weights) addressed by their SHA-256.
 *
 * Layout under `dir`:
 * - `blobs/<sha256>`: complete blobs, each verified against its name before it got there;
 * - `partial/<sha256>`: blobs still being received, appended chunk by chunk (kept across
 *   restarts so a transfer resumes where it stopped);
 * - `tmp/`: scratch files of {@link BlobStore.put}, emptied at start.
 *
 * The index is rebuilt from the directory when a store is created, so a restarted worker
 * still knows what it holds. Least recently used complete blobs are evicted when the total
 * size of complete blobs exceeds `maxBytes`; pinned blobs never are. Recency survives a
 * restart through the files' modification times.
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { open, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DinferError, DinferErrorCode } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import type { BlobStore } from '../ship/blob-store.js';

/** Default bound on the total bytes of complete blobs: 4 GiB. */
export const DEFAULT_BLOB_CACHE_BYTES = 4 * 1024 * 1024 * 1024;

/** Options for {@link createBlobStore}. */
export interface BlobStoreOptions {
  /** Directory of the cache; created when missing. */
  readonly dir: string;
  /** Bound on the total bytes of complete blobs; least recently used unpinned ones are evicted beyond it. Default 4 GiB. */
  readonly maxBytes?: number | undefined;
  readonly logger?: Logger | undefined;
}

const SHA256 = /^[0-9a-f]{64}$/;

function checkSha(sha256: unknown): string {
  if (typeof sha256 !== 'string' || !SHA256.test(sha256)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      'blob id must be a lowercase SHA-256 hex string',
      {
        details: { sha256: typeof sha256 === 'string' ? sha256.slice(0, 80) : typeof sha256 },
      },
    );
  }
  return sha256;
}

function ioError(what: string, error: unknown, details: Record<string, unknown>): DinferError {
  return new DinferError(DinferErrorCode.MODEL_IO, `blob store: ${what}: ${(error as Error).message}`, {
    cause: error,
    details,
  });
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

/** A {@link BlobStore} in a directory. */
export interface DiskBlobStore extends BlobStore {
  /** The cache directory. */
  readonly dir: string;
}

class DirectoryBlobStore implements DiskBlobStore {
  readonly dir: string;
  readonly maxBytes: number;
  readonly #blobDir: string;
  readonly #partialDir: string;
  readonly #tmpDir: string;
  readonly #logger: Logger;
  readonly #blobs = new Map<string, Entry>();
  readonly #partials = new Map<string, Partial>();
  readonly #pins = new Map<string, number>();
  /** Per-blob operation chains: appends, completion and deletion of one blob never interleave. */
  readonly #locks = new Map<string, Promise<unknown>>();
  #clock = 0;
  #total = 0;

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
    this.dir = options.dir;
    this.maxBytes = maxBytes;
    this.#logger = options.logger ?? silentLogger;
    this.#blobDir = join(this.dir, 'blobs');
    this.#partialDir = join(this.dir, 'partial');
    this.#tmpDir = join(this.dir, 'tmp');
    this.#rebuild();
  }

  /** Reads the directory once, synchronously (a store is created at start-up). */
  #rebuild(): void {
    try {
      mkdirSync(this.#blobDir, { recursive: true });
      mkdirSync(this.#partialDir, { recursive: true });
      rmSync(this.#tmpDir, { recursive: true, force: true });
      mkdirSync(this.#tmpDir, { recursive: true });
      const found: { sha: string; size: number; mtime: number }[] = [];
      for (const name of readdirSync(this.#blobDir)) {
        if (!SHA256.test(name)) continue;
        const info = statSync(join(this.#blobDir, name));
        if (info.isFile()) found.push({ sha: name, size: info.size, mtime: info.mtimeMs });
      }
      found.sort((a, b) => a.mtime - b.mtime || (a.sha < b.sha ? -1 : 1));
      for (const { sha, size } of found) {
        this.#blobs.set(sha, { size, used: ++this.#clock });
        this.#total += size;
      }
      for (const name of readdirSync(this.#partialDir)) {
        if (!SHA256.test(name) || this.#blobs.has(name)) continue;
        const info = statSync(join(this.#partialDir, name));
        if (info.isFile()) this.#partials.set(name, { size: info.size, total: undefined });
      }
    } catch (error) {
      throw ioError(`cannot open ${this.dir}`, error, { dir: this.dir });
    }
    this.#logger.debug(
      { dir: this.dir, blobs: this.#blobs.size, partials: this.#partials.size, bytes: this.#total },
      'blob store opened',
    );
  }

  #withLock<T>(sha256: string, task: () => Promise<T>): Promise<T> {
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
    return this.#blobs.has(sha256);
  }

  receivedBytes(sha256: string): number {
    return this.#partials.get(sha256)?.size ?? 0;
  }

  totalBytes(): number {
    return this.#total;
  }

  append(sha256: string, offset: number, bytes: Uint8Array, totalBytes: number): Promise<number> {
    checkSha(sha256);
    if (!(bytes instanceof Uint8Array)) {
      throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'blob chunk must be a Uint8Array');
    }
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(totalBytes) || totalBytes < 0) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        'offset and totalBytes must be non-negative integers',
        {
          details: { sha256, offset, totalBytes },
        },
      );
    }
    return this.#withLock(sha256, async () => {
      if (this.#blobs.has(sha256)) {
        throw new DinferError(DinferErrorCode.PROTOCOL, `blob ${sha256} is already complete`, {
          details: { sha256, complete: true },
        });
      }
      if (totalBytes > this.maxBytes) {
        throw new DinferError(
          DinferErrorCode.INVALID_ARGUMENT,
          `blob ${sha256} of ${totalBytes} bytes is larger than the cache bound of ${this.maxBytes} bytes`,
          { details: { sha256, totalBytes, maxBytes: this.maxBytes } },
        );
      }
      const partial = this.#partials.get(sha256) ?? { size: 0, total: undefined };
      if (offset !== partial.size) {
        throw new DinferError(
          DinferErrorCode.PROTOCOL,
          `blob ${sha256}: chunk at offset ${offset}, expected offset ${partial.size}`,
          { details: { sha256, offset, expectedOffset: partial.size } },
        );
      }
      if (partial.total !== undefined && partial.total !== totalBytes) {
        throw new DinferError(
          DinferErrorCode.PROTOCOL,
          `blob ${sha256}: totalBytes changed from ${partial.total} to ${totalBytes}`,
          { details: { sha256, totalBytes, expectedTotalBytes: partial.total } },
        );
      }
      if (offset + bytes.byteLength > totalBytes) {
        throw new DinferError(
          DinferErrorCode.PROTOCOL,
          `blob ${sha256}: chunk ends at ${offset + bytes.byteLength}, past totalBytes ${totalBytes}`,
          { details: { sha256, offset, bytes: bytes.byteLength, totalBytes } },
        );
      }
      const path = join(this.#partialDir, sha256);
      try {
        const handle = await open(path, 'a');
        try {
          await handle.write(bytes, 0, bytes.byteLength);
        } finally {
          await handle.close();
        }
      } catch (error) {
        // Whatever reached the disk is the new resume point.
        partial.size = await stat(path).then(
          (s) => s.size,
          () => 0,
        );
        throw ioError(`cannot write ${path}`, error, { sha256 });
      }
      partial.size += bytes.byteLength;
      partial.total = totalBytes;
      this.#partials.set(sha256, partial);
      return partial.size;
    });
  }

  complete(sha256: string): Promise<void> {
    checkSha(sha256);
    return this.#withLock(sha256, async () => {
      if (this.#blobs.has(sha256)) return;
      const partial = this.#partials.get(sha256);
      if (partial === undefined) {
        throw new DinferError(DinferErrorCode.PROTOCOL, `blob ${sha256}: nothing received to complete`, {
          details: { sha256 },
        });
      }
      const path = join(this.#partialDir, sha256);
      let actual: { sha256: string; bytes: number };
      try {
        actual = await hashFile(path);
      } catch (error) {
        throw ioError(`cannot read ${path}`, error, { sha256 });
      }
      if (partial.total !== undefined && actual.bytes !== partial.total) {
        throw new DinferError(
          DinferErrorCode.PROTOCOL,
          `blob ${sha256}: ${actual.bytes} of ${partial.total} bytes received, cannot complete yet`,
          { details: { sha256, receivedBytes: actual.bytes, totalBytes: partial.total } },
        );
      }
      if (actual.sha256 !== sha256) {
        this.#partials.delete(sha256);
        await rm(path, { force: true });
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
        await rename(path, join(this.#blobDir, sha256));
      } catch (error) {
        throw ioError(`cannot move ${path} into the cache`, error, { sha256 });
      }
      this.#partials.delete(sha256);
      await this.#insert(sha256, actual.bytes);
    });
  }

  async read(sha256: string): Promise<Uint8Array> {
    checkSha(sha256);
    const entry = this.#blobs.get(sha256);
    if (entry === undefined) {
      throw new DinferError(DinferErrorCode.MODEL_NOT_FOUND, `blob ${sha256} is not in the cache`, {
        details: { sha256 },
      });
    }
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
    if (bytes.byteLength > this.maxBytes) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        `blob of ${bytes.byteLength} bytes is larger than the cache bound of ${this.maxBytes} bytes`,
        { details: { sha256, totalBytes: bytes.byteLength, maxBytes: this.maxBytes } },
      );
    }
    await this.#withLock(sha256, async () => {
      const entry = this.#blobs.get(sha256);
      if (entry !== undefined) {
        entry.used = ++this.#clock;
        return;
      }
      const tmp = join(this.#tmpDir, `${sha256}.${randomBytes(6).toString('hex')}`);
      try {
        await writeFile(tmp, bytes);
        await rename(tmp, join(this.#blobDir, sha256));
      } catch (error) {
        await rm(tmp, { force: true });
        throw ioError(`cannot store blob ${sha256}`, error, { sha256 });
      }
      if (this.#partials.delete(sha256)) await rm(join(this.#partialDir, sha256), { force: true });
      await this.#insert(sha256, bytes.byteLength);
    });
    return sha256;
  }

  pin(sha256: string): void {
    checkSha(sha256);
    this.#pins.set(sha256, (this.#pins.get(sha256) ?? 0) + 1);
  }

  unpin(sha256: string): void {
    checkSha(sha256);
    const count = this.#pins.get(sha256) ?? 0;
    if (count <= 1) this.#pins.delete(sha256);
    else this.#pins.set(sha256, count - 1);
  }

  delete(sha256: string): Promise<void> {
    checkSha(sha256);
    return this.#withLock(sha256, async () => {
      this.#forget(sha256);
      this.#partials.delete(sha256);
      await rm(join(this.#blobDir, sha256), { force: true });
      await rm(join(this.#partialDir, sha256), { force: true });
    });
  }

  #forget(sha256: string): void {
    const entry = this.#blobs.get(sha256);
    if (entry === undefined) return;
    this.#blobs.delete(sha256);
    this.#total -= entry.size;
  }

  /** Indexes a new complete blob, then evicts least recently used unpinned blobs over the bound. */
  async #insert(sha256: string, size: number): Promise<void> {
    this.#blobs.set(sha256, { size, used: ++this.#clock });
    this.#total += size;
    if (this.#total <= this.maxBytes) return;
    for (const victim of this.list()) {
      if (this.#total <= this.maxBytes) break;
      if (victim === sha256 || this.#pins.has(victim)) continue;
      const bytes = this.#blobs.get(victim)?.size ?? 0;
      this.#forget(victim);
      await rm(join(this.#blobDir, victim), { force: true });
      this.#logger.info({ sha256: victim, bytes, totalBytes: this.#total }, 'blob evicted');
    }
    if (this.#total > this.maxBytes) {
      this.#logger.warn(
        { totalBytes: this.#total, maxBytes: this.maxBytes },
        'blob cache over its bound: the rest is pinned',
      );
    }
  }
}

/**
 * Opens (creating when needed) the blob cache in `options.dir`, rebuilding its index from
 * the directory: complete blobs are listed again and partial ones resume where they stopped.
 *
 * @throws DinferError INVALID_ARGUMENT for bad options, MODEL_IO when the directory cannot be used.
 */
export function createBlobStore(options: BlobStoreOptions): DiskBlobStore {
  return new DirectoryBlobStore(options);
}
