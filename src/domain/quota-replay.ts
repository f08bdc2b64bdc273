/**
 * Rebuilds quota counters from the durable record: every settled request of the month is reserved
 * and settled again in the day it was reserved in, every open request reserved again. An
 * in-process quota store starts empty, so without this a restart of `all` would forget each user's
 * usage and never charge the requests that were still open.
 */
import type { QuotaLimits, QuotaReplayEntry, QuotaStore } from "./ports.js";

const UNLIMITED: QuotaLimits = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };

/** Noon of the entry's UTC day: inside its day and month whatever the time zone of the data. */
const inDay = (entry: QuotaReplayEntry) => new Date(`${entry.day}T12:00:00.000Z`);

export async function replayQuota(
  quota: QuotaStore,
  replay: { settled: QuotaReplayEntry[]; open: QuotaReplayEntry[] },
): Promise<{ settled: number; open: number }> {
  for (const entry of replay.settled) {
    await quota.reserve({ userId: entry.userId, requestId: entry.requestId, tokens: entry.tokens, limits: UNLIMITED, now: inDay(entry) });
    await quota.settle({ userId: entry.userId, requestId: entry.requestId, actualTokens: entry.tokens });
  }
  for (const entry of replay.open) {
    await quota.reserve({ userId: entry.userId, requestId: entry.requestId, tokens: entry.tokens, limits: UNLIMITED, now: inDay(entry) });
  }
  return { settled: replay.settled.length, open: replay.open.length };
}
