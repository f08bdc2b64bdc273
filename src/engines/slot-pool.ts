/**
 * A fixed set of slots (one per context sequence) with a bounded FIFO wait queue. A request takes a
 * free slot at once, or waits in line; when the line is full it is refused with queue_full (503 +
 * Retry-After), so overload turns into back-pressure instead of unbounded memory and latency. A
 * waiter whose signal aborts leaves the line without ever taking a slot.
 */
import { AppError } from "../errors.js";

interface Waiter<T> {
  resolve: (slot: T) => void;
  reject: (error: unknown) => void;
  cleanup: () => void;
}

export class SlotPool<T> {
  private readonly free: T[];
  private readonly waiters: Waiter<T>[] = [];
  private closedError: AppError | undefined;
  readonly capacity: number;

  constructor(
    slots: readonly T[],
    private readonly queueLimit: number,
    private readonly retryAfterSeconds = 1,
  ) {
    this.free = [...slots];
    this.capacity = slots.length;
  }

  get running(): number {
    return this.capacity - this.free.length;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Take a slot, waiting in line if needed. Rejects with queue_full, the signal's reason, or the close error. */
  acquire(signal?: AbortSignal): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (signal?.aborted) return Promise.reject(signal.reason ?? new Error("aborted"));
    const slot = this.free.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    if (this.waiters.length >= this.queueLimit) {
      return Promise.reject(
        new AppError("queue_full", "the model is busy and its wait queue is full; retry later", {
          retryAfterSeconds: this.retryAfterSeconds,
          internal: { capacity: this.capacity, running: this.running, waiting: this.waiters.length },
        }),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal?.reason ?? new Error("aborted"));
      };
      const waiter: Waiter<T> = {
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener("abort", onAbort),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  release(slot: T): void {
    const next = this.waiters.shift();
    if (next) {
      next.cleanup();
      next.resolve(slot);
    } else this.free.push(slot);
  }

  /** Refuse every waiter and every later acquire with `error`. Slots already taken stay taken until released. */
  close(error: AppError): void {
    this.closedError = error;
    for (const w of this.waiters.splice(0)) {
      w.cleanup();
      w.reject(error);
    }
  }
}
