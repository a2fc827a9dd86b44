/**
 * The receiving half of a hand-driven peer in tests: bytes in (core's frame codec), envelopes
 * out one `next()` at a time.
 *
 * @module
 */
import { FrameDecoder } from '../protocol/frame-codec.js';
import type { Envelope } from '../transport.js';

/** Decodes frames from pushed bytes and hands them out in order. */
export class FrameInbox {
  readonly #decoder = new FrameDecoder({ maxFrameBytes: 0xffff_ffff });
  readonly #queue: Envelope[] = [];
  #waiter: ((envelope: Envelope) => void) | undefined;

  /** Adds received bytes (any split). */
  push(bytes: Uint8Array): void {
    for (const envelope of this.#decoder.push(bytes)) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      if (waiter) waiter(envelope);
      else this.#queue.push(envelope);
    }
  }

  /** The next decoded envelope; rejects when none arrives within `timeoutMs`. */
  next(timeoutMs = 5000): Promise<Envelope> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no envelope within ${timeoutMs} ms`)), timeoutMs);
      this.#waiter = (envelope) => {
        clearTimeout(timer);
        resolve(envelope);
      };
    });
  }
}
