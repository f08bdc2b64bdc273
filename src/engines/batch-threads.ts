/**
 * Threads chosen per decode step. On small machines one llama.cpp thread is fastest for a single
 * sequence (its busy-waiting workers fight Node for the cores), while a step that batches several
 * sequences of a larger model has enough work to use more cores: measured on a 120M-parameter Q8_0
 * model with 2 cores, 1 thread gives 146 tok/s alone and 131 tok/s for 16 sequences, 2 threads 71
 * and 169, and this switch 142–148 and 178–184.
 *
 * llama.cpp takes a thread count per decode; node-llama-cpp 3.21 sets one per context. So this wraps
 * the context's native handle (the private field `_ctx`, checked here, node-llama-cpp is pinned) to
 * set the count from the size of each batch. If that handle is not as expected, it changes nothing.
 */
import type { LlamaContext } from "node-llama-cpp";

interface NativeContext {
  initBatch(size: number): unknown;
  decodeBatch(): Promise<unknown>;
  setThreads(threads: number): unknown;
}

const isNative = (value: unknown): value is NativeContext =>
  typeof value === "object" &&
  value !== null &&
  ["initBatch", "decodeBatch", "setThreads"].every((k) => typeof (value as Record<string, unknown>)[k] === "function");

/** Returns false (and leaves the context alone) when the native handle is not recognised. */
export function chooseThreadsPerBatch(context: LlamaContext, threads: { single: number; batch: number }): boolean {
  if (threads.single === threads.batch) return true;
  const holder = context as unknown as { _ctx?: unknown };
  const native = holder._ctx;
  if (!isNative(native)) return false;
  let batchSize = 0;
  holder._ctx = new Proxy(native, {
    get(target, key) {
      if (key === "initBatch") {
        return (size: number) => {
          batchSize = size;
          return target.initBatch(size);
        };
      }
      if (key === "decodeBatch") {
        return () => {
          target.setThreads(batchSize > 1 ? threads.batch : threads.single);
          return target.decodeBatch();
        };
      }
      const value = (target as unknown as Record<PropertyKey, unknown>)[key];
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return true;
}
