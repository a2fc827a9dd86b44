/**
 * The contract of a worker's blob cache, shared by every implementation.
 *
 * @module
 */

/**
 * A cache of immutable, SHA-256 addressed blobs with resumable writes and LRU eviction: where a
 * worker keeps the shards it is sent. Implementations: `diskBlobStore` (`@dinfer/core/node`)
 * and {@link memoryBlobStore}.
 */
export interface BlobStore {
  /** The bound on the total bytes of complete blobs. */
  readonly maxBytes: number;
  /** SHA-256 of every complete blob, least recently used first. */
  list(): string[];
  /** True when the complete blob `sha256` is stored. */
  has(sha256: string): boolean;
  /** Bytes of `sha256` received so far (partial download), 0 when none. */
  receivedBytes(sha256: string): number;
  /** Total bytes of the complete blobs. */
  totalBytes(): number;
  /**
   * Appends `bytes` to the partial blob `sha256`. `offset` must equal {@link receivedBytes}
   * (the resume point), else `DINFER_ERR_PROTOCOL` with `details.expectedOffset`; `totalBytes`
   * must stay the same across the chunks of one blob. Resolves with the bytes now held.
   */
  append(sha256: string, offset: number, bytes: Uint8Array, totalBytes: number): Promise<number>;
  /**
   * Verifies the partial blob `sha256` (hash and, when known, size) and moves it into the
   * cache. On a mismatch the partial file is deleted and `DINFER_ERR_HASH_MISMATCH` thrown.
   */
  complete(sha256: string): Promise<void>;
  /** Reads a complete blob and marks it recently used. `DINFER_ERR_MODEL_NOT_FOUND` when absent. */
  read(sha256: string): Promise<Uint8Array>;
  /** Hashes and stores `bytes` directly; resolves with its SHA-256. */
  put(bytes: Uint8Array): Promise<string>;
  /** Protects `sha256` from eviction (counted: each pin needs one unpin). Works before the blob arrives. */
  pin(sha256: string): void;
  /** Releases one {@link pin}. */
  unpin(sha256: string): void;
  /** Deletes a complete or partial blob (pinned or not). */
  delete(sha256: string): Promise<void>;
}
