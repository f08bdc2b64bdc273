/**
 * In-process RunStates. Instances created over the same MemoryRunStateHub share states and cancel
 * notices, as replicas sharing one Redis do; `new MemoryRunStates()` gets a hub of its own.
 *
 * Each claim or cancel reads and writes its state in one synchronous step, so, as with the Redis
 * script, whichever reaches the hub first wins. Notices are delivered on a later tick (as from a
 * server: cancel never runs watchers inside the caller). A state expires ttlMs after its last
 * change, on the hub's clock (injectable for tests); expired states are swept as writes go on, so
 * nothing accumulates.
 */
import type { RunStates } from "../../domain/ports.js";
import {
  DEFAULT_RUN_STATE_TTL_MS,
  assertRunStateRequestId,
  assertTtlMs,
  isPlausibleRequestId,
} from "../../domain/run-state-ids.js";

type CancelListener = (requestId: string) => void;
type RunState = "running" | "cancelling" | "cancelled";
type ClaimResult = Awaited<ReturnType<RunStates["claimRun"]>>;
type CancelResult = Awaited<ReturnType<RunStates["cancel"]>>;

/**
 * Writes between sweeps at the least. A sweep also waits for as many writes as it left states
 * behind, so its cost is paid by the writes before it (amortized O(1) a write).
 */
const MIN_WRITES_PER_SWEEP = 1024;

export class MemoryRunStateHub {
  private readonly states = new Map<string, { state: RunState; expiresAt: number }>();
  private readonly listeners = new Set<CancelListener>();
  private readonly clock: () => number;
  private writesSinceSweep = 0;
  private sizeAfterSweep = 0;

  constructor(options: { clock?: () => number } = {}) {
    this.clock = options.clock ?? Date.now;
  }

  /** The live state of a request, or undefined (never set, or expired). */
  get(requestId: string): RunState | undefined {
    const entry = this.states.get(requestId);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.clock()) {
      this.states.delete(requestId);
      return undefined;
    }
    return entry.state;
  }

  set(requestId: string, state: RunState, ttlMs: number): void {
    this.states.set(requestId, { state, expiresAt: this.clock() + ttlMs });
    if (++this.writesSinceSweep >= Math.max(MIN_WRITES_PER_SWEEP, this.sizeAfterSweep)) this.sweep();
  }

  /** Milliseconds until the state of a request expires, or undefined when it has none (for tests). */
  remainingMs(requestId: string): number | undefined {
    return this.get(requestId) === undefined ? undefined : this.states.get(requestId)!.expiresAt - this.clock();
  }

  /** Number of states held, live or expired but not yet swept (for tests). */
  get size(): number {
    return this.states.size;
  }

  /** Drops every expired state. */
  sweep(): void {
    this.writesSinceSweep = 0;
    const now = this.clock();
    for (const [requestId, entry] of this.states) if (entry.expiresAt <= now) this.states.delete(requestId);
    this.sizeAfterSweep = this.states.size;
  }

  add(listener: CancelListener): void {
    this.listeners.add(listener);
  }

  remove(listener: CancelListener): void {
    this.listeners.delete(listener);
  }

  /** Tells every watcher of every instance, on a later tick. */
  publishCancel(requestId: string): void {
    setImmediate(() => {
      if (!isPlausibleRequestId(requestId)) return;
      for (const listener of [...this.listeners]) {
        if (!this.listeners.has(listener)) continue; // unwatched by an earlier listener
        try {
          listener(requestId);
        } catch {
          /* a failing listener must not stop the others */
        }
      }
    });
  }

  /** Number of watchers on all instances (for tests). */
  get watchers(): number {
    return this.listeners.size;
  }
}

export interface MemoryRunStatesOptions {
  /** Shared with other instances standing for replicas (default: a hub of its own). */
  hub?: MemoryRunStateHub;
  /** How long a state is kept after its last change (default 24 h). */
  ttlMs?: number;
}

export class MemoryRunStates implements RunStates {
  readonly hub: MemoryRunStateHub;
  private readonly ttlMs: number;
  private readonly mine = new Set<CancelListener>();
  private closed = false;

  constructor(options: MemoryRunStatesOptions = {}) {
    this.hub = options.hub ?? new MemoryRunStateHub();
    this.ttlMs = options.ttlMs ?? DEFAULT_RUN_STATE_TTL_MS;
    assertTtlMs(this.ttlMs);
  }

  async claimRun(requestId: string): Promise<ClaimResult> {
    this.assertOpen(requestId);
    const state = this.hub.get(requestId);
    if (state === "cancelled" || state === "cancelling") return "cancelled";
    // none, or running: a redelivery after a worker crash must run again; its TTL starts anew
    this.hub.set(requestId, "running", this.ttlMs);
    return "run";
  }

  async cancel(requestId: string): Promise<CancelResult> {
    this.assertOpen(requestId);
    const state = this.hub.get(requestId);
    if (state === undefined) {
      this.hub.set(requestId, "cancelled", this.ttlMs);
      return "before_start";
    }
    if (state === "running") {
      this.hub.set(requestId, "cancelling", this.ttlMs);
      this.hub.publishCancel(requestId);
      return "running";
    }
    return "already_cancelled";
  }

  async watchCancels(listener: CancelListener): Promise<() => Promise<void>> {
    if (this.closed) throw new Error("run states are closed");
    // A wrapper per watch, so the same function watching twice is two watches.
    const own: CancelListener = (requestId) => listener(requestId);
    this.mine.add(own);
    this.hub.add(own);
    return async () => {
      if (!this.mine.delete(own)) return;
      this.hub.remove(own);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const listener of this.mine) this.hub.remove(listener);
    this.mine.clear();
  }

  private assertOpen(requestId: string): void {
    if (this.closed) throw new Error("run states are closed");
    assertRunStateRequestId(requestId);
  }
}
