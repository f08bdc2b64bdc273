/**
 * A Redis connection bounded in time: while Redis is unreachable every command fails at once
 * (admission answers 503 in milliseconds, nothing reserved) instead of waiting in an offline queue;
 * a command that gets no answer fails after the command timeout (REDIS_COMMAND_TIMEOUT_MS for the
 * quota store's), and a connection silent for a few of those is dropped (socketTimeout), so a Redis
 * that is blackholed (connection open, nothing answering, as across a partition) soon fails
 * commands at once instead of each waiting out its bound. Reconnection is attempted at least every
 * half second, so admissions succeed again within a second of Redis answering.
 */
import { once } from "node:events";
import { Redis } from "ioredis";

export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 400;
/** Silence (commands waiting, no byte back) after which the connection is dropped; at least 1 s, so a slow handshake on a busy host survives. */
const socketTimeoutFor = (commandTimeoutMs: number) => Math.max(1_000, 4 * commandTimeoutMs);
const RECONNECT_MAX_DELAY_MS = 500;

/**
 * `socketTimeoutMs`: the quota store (admission's path) drops a silent connection after one command
 * bound, so a blackholed Redis costs one bound per caller, not one per command in a row.
 */
export function openBoundedRedis(
  url: string,
  connectionName: string,
  commandTimeoutMs = DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
  socketTimeoutMs = socketTimeoutFor(commandTimeoutMs),
): Redis {
  return new Redis(url, {
    connectionName,
    // The scripts that a batch of outcomes (or of admissions) runs in one tick go out in one write.
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    socketTimeout: socketTimeoutMs,
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
