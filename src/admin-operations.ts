/**
 * What an administrator can do to users, keys and tiers, whoever asks: the admin CLI (admin.ts) and
 * the gateway's admin routes (components/gateway/admin) both call these, so a rule (what a user id
 * may be, that a key is shown once, which database refusal means what) has one owner.
 */
import { AppError } from "./errors.js";
import { generateApiKey } from "./domain/api-keys.js";
import type { Tier, UserStore } from "./domain/ports.js";

export const USER_ID = /^[A-Za-z0-9._@-]{1,128}$/;
export const USER_ID_RULE = "user id: 1-128 characters of letters, digits and . _ @ -";
export const DEFAULT_TIER = "free";

export interface UserSummary {
  userId: string;
  tier: string;
  disabled: boolean;
  activeKeys: number;
  createdAt: Date;
}

export interface CreatedKey {
  userId: string;
  keyId: string;
  /** The key itself: only its hash is stored, so this is the one time anyone sees it. */
  apiKey: string;
}

/** A refusal of the database as the error a caller can act on (a user id taken, a tier missing). */
function refusal(error: unknown, what: { conflict: string; missing: string }): unknown {
  const pgCode = (error as { code?: string }).code;
  if (pgCode === "23505") return new AppError("conflict", what.conflict);
  if (pgCode === "23503") return new AppError("not_found", what.missing, { details: { field: "tier" } });
  return error;
}

export function adminOperations(users: UserStore) {
  return {
    async createUser(userId: unknown, tier: unknown = DEFAULT_TIER): Promise<{ userId: string; tier: string }> {
      if (typeof userId !== "string" || !USER_ID.test(userId)) throw new AppError("invalid_parameter", USER_ID_RULE, { details: { field: "user_id" } });
      if (typeof tier !== "string" || tier === "") throw new AppError("invalid_parameter", "tier: a tier name", { details: { field: "tier" } });
      try {
        await users.createUser(userId, tier);
      } catch (error) {
        throw refusal(error, { conflict: `user ${userId} exists already`, missing: `no tier ${tier.slice(0, 64)}` });
      }
      return { userId, tier };
    },

    listUsers: (): Promise<UserSummary[]> => users.listUsers(),

    async createKey(userId: string): Promise<CreatedKey> {
      if (!(await users.findUser(userId))) throw new AppError("not_found", `no user ${userId.slice(0, 128)}; create it first`, { details: { field: "user_id" } });
      const key = generateApiKey();
      await users.addApiKey(key.keyId, userId, key.keyHash);
      return { userId, keyId: key.keyId, apiKey: key.key };
    },

    async revokeKey(keyId: string): Promise<{ keyId: string; revoked: true }> {
      if (!(await users.revokeApiKey(keyId))) throw new AppError("not_found", `no active key ${keyId.slice(0, 128)}`, { details: { field: "key_id" } });
      return { keyId, revoked: true };
    },

    listTiers: (): Promise<Tier[]> => users.listTiers(),
  };
}

export type AdminOperations = ReturnType<typeof adminOperations>;
