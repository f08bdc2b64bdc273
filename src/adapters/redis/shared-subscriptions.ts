/**
 * Local listeners of Redis pub/sub channels sharing one SUBSCRIBE per channel on one subscriber
 * connection: the first listener of a channel subscribes, the last one gone unsubscribes. Used by
 * every adapter that listens (event bus, request streams, run states), so the bookkeeping that
 * decides when a channel is (un)subscribed lives once.
 */
import type { Redis } from "ioredis";

interface ChannelState<L> {
  listeners: Set<L>;
  /** Resolves once SUBSCRIBE for this channel was acknowledged. */
  ready: Promise<void>;
}

export class SharedSubscriptions<L> {
  private readonly channels = new Map<string, ChannelState<L>>();

  constructor(
    private readonly sub: Redis,
    /** When true, unsubscribing sends nothing (the connection is being closed). */
    private readonly closed: () => boolean,
  ) {}

  /** The channel's listeners now (a copy: a listener may remove itself or others meanwhile). */
  listenersOf(channel: string): L[] {
    return [...(this.channels.get(channel)?.listeners ?? [])];
  }

  /** Whether `listener` still listens on `channel` (an earlier listener of a delivery may have left). */
  has(channel: string, listener: L): boolean {
    return this.channels.get(channel)?.listeners.has(listener) ?? false;
  }

  /**
   * Adds a listener; resolves once the channel's subscription is live (rejects, adding nothing, if
   * it cannot be made). Returns the function that removes it, idempotent.
   */
  async add(channel: string, listener: L): Promise<() => Promise<void>> {
    let state = this.channels.get(channel);
    if (!state) {
      const ready = this.sub.subscribe(channel).then(() => undefined);
      state = { listeners: new Set(), ready };
      this.channels.set(channel, state);
      const created = state;
      ready.catch(() => {
        if (this.channels.get(channel) === created) this.channels.delete(channel);
      });
    }
    state.listeners.add(listener);
    try {
      await state.ready;
    } catch (err) {
      state.listeners.delete(listener);
      throw err;
    }
    const added = state;
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      added.listeners.delete(listener);
      if (added.listeners.size === 0 && this.channels.get(channel) === added) {
        this.channels.delete(channel);
        // Commands on one connection run in order, so a later SUBSCRIBE of the same channel wins.
        // A failed UNSUBSCRIBE (Redis down) leaves a subscription whose messages find no listener.
        if (!this.closed()) await this.sub.unsubscribe(channel).catch(() => undefined);
      }
    };
  }

  clear(): void {
    this.channels.clear();
  }
}
