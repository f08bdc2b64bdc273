/**
 * A Redis connection bounded in time: while Redis is unreachable every command fails at once
 * (admission answers 503 in milliseconds, nothing reserved) instead of waiting in an offline queue;
 * a command that gets no answer fails after the command timeout (REDIS_COMMAND_TIMEOUT_MS), and the
 * connection that gave none is dropped then too (socketTimeout), so a Redis that is blackholed
 * (connection open, nothing answering, as across a partition) costs each caller one bound, not one
 * per command, and what was still unsent never runs later. Reconnection is attempted at least every
 * half second, so admissions succeed again within a second of Redis answering.
 */
import { once } from "node:events";
import { Redis } from "ioredis";

export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 250;
const RECONNECT_MAX_DELAY_MS = 500;

export function openBoundedRedis(url: string, connectionName: string, commandTimeoutMs = DEFAULT_REDIS_COMMAND_TIMEOUT_MS): Redis {
  return new Redis(url, {
    connectionName,
    // The scripts that a batch of outcomes (or of admissions) runs in one tick go out in one write.
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    socketTimeout: commandTimeoutMs,
    connectTimeout: 2_000,
    retryStrategy: (attempt: number) => Math.min(50 * attempt, RECONNECT_MAX_DELAY_MS),
  });
}

/** Waits (bounded) for the first connection; a Redis still down after that fails commands, not start-up. */
export async function readyWithin(redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === "ready") return true;
  const timer = new AbortController();
  const timeout = setTimeout(() => timer.abort(), ms);
  try {
    await once(redis, "ready", { signal: timer.signal });
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timeout);
  }
}
