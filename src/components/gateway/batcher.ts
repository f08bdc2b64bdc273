/**
 * Natural batching: work handed in while earlier batches are in flight is gathered and written in
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
