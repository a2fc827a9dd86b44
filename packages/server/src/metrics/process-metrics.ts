/**
 * Node's process metrics (`process_*`, `nodejs_*`, from prom-client's default metrics) in a
 * form that lints clean with `promtool check metrics`.
 *
 * prom-client also reports `nodejs_active_handles_total`, `nodejs_active_requests_total` and
 * `nodejs_active_resources_total`: gauges whose `_total` suffix marks counters in Prometheus'
 * naming rules. Each is the sum of the per-type gauge beside it (`nodejs_active_handles{type}`
 * counts the same handles grouped by type), so they are left out and nothing is lost: the total
 * is `sum without (type) (nodejs_active_handles)`.
 *
 * @module
 */
import { Counter, collectDefaultMetrics, type Registry } from 'prom-client';

/** A default metric that is always there, to tell whether a registry already has them. */
const MARKER = 'process_cpu_user_seconds_total';

/**
 * Registers Node's process metrics into `registry` (once: a second call does nothing), less
 * every non-counter whose name ends in `_total`.
 */
export function collectProcessMetrics(registry: Registry): void {
  if (registry.getSingleMetric(MARKER) !== undefined) return;
  collectDefaultMetrics({ register: registry });
  for (const metric of registry.getMetricsAsArray()) {
    if (metric.name.endsWith('_total') && !(metric instanceof Counter))
      registry.removeSingleMetric(metric.name);
  }
}
