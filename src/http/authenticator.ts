/**
 * Bearer key → user (with tier limits). Lookups are cached briefly so admission does not pay a
 * database round trip per request; a revoked key stops working on every replica within `cacheTtlMs`
 * (at most a second, so no invalidation channel is needed). Concurrent lookups of one key share a
 * single database read.
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

/** How long a key lookup is trusted: the bound on how long a revoked key keeps working. */
export const DEFAULT_KEY_CACHE_MS = 500;

export class Authenticator {
  private readonly cache = new Map<string, { user: UserRecord | null; expires: number }>();
  private readonly loading = new Map<string, Promise<UserRecord | null>>();
  private readonly ttl: number;
  private readonly size: number;

  constructor(private readonly options: AuthenticatorOptions) {
    this.ttl = options.cacheTtlMs ?? DEFAULT_KEY_CACHE_MS;
    this.size = options.cacheSize ?? 10_000;
  }

  async authenticate(authorization: string | undefined, queryToken?: string): Promise<AuthenticatedUser> {
    // `null` (malformed) must not fall through to the query token or to anonymous access.
    const fromHeader = bearerToken(authorization);
    const token = fromHeader !== undefined || queryToken === undefined ? fromHeader : bearerToken(`Bearer ${queryToken}`);
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
    const cached = this.cache.get(hash);
    const user = cached && cached.expires >= Date.now() ? cached.user : await this.lookup(hash);
    if (!user) throw new AppError("unauthorized", "unknown or revoked API key");
    if (user.disabled) throw new AppError("forbidden", "this user is disabled");
    return { userId: user.userId, limits: user.tier.limits, anonymous: false };
  }

  private lookup(hash: string): Promise<UserRecord | null> {
    const pending = this.loading.get(hash);
    if (pending) return pending;
    const started = Date.now();
    const load = this.options.users
      .findByKeyHash(hash)
      .then((user) => {
        // Trusted from when the read started: a revoke committed after that is seen within ttl.
        if (this.cache.size >= this.size) this.cache.delete(this.cache.keys().next().value as string);
        this.cache.set(hash, { user, expires: started + this.ttl });
        return user;
      })
      .catch((error: unknown) => {
        throw new AppError("service_unavailable", "cannot check the API key now; try again", { retryAfterSeconds: 1, cause: error });
      })
      .finally(() => this.loading.delete(hash));
    this.loading.set(hash, load);
    return load;
  }
}
