/**
 * Holding a client's connection until its request ends: the final event (EventBus) wakes the
 * waiter, and the stored row says what happened. The row is read again every `recheckMs`, so an
 * outcome whose event was lost (a pub/sub reconnect) still ends the wait, one recheck late.
 */
import type { EventBus, RequestStore, RequestView } from "./ports.js";

const FINAL = new Set(["completed", "failed", "cancelled"]);
export const isFinal = (view: Pick<RequestView, "status">) => FINAL.has(view.status);

export class WaitAborted extends Error {
  constructor() {
    super("stopped waiting");
    this.name = "WaitAborted";
  }
}

export interface HoldDeps {
  events: EventBus;
  requests: Pick<RequestStore, "view">;
  recheckMs: number;
}

/**
 * Resolves with the request once it is final; rejects with WaitAborted when `signal` aborts, and
 * with the store's error if the request cannot be read. `timeoutMs` (optional) resolves with the
 * latest view instead, final or not.
 */
export async function waitForFinal(deps: HoldDeps, requestId: string, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<RequestView> {
  const { signal } = options;
  if (signal?.aborted) throw new WaitAborted();
  let wake: () => void = () => undefined;
  let woken = false;
  const unsubscribe = await deps.events.subscribe(requestId, (event) => {
    if (event.final || FINAL.has(event.status)) {
      woken = true;
      wake();
    }
  });
  const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
  try {
    for (;;) {
      const view = await deps.requests.view(requestId);
      if (!view) throw new Error(`request ${requestId} vanished`);
      if (isFinal(view) || Date.now() >= deadline) return view;
      if (!woken) {
        await new Promise<void>((resolve, reject) => {
          const onAbort = () => {
            cleanup();
            reject(new WaitAborted());
          };
          const timer = setTimeout(done, Math.min(deps.recheckMs, Math.max(0, deadline - Date.now())));
          function done() {
            cleanup();
            resolve();
          }
          function cleanup() {
            clearTimeout(timer);
            signal?.removeEventListener("abort", onAbort);
            wake = () => undefined;
          }
          wake = done;
          signal?.addEventListener("abort", onAbort, { once: true });
          if (signal?.aborted) onAbort();
        });
      }
      woken = false;
    }
  } finally {
    await unsubscribe().catch(() => undefined);
  }
}
