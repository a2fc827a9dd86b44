/**
 * The file system core's model readers and writers use, or a clear error where the runtime
 * has none. Internal module, not part of the public API.
 *
 * @module
 */
import { platform } from '#platform';
import { DinferError, DinferErrorCode } from '../errors.js';
import type { FileAccess } from '../platform/platform.js';

/**
 * The platform's file system.
 * @throws DinferError MODEL_UNSUPPORTED in a runtime without one (a browser), naming `source`.
 */
export function requireFileAccess(source: string): FileAccess {
  const files = platform.files;
  if (files !== undefined) return files;
  throw new DinferError(
    DinferErrorCode.MODEL_UNSUPPORTED,
    `${source}: model files on a file system need Node.js; in this runtime load a model from an http(s) URL or a tf.io.IOHandler`,
    { details: { path: source } },
  );
}

/** Bytes of `text` encoded as UTF-8. */
export function utf8Bytes(text: string): number {
  return new TextEncoder().encode(text).byteLength;
}
