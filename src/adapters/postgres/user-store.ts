/** Users, API keys (hashed) and tiers over PostgreSQL or PGlite. */
import type { Tier, UserRecord, UserStore } from "../../domain/ports.js";
import { sql } from "./queries.js";
import type { SqlClient } from "./sql-client.js";

interface UserRow {
  user_id: string;
  tier: string;
  disabled: boolean;
  daily_requests: number | null;
  daily_tokens: number | null;
  monthly_requests: number | null;
  monthly_tokens: number | null;
}

interface TierRow {
  name: string;
  daily_requests: number | null;
  daily_tokens: number | null;
  monthly_requests: number | null;
  monthly_tokens: number | null;
}

const n = (value: number | null): number | null => (value === null ? null : Number(value));

function toTier(name: string, row: Omit<TierRow, "name">): Tier {
  return {
    name,
    limits: {
      dailyRequests: n(row.daily_requests),
      dailyTokens: n(row.daily_tokens),
      monthlyRequests: n(row.monthly_requests),
      monthlyTokens: n(row.monthly_tokens),
    },
  };
}

const toUser = (row: UserRow): UserRecord => ({ userId: row.user_id, tier: toTier(row.tier, row), disabled: row.disabled });

export class SqlUserStore implements UserStore {
  constructor(private readonly db: SqlClient) {}

  async findByKeyHash(keyHash: string): Promise<UserRecord | null> {
    const row = (await this.db.query<UserRow>(sql("findUserByKeyHash"), [keyHash])).rows[0];
    return row ? toUser(row) : null;
  }

  async findUser(userId: string): Promise<UserRecord | null> {
    const row = (await this.db.query<UserRow>(sql("findUser"), [userId])).rows[0];
    return row ? toUser(row) : null;
  }

  async createUser(userId: string, tier: string): Promise<void> {
    await this.db.query(sql("insertUser"), [userId, tier]);
  }

  async setTier(userId: string, tier: string): Promise<boolean> {
    return (await this.db.query(sql("setUserTier"), [userId, tier])).rowCount > 0;
  }

  async listUsers() {
    const rows = (
      await this.db.query<{ user_id: string; tier: string; disabled: boolean; active_keys: number; created_at: Date | string }>(
        sql("listUsers"),
      )
    ).rows;
    return rows.map((r) => ({
      userId: r.user_id,
      tier: r.tier,
      disabled: r.disabled,
      activeKeys: Number(r.active_keys),
      createdAt: new Date(r.created_at),
    }));
  }

  async addApiKey(keyId: string, userId: string, keyHash: string): Promise<void> {
    await this.db.query(sql("insertApiKey"), [keyId, userId, keyHash]);
  }

  async revokeApiKey(keyId: string): Promise<boolean> {
    return (await this.db.query(sql("revokeApiKey"), [keyId])).rowCount > 0;
  }

  async upsertTier(tier: Tier): Promise<void> {
    const l = tier.limits;
    await this.db.query(sql("upsertTier"), [tier.name, l.dailyRequests, l.dailyTokens, l.monthlyRequests, l.monthlyTokens]);
  }

  async listTiers(): Promise<Tier[]> {
    return (await this.db.query<TierRow>(sql("listTiers"))).rows.map((r) => toTier(r.name, r));
  }
}
