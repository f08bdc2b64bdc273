/**
 * Listeners by key (a request id), for the in-process hubs that stand for a server's pub/sub: a
 * key is kept only while it has a listener, and a delivery skips listeners removed meanwhile by
 * an earlier one. One owner of that bookkeeping for the event bus and the request streams.
 */
export class ListenerSets<L> {
  private readonly sets = new Map<string, Set<L>>();

  add(key: string, listener: L): void {
    let set = this.sets.get(key);
    if (!set) {
      set = new Set();
      this.sets.set(key, set);
    }
    set.add(listener);
  }

  remove(key: string, listener: L): void {
    const set = this.sets.get(key);
    if (!set) return;
    set.delete(listener);
    if (set.size === 0) this.sets.delete(key);
  }

  /** Calls `deliver` for each listener of `key` still there when its turn comes; a throw stops none. */
  each(key: string, deliver: (listener: L) => void): void {
    const set = this.sets.get(key);
    if (!set) return;
    for (const listener of [...set]) {
      if (!set.has(listener)) continue;
      try {
        deliver(listener);
      } catch {
        /* a failing listener must not stop the others */
      }
    }
  }

  /** Keys with at least one listener. */
  get size(): number {
    return this.sets.size;
  }
}
