/**
 * `describe` for tests that need network namespaces: where the machine cannot make them (not
 * root, no `ip netns`, no `tc`), the block holds one skipped test whose name says why, so the
 * skip shows in every report instead of passing in silence.
 *
 * @module
 */
import { describe, it } from 'vitest';
import { probeNetnsSupport } from './support.js';

const support = await probeNetnsSupport();

/** Why the namespaced tests cannot run here, or `undefined` when they can. */
export const netnsUnsupportedReason: string | undefined = support.supported ? undefined : support.reason;

/** Declares `body` under `title`, or a skipped test naming the reason (see the module comment). */
export function describeNetns(title: string, body: () => void): void {
  if (netnsUnsupportedReason === undefined) {
    describe(title, body);
    return;
  }
  console.warn(`${title}: skipped, ${netnsUnsupportedReason}`);
  describe(title, () => {
    it.skip(`needs network namespaces: ${netnsUnsupportedReason}`, () => {});
  });
}
