/**
 * The gateway's admission over a started platform's adapters, for suites that drive a batch
 * dispatcher of their own (replicas, restarts) instead of the gateway's.
 */
import { createAdmission } from "../../src/components/gateway/admission.js";
import { PublishedMarker } from "../../src/components/gateway/published-marker.js";
import { QueueEstimator } from "../../src/components/gateway/queue-estimator.js";
import { SqlBacklogStats } from "../../src/adapters/postgres/backlog-stats.js";
import { silentLogger } from "../../src/observability/logger.js";
import type { Platform } from "./platform.js";

export function platformAdmission(platform: Platform) {
  return createAdmission({
    log: silentLogger,
    quota: platform.quota,
    requests: platform.requests,
    outbox: platform.outbox,
    queue: platform.queue,
    requestsQueue: platform.queues.requests,
    insert: async (request) => (await platform.requests.insertMany([request])).inserted.has(request.requestId),
    marker: new PublishedMarker(platform.outbox, silentLogger),
    estimator: new QueueEstimator({ stats: new SqlBacklogStats(platform.database.db), log: silentLogger, intervalMs: 1_000, windowSeconds: 30, recentRequests: 256, now: () => new Date() }),
    onPublished: () => undefined,
    now: () => new Date(),
  });
}
