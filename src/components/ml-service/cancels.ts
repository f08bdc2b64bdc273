/**
 * Whole (non-streamed) `/inference` calls that a caller can stop by id without hanging up:
 * `POST /inference/{id}/cancel` aborts the generation, and its answer still comes back, with the
 * text and the tokens processed until then (finish_reason "abort"). So the worker calls the cheaper
 * whole answer for a client that is not streaming and a cancel still settles exactly what ran.
 * The id is the call's `x-request-id`. A cancel that arrives before its call is remembered for a
 * while, so the call is stopped as soon as it comes.
 */
const EARLY_CANCEL_TTL_MS = 60_000;
const EARLY_CANCELS_KEPT = 10_000;
const MAX_ID_CHARS = 128;

export class CancellableCalls {
  private readonly running = new Map<string, Set<AbortController>>();
  /** Cancels of calls not seen yet: id → when the cancel came. Oldest first (insertion order). */
  private readonly early = new Map<string, number>();

  constructor(private readonly clock: () => number = Date.now) {}

  /** The signal a call runs under: its client's disconnect, or a cancel of its id. `done` when it ends. */
  track(id: string | undefined, disconnect: AbortSignal): { signal: AbortSignal; done: () => void } {
    const controller = new AbortController();
    const onDisconnect = () => controller.abort(disconnect.reason);
    if (disconnect.aborted) controller.abort(disconnect.reason);
    else disconnect.addEventListener("abort", onDisconnect, { once: true });
    if (id === undefined || id.length === 0 || id.length > MAX_ID_CHARS) {
      return { signal: controller.signal, done: () => disconnect.removeEventListener("abort", onDisconnect) };
    }
    const cancelledAt = this.early.get(id);
    if (cancelledAt !== undefined) {
      this.early.delete(id);
      if (this.clock() - cancelledAt <= EARLY_CANCEL_TTL_MS) controller.abort(new Error("cancelled by its caller"));
    }
    let calls = this.running.get(id);
    if (!calls) this.running.set(id, (calls = new Set()));
    calls.add(controller);
    return {
      signal: controller.signal,
      done: () => {
        disconnect.removeEventListener("abort", onDisconnect);
        calls.delete(controller);
        if (calls.size === 0 && this.running.get(id) === calls) this.running.delete(id);
      },
    };
  }

  /** Stops the calls with this id; answers whether one was running (else the cancel waits for it). */
  cancel(id: string): boolean {
    const calls = this.running.get(id);
    if (calls && calls.size > 0) {
      for (const controller of calls) controller.abort(new Error("cancelled by its caller"));
      return true;
    }
    if (id.length > 0 && id.length <= MAX_ID_CHARS) {
      this.early.delete(id);
      this.early.set(id, this.clock());
      for (const [oldest, at] of this.early) {
        if (this.early.size <= EARLY_CANCELS_KEPT && this.clock() - at <= EARLY_CANCEL_TTL_MS) break;
        this.early.delete(oldest);
      }
    }
    return false;
  }

  /** Calls tracked now (for tests). */
  get size(): number {
    return this.running.size;
  }
}
