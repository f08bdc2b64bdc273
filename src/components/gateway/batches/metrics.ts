/**
 * The Batch API's Prometheus metrics, on the gateway's registry:
 * - `batch_lines_total{outcome}`: lines ended, counted where the store really ended them (a line two
 *   replicas both saw finish is counted once, by the one whose statement changed it);
 * - `batches_finished_total{status}`: batches that reached a final status (failed validation included);
 * - `batch_lines_pending{model}`: lines not yet dispatched, counted in PostgreSQL every interval. Every
 *   replica reports the same count (it is the database's), so read it with `max`, not `sum`: the
 *   worker's autoscaler does (manifests/benthos/keda-scaledobjects.yaml).
 */
import type { BatchStatus, BatchStore, LineEnding } from "../../../domain/batches.js";
import type { Logger } from "../../../observability/logger.js";
import { counter, gauge, type Registry } from "../../../observability/metrics.js";

const ENDINGS: readonly LineEnding[] = ["completed", "failed", "refused", "cancelled", "expired"];
const FINAL: readonly BatchStatus[] = ["completed", "failed", "expired", "cancelled"];

export interface BatchMetricsDeps {
  registry: Registry;
  store: Pick<BatchStore, "listen" | "pendingLinesByModel">;
  /** Models whose backlog is reported (0 until lines wait), so the autoscaler's query always has a series. */
  models: readonly string[];
  intervalMs: number;
  log: Logger;
}

export class BatchMetrics {
  private readonly lines;
  private readonly batches;
  private readonly pending;
  private readonly seen = new Set<string>();
  private unlisten: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly deps: BatchMetricsDeps) {
    this.lines = counter(deps.registry, { name: "batch_lines_total", help: "Batch lines ended, by outcome (completed, failed, refused at admission, cancelled or expired before running)", labelNames: ["outcome"] });
    this.batches = counter(deps.registry, { name: "batches_finished_total", help: "Batches that reached a final status, by status", labelNames: ["status"] });
    this.pending = gauge(deps.registry, { name: "batch_lines_pending", help: "Batch lines not yet dispatched, by model (the database's count: the same on every replica)", labelNames: ["model"] });
    // Every series exists from the start: rate() and the autoscaler see 0, not nothing.
    for (const outcome of ENDINGS) this.lines.inc({ outcome }, 0);
    for (const status of FINAL) this.batches.inc({ status }, 0);
    for (const model of new Set(deps.models)) {
      this.seen.add(model);
      this.pending.set({ model }, 0);
    }
  }

  start(): void {
    if (this.unlisten) return;
    this.unlisten = this.deps.store.listen({
      linesEnded: (outcome, count) => this.lines.inc({ outcome }, count),
      batchFinished: (status) => this.batches.inc({ status }),
    });
    const loop = () => {
      this.running = this.refresh()
        .catch((error: unknown) => this.deps.log.warn({ err: error }, "batch backlog not counted; keeping the last count"))
        .finally(() => {
          this.running = undefined;
          if (!this.unlisten) return;
          this.timer = setTimeout(loop, this.deps.intervalMs);
          this.timer.unref?.();
        });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.unlisten?.();
    this.unlisten = undefined;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Counts the backlog now; a model whose lines are all gone reads 0 again. */
  async refresh(): Promise<void> {
    const counts = await this.deps.store.pendingLinesByModel();
    for (const model of counts.keys()) this.seen.add(model);
    for (const model of this.seen) this.pending.set({ model }, counts.get(model) ?? 0);
  }
}
