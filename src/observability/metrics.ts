/**
 * Prometheus metrics. Each component gets its own Registry so that `all` mode can serve the union
 * and tests can create components repeatedly without "metric already registered" errors.
 */
import { Registry, collectDefaultMetrics, Counter, Histogram, Gauge } from "prom-client";

export { Registry, Counter, Histogram, Gauge };

export function createRegistry(options: { defaultMetrics?: boolean; component?: string } = {}): Registry {
  const registry = new Registry();
  if (options.component) registry.setDefaultLabels({ component: options.component });
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry });
  return registry;
}

export async function renderMetrics(registries: Registry[]): Promise<{ contentType: string; body: string }> {
  const merged = Registry.merge(registries);
  return { contentType: merged.contentType, body: await merged.metrics() };
}

/**
 * Get-or-create: in `all` mode several components share one registry and the same metric names
 * (messages_published_total from gateway and worker, say); they share the metric instead of clashing.
 */
export function counter<L extends string>(registry: Registry, config: { name: string; help: string; labelNames?: readonly L[] }): Counter<L> {
  return (registry.getSingleMetric(config.name) as Counter<L> | undefined) ?? new Counter<L>({ ...config, registers: [registry] });
}

/** `collect` runs on every scrape: a gauge that reads its value then is never stale. */
export function gauge<L extends string>(
  registry: Registry,
  config: { name: string; help: string; labelNames?: readonly L[]; collect?: (this: Gauge<L>) => void },
): Gauge<L> {
  return (registry.getSingleMetric(config.name) as Gauge<L> | undefined) ?? new Gauge<L>({ ...config, registers: [registry] });
}

export function histogram<L extends string>(
  registry: Registry,
  config: { name: string; help: string; labelNames?: readonly L[]; buckets?: number[] },
): Histogram<L> {
  return (registry.getSingleMetric(config.name) as Histogram<L> | undefined) ?? new Histogram<L>({ ...config, registers: [registry] });
}

/** A gauge read from `read()` whenever Prometheus scrapes, so it is never stale (get-or-create too). */
export function sampledGauge(registry: Registry, config: { name: string; help: string }, read: () => number): Gauge {
  return (
    (registry.getSingleMetric(config.name) as Gauge | undefined) ??
    new Gauge({
      ...config,
      registers: [registry],
      collect() {
        this.set(read());
      },
    })
  );
}
