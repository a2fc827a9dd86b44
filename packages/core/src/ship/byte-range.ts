/**
 * Checks of byte ranges asked of a blob. Internal module, not part of the public API.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';

/**
 * Checks that `[start, end)` is a range of a `byteLength`-byte blob.
 *
 * @throws DinferError INVALID_ARGUMENT naming `what` otherwise.
 */
export function checkRange(start: number, end: number, byteLength: number, what: string): void {
  if (
    !(
      Number.isSafeInteger(start) &&
      Number.isSafeInteger(end) &&
      start >= 0 &&
      start <= end &&
      end <= byteLength
    )
  ) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `bytes [${start}, ${end}) are not a range of ${what} (${byteLength} bytes)`,
      { details: { start, end, byteLength } },
    );
  }
}
