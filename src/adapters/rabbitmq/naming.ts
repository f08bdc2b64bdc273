/**
 * Names and arguments of the queues the RabbitMQ adapter declares (see message-queue.ts for the
 * topology). Exported so manifests and tests can check they match what is declared.
 */

const DELAY_STEPS = [1, 1.5, 2, 3, 4, 5, 6, 8] as const;
const MIN_DELAY_BUCKET_MS = 10;
export const MAX_DELAY_BUCKET_MS = 2 ** 31 - 1;

/** delayMs rounded up to the delay-queue series 1, 1.5, 2, 3, 4, 5, 6, 8 × 10^k (≥ 10 ms). */
export function delayBucketMs(delayMs: number): number {
  const d = Math.max(MIN_DELAY_BUCKET_MS, Math.ceil(delayMs));
  if (d >= MAX_DELAY_BUCKET_MS) return MAX_DELAY_BUCKET_MS;
  let magnitude = 10 ** Math.floor(Math.log10(d));
  for (;;) {
    for (const step of DELAY_STEPS) {
      const candidate = Math.round(step * magnitude);
      if (candidate >= d) return Math.min(candidate, MAX_DELAY_BUCKET_MS);
    }
    magnitude *= 10;
  }
}

export const deadLetterQueueName = (queue: string): string => `${queue}.dead`;
/** A queue whose name ends in ".dead" is a dead-letter queue: declared without arguments. */
export const isDeadLetterQueue = (queue: string): boolean => queue.endsWith(".dead");
const delayQueueName = (queue: string, bucketMs: number): string => `${queue}.retry.${bucketMs}`;
/** The delay queue a publish with `delayMs` goes through. */
export const retryQueueName = (queue: string, delayMs: number): string => delayQueueName(queue, delayBucketMs(delayMs));
export { delayQueueName };

export function mainQueueArguments(queue: string): Record<string, string> {
  return { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": deadLetterQueueName(queue) };
}

export function retryQueueArguments(queue: string, bucketMs: number): Record<string, string | number> {
  return {
    "x-message-ttl": bucketMs,
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": queue,
    "x-expires": Math.min(2 * bucketMs + 120_000, MAX_DELAY_BUCKET_MS),
  };
}
