/** The ML Service's own metrics (the HTTP request metrics come from the shared shell). */
import type { Engine } from "../../engines/types.js";
import { counter, gauge, histogram, type Counter, type Histogram, type Registry } from "../../observability/metrics.js";

export interface MlMetrics {
  requests: Counter<"model">;
  tokens: Counter<"type" | "model">;
  seconds: Histogram<"model">;
  errors: Counter<"model" | "code">;
  aborted: Counter<"model">;
}

export function createMlMetrics(registry: Registry, engine: Engine): MlMetrics {
  // Gauges read from the engine when Prometheus scrapes, so they are never stale.
  const sampled = (name: string, help: string, read: () => number) =>
    gauge(registry, {
      name,
      help,
      collect() {
        this.set(read());
      },
    });
  sampled("ml_requests_running", "Generation requests holding a context sequence now", () => engine.stats().running);
  sampled("ml_requests_waiting", "Generation requests waiting for a free sequence", () => engine.stats().waiting);
  sampled("ml_model_loaded", "1 once the model is loaded and serving", () => (engine.loaded ? 1 : 0));
  return {
    requests: counter(registry, { name: "ml_requests_total", help: "Generation requests received", labelNames: ["model"] }),
    tokens: counter(registry, {
      name: "ml_tokens_processed_total",
      help: "Tokens processed, by type (prompt | completion)",
      labelNames: ["type", "model"],
    }),
    seconds: histogram(registry, {
      name: "ml_processing_seconds",
      help: "Time to answer a generation request (queue wait included)",
      labelNames: ["model"],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    }),
    errors: counter(registry, { name: "ml_request_errors_total", help: "Requests refused or failed, by error code", labelNames: ["model", "code"] }),
    aborted: counter(registry, {
      name: "ml_requests_aborted_total",
      help: "Generations stopped because the client went away",
      labelNames: ["model"],
    }),
  };
}
