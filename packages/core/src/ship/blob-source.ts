/**
 * Blobs as the master ships them: a size, a SHA-256 and bytes read on demand, so a blob can
 * stay on disk (or be computed) until a chunk of it goes on the wire.
 *
 * @module
 */
import { platform } from '#platform';
import { checkRange } from './byte-range.js';

/**
 * A content-addressed blob the master can ship without holding it: its size and SHA-256,
 * and its bytes read on demand, a range at a time.
 */
export interface BlobSource {
  /** Hex SHA-256 of the blob's bytes. */
  readonly sha256: string;
  /** Size of the blob in bytes. */
  readonly byteLength: number;
  /** Reads bytes `[start, end)` (default: the whole blob). */
  read(start?: number, end?: number): Promise<Uint8Array>;
}

/** A {@link BlobSource} over bytes in memory. */
export function heldBlob(
  bytes: Uint8Array,
  sha256 = platform.sha256Hex([bytes]),
): BlobSource & { readonly bytes: Uint8Array } {
  return {
    sha256,
    byteLength: bytes.byteLength,
    bytes,
    read: async (start = 0, end = bytes.byteLength) => {
      checkRange(start, end, bytes.byteLength, `blob ${sha256.slice(0, 12)}`);
      return bytes.subarray(start, end);
    },
  };
}

/** Reads a whole blob (one tensor's bytes at a time is what a caller should hold). */
export function readBlob(blob: BlobSource): Promise<Uint8Array> {
  return blob.read(0, blob.byteLength);
}
