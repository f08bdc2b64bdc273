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
