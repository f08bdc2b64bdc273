/** A user with a tier of its own and a fresh API key, straight in the user store. */
import { generateApiKey } from "../../src/domain/api-keys.js";
import type { QuotaLimits, UserStore } from "../../src/domain/ports.js";

export const UNLIMITED: QuotaLimits = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };

/** Returns the user id and the Authorization header value. */
export async function createTestUser(users: UserStore, userId: string, limits: Partial<QuotaLimits> = {}): Promise<{ userId: string; authorization: string }> {
  await users.upsertTier({ name: `tier-${userId}`, limits: { ...UNLIMITED, ...limits } });
  await users.createUser(userId, `tier-${userId}`);
  const key = generateApiKey();
  await users.addApiKey(key.keyId, userId, key.keyHash);
  return { userId, authorization: `Bearer ${key.key}` };
}
