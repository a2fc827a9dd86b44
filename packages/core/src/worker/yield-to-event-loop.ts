/**
 * One turn of the event loop, for code that computes for long on the thread that also
 * handles I/O.
 *
 * @module
 */

const immediate = (globalThis as { setImmediate?: (callback: () => void) => unknown }).setImmediate;

/**
 * Resolves after the I/O callbacks that are due have run: `setImmediate` in Node (after the
 * poll phase); in a browser a `MessageChannel` message, which unlike `setTimeout(0)` is not
 * clamped to 4 ms when called in a row.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise<void>((resolve) => {
    if (immediate !== undefined) {
      immediate(resolve);
      return;
    }
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(undefined);
  });
}
