/**
 * Bearer key → user (with tier limits). Lookups are cached briefly so admission does not pay a
 * database round trip per request; a revoked key stops working within `cacheTtlMs`.
 */
import { AppError } from "../errors.js";
import { bearerToken, hashApiKey } from "../domain/api-keys.js";
import type { QuotaLimits, UserRecord, UserStore } from "../domain/ports.js";

export const ANONYMOUS_USER_ID = "anonymous";

export interface AuthenticatedUser {
  userId: string;
  limits: QuotaLimits;
  anonymous: boolean;
}

export interface AuthenticatorOptions {
  users: UserStore;
  anonymous: { enabled: boolean; dailyRequests: number; dailyTokens: number };
  cacheTtlMs?: number;
  cacheSize?: number;
}

export class Authenticator {
  private readonly cache = new Map<string, { user: UserRecord | null; expires: number }>();
  private readonly ttl: number;
  private readonly size: number;

  constructor(private readonly options: AuthenticatorOptions) {
    this.ttl = options.cacheTtlMs ?? 30_000;
    this.size = options.cacheSize ?? 10_000;
  }

  async authenticate(authorization: string | undefined, queryToken?: string): Promise<AuthenticatedUser> {
    const token = bearerToken(authorization) ?? (queryToken === undefined ? undefined : bearerToken(`Bearer ${queryToken}`));
    if (token === null) throw new AppError("unauthorized", "malformed Authorization header: expected 'Bearer <api key>'");
    if (token === undefined) {
      if (this.options.anonymous.enabled) {
        return {
          userId: ANONYMOUS_USER_ID,
          anonymous: true,
          limits: {
            dailyRequests: this.options.anonymous.dailyRequests,
            dailyTokens: this.options.anonymous.dailyTokens,
            monthlyRequests: null,
            monthlyTokens: null,
          },
        };
      }
      throw new AppError("unauthorized", "missing API key: send 'Authorization: Bearer <api key>'");
    }
    const hash = hashApiKey(token);
    const now = Date.now();
    let entry = this.cache.get(hash);
    if (!entry || entry.expires < now) {
      let user: UserRecord | null;
      try {
        user = await this.options.users.findByKeyHash(hash);
      } catch (error) {
        throw new AppError("service_unavailable", "cannot check the API key now (database unavailable); try again", {
          retryAfterSeconds: 1,
          cause: error,
        });
      }
      entry = { user, expires: now + this.ttl };
      if (this.cache.size >= this.size) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(hash, entry);
    }
    if (!entry.user) throw new AppError("unauthorized", "unknown or revoked API key");
    if (entry.user.disabled) throw new AppError("forbidden", "this user is disabled");
    return { userId: entry.user.userId, limits: entry.user.tier.limits, anonymous: false };
  }
}
