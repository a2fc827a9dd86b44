/**
 * A small strict reader for one JSON object from the wire: each accessor checks one field's
 * type and bounds, and {@link MessageFields.finish} rejects any field nobody read. Message
 * validators (see `messages.ts`) are written with it.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';

/** Reads and checks the fields of one untrusted object; every failure is `DINFER_ERR_PROTOCOL`. */
export class MessageFields {
  readonly #object: Readonly<Record<string, unknown>>;
  readonly #what: string;
  readonly #read = new Set<string>();

  /** @param what names the object in error messages, e.g. `'ping message'`. */
  constructor(object: Readonly<Record<string, unknown>>, what: string) {
    this.#object = object;
    this.#what = what;
  }

  /** Fails with a `DINFER_ERR_PROTOCOL` naming the object and `field`. */
  fail(field: string, reason: string): never {
    throw new DinferError(DinferErrorCode.PROTOCOL, `invalid ${this.#what}: ${field} ${reason}`, {
      details: { field },
    });
  }

  /** The raw value of `field` (marked as read), `undefined` when absent. */
  raw(field: string): unknown {
    this.#read.add(field);
    return Object.hasOwn(this.#object, field) ? this.#object[field] : undefined;
  }

  /** True when `field` is present. */
  has(field: string): boolean {
    return Object.hasOwn(this.#object, field);
  }

  /** A required string of `min`..`max` characters (default 0..1024). */
  string(field: string, bounds: { min?: number; max?: number } = {}): string {
    const value = this.raw(field);
    const min = bounds.min ?? 0;
    const max = bounds.max ?? 1024;
    if (typeof value !== 'string') this.fail(field, 'must be a string');
    if (value.length < min || value.length > max) this.fail(field, `must have ${min} to ${max} characters`);
    return value;
  }

  /** A required finite number in [min, max] (default any finite number). */
  number(field: string, bounds: { min?: number; max?: number; integer?: boolean } = {}): number {
    const value = this.raw(field);
    if (typeof value !== 'number' || !Number.isFinite(value)) this.fail(field, 'must be a finite number');
    if (bounds.integer === true && !Number.isSafeInteger(value)) this.fail(field, 'must be an integer');
    if (
      value < (bounds.min ?? Number.NEGATIVE_INFINITY) ||
      value > (bounds.max ?? Number.POSITIVE_INFINITY)
    ) {
      this.fail(field, `must be within [${bounds.min ?? '-inf'}, ${bounds.max ?? 'inf'}]`);
    }
    return value;
  }

  /** A required boolean. */
  boolean(field: string): boolean {
    const value = this.raw(field);
    if (typeof value !== 'boolean') this.fail(field, 'must be a boolean');
    return value;
  }

  /** A required value equal to one of `options`. */
  oneOf<T extends string | number>(field: string, options: readonly T[]): T {
    const value = this.raw(field);
    if (!options.includes(value as T)) this.fail(field, `must be one of ${options.join(', ')}`);
    return value as T;
  }

  /** Reads `field` with `read` when present; returns `undefined` when absent. */
  optional<T>(field: string, read: (field: string) => T): T | undefined {
    if (!this.has(field)) {
      this.#read.add(field);
      return undefined;
    }
    return read(field);
  }

  /** A required nested object, read field by field with its own {@link MessageFields}. */
  object<T>(field: string, read: (fields: MessageFields) => T): T {
    const value = this.raw(field);
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      this.fail(field, 'must be an object');
    const nested = new MessageFields(value as Record<string, unknown>, `${this.#what} ${field}`);
    const result = read(nested);
    nested.finish();
    return result;
  }

  /** A required array of at most `max` items (default 10 000), each checked by `item`. */
  list<T>(field: string, item: (value: unknown, index: number) => T, bounds: { max?: number } = {}): T[] {
    const value = this.raw(field);
    const max = bounds.max ?? 10_000;
    if (!Array.isArray(value)) this.fail(field, 'must be an array');
    if (value.length > max) this.fail(field, `must have at most ${max} items`);
    return value.map((entry, index) => item(entry, index));
  }

  /** Throws when the object has a field that was never read (unknown fields are refused). */
  finish(): void {
    for (const key of Object.keys(this.#object)) {
      if (!this.#read.has(key)) this.fail(key, 'is not a known field');
    }
  }
}
