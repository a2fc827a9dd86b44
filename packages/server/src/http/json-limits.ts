/**
 * Bounds on a JSON text, checked by one linear scan of its bytes before anything is parsed:
 * how deeply arrays and objects nest, and how many values it holds (counted as its opening
 * brackets plus its commas, an upper bound on the values and on the numbers of any array in
 * it). A body nested ten million levels deep is refused after 33 bytes, one of millions of
 * values after the limit is reached, so neither blocks the event loop nor builds anything.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';

/** Default deepest nesting of arrays and objects in a JSON body. */
export const DEFAULT_JSON_MAX_DEPTH = 32;

/**
 * Default most values in a JSON body: four million (a batch of 26 images of 224x224x3 as
 * nested arrays); binary requests carry larger tensors.
 */
export const DEFAULT_JSON_MAX_VALUES = 4_000_000;

/** Limits of {@link scanJson}. */
export interface JsonLimits {
  /** Deepest nesting of arrays and objects. Default {@link DEFAULT_JSON_MAX_DEPTH}. */
  readonly maxDepth?: number | undefined;
  /** Most values (opening brackets plus commas). Default {@link DEFAULT_JSON_MAX_VALUES}. */
  readonly maxValues?: number | undefined;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

function tooLarge(message: string, details: Record<string, unknown>): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message, { details });
}

/**
 * Checks the UTF-8 JSON `bytes` against `limits` and returns how many values it holds at most
 * (its opening brackets plus its commas, at least 1). Strings are skipped, escapes included,
 * so brackets inside them do not count. Malformed JSON passes (the parser reports it).
 *
 * @param what names the JSON in messages, e.g. `the JSON body`.
 * @throws DinferError INVALID_ARGUMENT when the JSON nests deeper than `maxDepth` or holds
 *   more than `maxValues` values.
 */
export function scanJson(bytes: Uint8Array, limits: JsonLimits = {}, what = 'the JSON body'): number {
  const maxDepth = limits.maxDepth ?? DEFAULT_JSON_MAX_DEPTH;
  const maxValues = limits.maxValues ?? DEFAULT_JSON_MAX_VALUES;
  let depth = 0;
  let values = 0;
  const n = bytes.length;
  for (let i = 0; i < n; i++) {
    const c = bytes[i]!;
    if (c === QUOTE) {
      // Skip the string: a backslash escapes the next byte (multi-byte UTF-8 never holds these bytes).
      for (i++; i < n; i++) {
        const s = bytes[i]!;
        if (s === BACKSLASH) i++;
        else if (s === QUOTE) break;
      }
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > maxDepth) {
        throw tooLarge(`${what} is nested deeper than ${maxDepth} levels`, { maxDepth });
      }
      if (++values > maxValues) {
        throw tooLarge(`${what} holds more than ${maxValues} values`, { maxValues });
      }
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    } else if (c === COMMA && ++values > maxValues) {
      throw tooLarge(`${what} holds more than ${maxValues} values`, { maxValues });
    }
  }
  return Math.max(1, values);
}

/**
 * Checks `limits` for {@link scanJson}.
 *
 * @throws DinferError INVALID_ARGUMENT for a limit that is not a positive integer.
 */
export function checkJsonLimits(limits: JsonLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        `${name === 'maxDepth' ? 'jsonMaxDepth' : 'jsonMaxValues'} ${value} must be a positive integer`,
      );
    }
  }
}
