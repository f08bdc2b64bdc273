/**
 * Natural batching, for writes (Batcher) and reads (BatchLoader): work handed in while earlier batches are in flight is gathered and written in
 * one statement. An idle batcher writes at once (no timer, so no added latency); under load, up to
 * `maxInFlight` batches of at most `maxBatch` items run concurrently. Each caller's promise settles
 * with its own batch, so a failed batch fails exactly the requests in it.
 *
 * With `lingerMs`, a batch that is not full waits until its oldest item is that old: for work whose
 * callers can afford a few milliseconds (the collector's outcomes), so that at a moderate rate many
 * items share one statement and one write to each server instead of one each.
 */
export interface BatcherOptions {
  maxBatch: number;
  maxInFlight: number;
  /** How long a batch that is not full may wait for more items (default 0: never waits); asked anew for each batch when a function. */
  lingerMs?: number | (() => number);
}

export class Batcher<T> {
  private waiting: Array<{ item: T; at: number; resolve: () => void; reject: (error: unknown) => void }> = [];
  private inFlight = 0;
  private lingering: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly write: (items: T[]) => Promise<void>,
    private readonly options: BatcherOptions = { maxBatch: 64, maxInFlight: 4 },
  ) {}

  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ item, at: performance.now(), resolve, reject });
      this.pump();
    });
  }

  /** Milliseconds the next batch should still wait for more items; 0 when it should go now. */
  private lingerLeft(): number {
    const option = this.options.lingerMs ?? 0;
    const linger = typeof option === "function" ? option() : option;
    if (linger <= 0 || this.waiting.length >= this.options.maxBatch) return 0;
    return Math.max(0, linger - (performance.now() - this.waiting[0]!.at));
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.waiting.length > 0) {
      const wait = this.lingerLeft();
      if (wait > 0) {
        this.lingering ??= setTimeout(() => {
          this.lingering = undefined;
          this.pump();
        }, Math.ceil(wait));
        return;
      }
      const batch = this.waiting.splice(0, this.options.maxBatch);
      this.inFlight += 1;
      this.write(batch.map((entry) => entry.item)).then(
        () => {
          for (const entry of batch) entry.resolve();
        },
        (error: unknown) => {
          for (const entry of batch) entry.reject(error);
        },
      ).finally(() => {
        this.inFlight -= 1;
        this.pump();
      });
    }
  }
}

/**
 * Reads by key, batched the same way: concurrent `load`s share one `fetch` of many keys (one
 * database round trip instead of one each). Each caller gets the value for its own key, or null.
 */
export class BatchLoader<K, V> {
  private readonly batcher: Batcher<{ key: K; resolve: (value: V | null) => void }>;

  constructor(fetch: (keys: K[]) => Promise<Map<K, V>>, options?: BatcherOptions) {
    this.batcher = new Batcher(async (items) => {
      const found = await fetch([...new Set(items.map((item) => item.key))]);
      for (const item of items) item.resolve(found.get(item.key) ?? null);
    }, options);
  }

  load(key: K): Promise<V | null> {
    return new Promise<V | null>((resolve, reject) => {
      this.batcher.add({ key, resolve }).catch(reject);
    });
  }
}
