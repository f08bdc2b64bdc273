/** Requests put in place the way admission stores them, for suites that drive what follows by hand. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { Platform } from "./platform.js";

/** Reserves and stores a request the way admission does, without publishing it. */
export async function storeUnpublished(platform: Platform, userId: string, prompt: string, createdAt = new Date()): Promise<string> {
  const requestId = randomUUID();
  const reservation = await platform.quota.reserve({
    userId,
    requestId,
    tokens: 30,
    limits: { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null },
    now: new Date(),
  });
  assert.ok(reservation.ok);
  await platform.requests.insert({
    requestId,
    userId,
    model: "default",
    prompt,
    params: { maxLength: 5, temperature: 0, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 },
    estimatedTokens: 30,
    window: reservation.window,
    createdAt,
  });
  return requestId;
}
