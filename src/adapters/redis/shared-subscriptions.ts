/**
 * Local listeners of Redis pub/sub channels sharing one SUBSCRIBE per channel on one subscriber
 * connection: the first listener of a channel subscribes, the last one gone unsubscribes. Used by
 * every adapter that listens (event bus, request streams, run states), so the bookkeeping that
 * decides when a channel is (un)subscribed lives once.
 *
 * Channels (un)subscribed at about the same moment share one command: a batch dispatcher or a
 * burst of streams subscribes dozens of request channels at once, and each command is a write of
 * its own on the connection (a system call), which costs more than the command. SUBSCRIBEs wait
 * only for the current microtasks; UNSUBSCRIBEs, which nobody waits for, until the next turn of the
 * event loop. A channel subscribed again before its UNSUBSCRIBE went out keeps its subscription.
 */
import type { Redis } from "ioredis";

interface ChannelState<L> {
  listeners: Set<L>;
  /** Resolves once SUBSCRIBE for this channel was acknowledged. */
  ready: Promise<void>;
}

export class SharedSubscriptions<L> {
  private readonly channels = new Map<string, ChannelState<L>>();
  /** Channels whose SUBSCRIBE goes out with the next command, and its acknowledgement. */
  private subscribing: { channels: string[]; ready: Promise<void> } | undefined;
  /** Channels whose UNSUBSCRIBE goes out with the next command, and its answer. */
  private unsubscribing: { channels: Set<string>; done: Promise<void> } | undefined;

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
      const ready = this.subscribeSoon(channel);
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
        await this.unsubscribeSoon(channel);
      }
    };
  }

  private subscribeSoon(channel: string): Promise<void> {
    // Its UNSUBSCRIBE has not gone out: the subscription is still live on the connection.
    if (this.unsubscribing?.channels.delete(channel)) return Promise.resolve();
    if (!this.subscribing) {
      const batch = { channels: [] as string[], ready: Promise.resolve() };
      batch.ready = new Promise<void>((resolve) => queueMicrotask(resolve)).then(async () => {
        if (this.subscribing === batch) this.subscribing = undefined;
        await this.sub.subscribe(...batch.channels);
      });
      this.subscribing = batch;
    }
    this.subscribing.channels.push(channel);
    return this.subscribing.ready;
  }

  /** Resolves once the UNSUBSCRIBE that carries the channel was answered (or failed). */
  private unsubscribeSoon(channel: string): Promise<void> {
    if (this.closed()) return Promise.resolve();
    if (!this.unsubscribing) {
      const batch = { channels: new Set<string>(), done: Promise.resolve() };
      batch.done = new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
        if (this.unsubscribing === batch) this.unsubscribing = undefined;
        // Commands on one connection run in order, so a later SUBSCRIBE of the same channel wins.
        // A failed UNSUBSCRIBE (Redis down) leaves a subscription whose messages find no listener.
        if (batch.channels.size > 0 && !this.closed()) await this.sub.unsubscribe(...batch.channels).catch(() => undefined);
      });
      this.unsubscribing = batch;
    }
    this.unsubscribing.channels.add(channel);
    return this.unsubscribing.done;
  }

  clear(): void {
    this.channels.clear();
    this.unsubscribing?.channels.clear();
  }
}
