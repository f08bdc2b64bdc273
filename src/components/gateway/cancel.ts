/**
 * Cancelling a request: the run-state decides between the worker and the cancel, whichever comes
 * first. Not started: it never will be; it is finished here as `cancelled` and its reservation is
 * released (the worker that later takes its message only acks it). Running: the worker hears the
 * cancel, aborts the model call and reports what was processed, which the collector charges. Either
 * way exactly one outcome is stored, also when the cancel races completion (then completion wins).
 */
import type { EventBus, QuotaStore, RequestStore, RequestStreams, RequestView, RunStates } from "../../domain/ports.js";
import type { Logger } from "../../observability/logger.js";
import { isFinal, waitForFinal } from "../../domain/wait-for-final.js";

export interface CancelDeps {
  log: Logger;
  runs: RunStates;
  requests: RequestStore;
  quota: QuotaStore;
  events: EventBus;
  streams: RequestStreams;
  now: () => Date;
  recheckMs: number;
}

/** How long a cancel waits for the worker to report a running request's end before answering. */
const RUNNING_WAIT_MS = 10_000;

export function createCanceller(deps: CancelDeps) {
  return async function cancel(request: RequestView): Promise<RequestView> {
    if (isFinal(request)) return request;
    const decided = await deps.runs.cancel(request.requestId);
    if (decided === "before_start") {
      const { changed } = await deps.requests.finish({
        requestId: request.requestId,
        status: "cancelled",
        at: deps.now(),
        outputText: null,
        outputs: null,
        usage: null,
        error: null,
        finishReason: "cancelled",
        attempt: 1,
      });
      if (changed) {
        await deps.quota.release({ userId: request.userId, requestId: request.requestId });
        if (request.streamTokens) {
          await deps.streams.append(request.requestId, [
            { seq: 1, type: "final", status: "cancelled", usage: null, finishReason: "cancelled", error: null },
          ]);
        }
        await deps.events
          .publish({ request_id: request.requestId, user_id: request.userId, status: "cancelled", final: true })
          .catch((error: unknown) => deps.log.warn({ err: error, request_id: request.requestId }, "could not notify waiting clients"));
        deps.log.info({ request_id: request.requestId }, "request cancelled before it started");
      }
    }
    return waitForFinal(deps, request.requestId, { timeoutMs: RUNNING_WAIT_MS });
  };
}

export type Cancel = ReturnType<typeof createCanceller>;
