/**
 * In-process EventBus. Bus instances created over the same MemoryEventHub see each other's events,
 * as replicas sharing one Redis do; `new MemoryEventBus()` gets a hub of its own.
 * Events are copied through JSON and validated like the Redis bus does, so listeners never share
 * objects with the publisher and both adapters deliver the same shapes.
 */
import { requestEventSchema, type RequestEvent } from "../../domain/contracts.js";
import type { EventBus } from "../../domain/ports.js";
import { ListenerSets } from "./listener-sets.js";

type Listener = (event: RequestEvent) => void;

export class MemoryEventHub {
  private readonly listeners = new ListenerSets<Listener>();

  add(requestId: string, listener: Listener): void {
    this.listeners.add(requestId, listener);
  }

  remove(requestId: string, listener: Listener): void {
    this.listeners.remove(requestId, listener);
  }

  /** Deliver a serialized event to the listeners of its request id, each its own parsed copy. */
  emit(requestId: string, payload: string): void {
    this.listeners.each(requestId, (listener) => {
      const parsed = requestEventSchema.safeParse(JSON.parse(payload));
      if (parsed.success) listener(parsed.data);
    });
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
