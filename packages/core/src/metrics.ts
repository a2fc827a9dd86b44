/**
 * The metrics interface core reports through. The server binds it to prom-client; the
 * default does nothing, so core never depends on a metrics library.
 */
export interface Metrics {
  /** Adds `value` (default 1) to a counter. */
  increment(name: string, labels?: Record<string, string>, value?: number): void;
  /** Records one observation in a histogram (seconds or bytes). */
  observe(name: string, labels: Record<string, string>, value: number): void;
  /** Sets a gauge. */
  set(name: string, labels: Record<string, string>, value: number): void;
  /**
   * Forgets the series of metric `name` with exactly these `labels` (e.g. every per-worker
   * gauge of a worker that left), so it is no longer exported. Optional: a sink that keeps no
   * series (one that forwards each call) has nothing to forget.
   */
  remove?(name: string, labels: Record<string, string>): void;
}

/** A {@link Metrics} that records nothing. */
export const noopMetrics: Metrics = {
  increment() {},
  observe() {},
  set() {},
  remove() {},
};
