/**
 * In-process EventBus. Bus instances created over the same MemoryEventHub see each other's events,
 * as replicas sharing one Redis do; `new MemoryEventBus()` gets a hub of its own.
 * Events are copied through JSON and validated like the Redis bus does, so listeners never share
 * objects with the publisher and both adapters deliver the same shapes.
 */
import { requestEventSchema, type RequestEvent } from "../../domain/contracts.js";
import type { EventBus } from "../../domain/ports.js";

type Listener = (event: RequestEvent) => void;

export class MemoryEventHub {
  private readonly listeners = new Map<string, Set<Listener>>();

  add(requestId: string, listener: Listener): void {
    let set = this.listeners.get(requestId);
    if (!set) {
      set = new Set();
      this.listeners.set(requestId, set);
    }
    set.add(listener);
  }

  remove(requestId: string, listener: Listener): void {
    const set = this.listeners.get(requestId);
    if (!set) return;
    set.delete(listener);
    if (set.size === 0) this.listeners.delete(requestId);
  }

  /** Deliver a serialized event to the listeners of its request id. */
  emit(requestId: string, payload: string): void {
    const set = this.listeners.get(requestId);
    if (!set) return;
    for (const listener of [...set]) {
      if (!set.has(listener)) continue; // unsubscribed by an earlier listener
      const parsed = requestEventSchema.safeParse(JSON.parse(payload));
      if (!parsed.success) return;
      try {
        listener(parsed.data);
      } catch {
        /* a failing listener must not stop the others */
      }
    }
  }

  /** Number of request ids with at least one listener (for tests and metrics). */
  get subscribedRequests(): number {
    return this.listeners.size;
  }
}

export class MemoryEventBus implements EventBus {
  private readonly hub: MemoryEventHub;
  private readonly mine = new Set<{ requestId: string; listener: Listener }>();
  private closed = false;

  constructor(options: { hub?: MemoryEventHub } = {}) {
    this.hub = options.hub ?? new MemoryEventHub();
  }

  async publish(event: RequestEvent): Promise<void> {
    if (this.closed) throw new Error("event bus is closed");
    const payload = JSON.stringify(event);
    // Delivered on a later tick, as from a server: publish never runs listeners inside the caller.
    setImmediate(() => this.hub.emit(event.request_id, payload));
  }

  async subscribe(requestId: string, listener: Listener): Promise<() => Promise<void>> {
    if (this.closed) throw new Error("event bus is closed");
    // A wrapper per subscription, so the same function subscribed twice is two subscriptions.
    const entry = { requestId, listener: (event: RequestEvent) => listener(event) };
    this.mine.add(entry);
    this.hub.add(requestId, entry.listener);
    return async () => {
      if (!this.mine.delete(entry)) return;
      this.hub.remove(requestId, entry.listener);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const { requestId, listener } of this.mine) this.hub.remove(requestId, listener);
    this.mine.clear();
  }
}
