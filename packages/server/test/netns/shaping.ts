/**
 * Link shaping with a token bucket filter (`tc qdisc ... tbf`): a rate in Mbit/s, a bucket of
 * one millisecond at that rate (at least 4 KiB, more than one full frame) and a queue of at
 * most 100 ms, so a shaped link is slow but not a deep buffer that delays heartbeats for seconds.
 *
 * @module
 */

/** How one link is shaped. */
export interface LinkShape {
  /** Rate of each direction, in Mbit/s. */
  readonly rateMbit: number;
}

/** Longest time a packet may wait in the shaper's queue, in ms. */
const QUEUE_LATENCY_MS = 100;

/** The `tc qdisc replace dev <device> root tbf ...` arguments for `shape`. */
export function tbfArguments(device: string, shape: LinkShape): string[] {
  if (!(Number.isFinite(shape.rateMbit) && shape.rateMbit > 0)) {
    throw new Error(`rateMbit must be a positive number, got ${shape.rateMbit}`);
  }
  const bytesPerSecond = (shape.rateMbit * 1e6) / 8;
  const burstBytes = Math.max(4096, Math.ceil(bytesPerSecond / 1000));
  const kbit = Math.max(1, Math.round(shape.rateMbit * 1000));
  return [
    'qdisc',
    'replace',
    'dev',
    device,
    'root',
    'tbf',
    'rate',
    `${kbit}kbit`,
    'burst',
    String(burstBytes),
    'latency',
    `${QUEUE_LATENCY_MS}ms`,
  ];
}
