/**
 * Natural batching, for writes (Batcher) and reads (BatchLoader): work handed in while earlier batches are in flight is gathered and written in
 * one statement. An idle batcher writes at once (no timer, so no added latency); under load, up to
 * `maxInFlight` batches of at most `maxBatch` items run concurrently. Each caller's promise settles
 * with its own batch, so a failed batch fails exactly the requests in it.
 */
export class Batcher<T> {
  private waiting: Array<{ item: T; resolve: () => void; reject: (error: unknown) => void }> = [];
  private inFlight = 0;

  constructor(
    private readonly write: (items: T[]) => Promise<void>,
    private readonly options: { maxBatch: number; maxInFlight: number } = { maxBatch: 64, maxInFlight: 4 },
  ) {}

  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.waiting.length > 0) {
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

  constructor(fetch: (keys: K[]) => Promise<Map<K, V>>, options?: { maxBatch: number; maxInFlight: number }) {
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
