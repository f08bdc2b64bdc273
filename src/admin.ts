/** Command-line management of the schema, users, API keys and tiers. */
import type { Config } from "./config.js";
import { AppError } from "./errors.js";
import { generateApiKey } from "./domain/api-keys.js";
import { MAX_TIER_WEIGHT, MIN_TIER_WEIGHT, tierWeightOf } from "./domain/fair-share.js";
import { migrate } from "./adapters/postgres/migrate.js";
import { SqlBatchStore } from "./adapters/postgres/batch-store.js";
import type { QuotaLimits } from "./domain/ports.js";
import type { Logger } from "./observability/logger.js";
import { openDatabase } from "./runtime.js";

export const ADMIN_HELP = `Administration (DATABASE_URL, or the embedded database in DATA_DIR when unset):
  users create <user-id> [--tier <tier>]      create a user (tier default: free)
  users list                                  list users, their tiers and active keys
  users set-tier <user-id> <tier>             move a user to another tier
  keys create <user-id>                       create an API key; it is shown once
  keys revoke <key-id>                        revoke an API key
  tiers list                                  list tiers, their limits and batch weights
  tiers set <name> [--daily-requests N] [--daily-tokens N] [--monthly-requests N] [--monthly-tokens N] [--weight W]
                                              create or change a tier (a limit left out is unlimited;
                                              the weight, its share of batch work, is kept, 1 when new)
`;

const USER_ID = /^[A-Za-z0-9._@-]{1,128}$/;

function flags(args: string[]): { positional: string[]; options: Map<string, string> } {
  const positional: string[] = [];
  const options = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg.startsWith("--")) {
      const value = args[i + 1];
      if (value === undefined || value.startsWith("--")) throw new AppError("invalid_parameter", `${arg} needs a value`);
      options.set(arg.slice(2), value);
      i++;
    } else positional.push(arg);
  }
  return { positional, options };
}

function limit(options: Map<string, string>, name: string): number | null {
  const raw = options.get(name);
  if (raw === undefined || raw === "none" || raw === "unlimited") return null;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new AppError("invalid_parameter", `--${name} must be a whole number ≥ 0 or "none"`);
  return value;
}

const out = (value: unknown) => process.stdout.write(`${typeof value === "string" ? value : JSON.stringify(value, null, 2)}\n`);

export async function runAdminCommand(command: string, args: string[], config: Config, logger: Logger): Promise<number> {
  const known = ["migrate", "users", "keys", "tiers"];
  if (!known.includes(command)) {
    process.stderr.write(`unknown command "${command}"; run "ml-inference help"\n`);
    return 2;
  }
  const database = await openDatabase(config, logger, { embeddedAllowed: true });
  try {
    const { db, users } = database;
    const batches = new SqlBatchStore(db);
    const { positional, options } = flags(args);
    const [sub, a, b] = positional;
    switch (`${command} ${sub ?? ""}`.trim()) {
      case "migrate": {
        const result = await migrate(db);
        out({ applied: result.applied, schema_version: result.current });
        return 0;
      }
      case "users create": {
        if (!a || !USER_ID.test(a)) throw new AppError("invalid_parameter", "user id: 1-128 characters of letters, digits and . _ @ -");
        await users.createUser(a, options.get("tier") ?? "free");
        out({ user_id: a, tier: options.get("tier") ?? "free" });
        return 0;
      }
      case "users list":
        out(await users.listUsers());
        return 0;
      case "users set-tier": {
        if (!a || !b) throw new AppError("invalid_parameter", "usage: users set-tier <user-id> <tier>");
        if (!(await users.setTier(a, b))) throw new AppError("not_found", `no user ${a}`);
        out({ user_id: a, tier: b });
        return 0;
      }
      case "keys create": {
        if (!a) throw new AppError("invalid_parameter", "usage: keys create <user-id>");
        if (!(await users.findUser(a))) throw new AppError("not_found", `no user ${a}; create it first with "users create ${a}"`);
        const key = generateApiKey();
        await users.addApiKey(key.keyId, a, key.keyHash);
        out({ user_id: a, key_id: key.keyId, api_key: key.key, note: "store this key now: it is not shown again" });
        return 0;
      }
      case "keys revoke": {
        if (!a) throw new AppError("invalid_parameter", "usage: keys revoke <key-id>");
        if (!(await users.revokeApiKey(a))) throw new AppError("not_found", `no active key ${a}`);
        out({ key_id: a, revoked: true });
        return 0;
      }
      case "tiers list": {
        const weights = await batches.tierWeights();
        out((await users.listTiers()).map((tier) => ({ ...tier, weight: weights.get(tier.name) ?? 1 })));
        return 0;
      }
      case "tiers set": {
        if (!a) throw new AppError("invalid_parameter", "usage: tiers set <name> [--daily-requests N] ...");
        const limits: QuotaLimits = {
          dailyRequests: limit(options, "daily-requests"),
          dailyTokens: limit(options, "daily-tokens"),
          monthlyRequests: limit(options, "monthly-requests"),
          monthlyTokens: limit(options, "monthly-tokens"),
        };
        const rawWeight = options.get("weight");
        const weight = rawWeight === undefined ? undefined : tierWeightOf(rawWeight);
        if (weight === null) throw new AppError("invalid_parameter", `--weight must be a number from ${MIN_TIER_WEIGHT} to ${MAX_TIER_WEIGHT}`);
        await users.upsertTier({ name: a, limits });
        if (weight !== undefined) await batches.setTierWeight(a, weight);
        out({ name: a, limits, ...(weight !== undefined ? { weight } : {}) });
        return 0;
      }
      default:
        process.stderr.write(`unknown command "${command} ${sub ?? ""}"\n\n${ADMIN_HELP}`);
        return 2;
    }
  } catch (error) {
    if (error instanceof AppError) {
      process.stderr.write(`error (${error.code}): ${error.message}\n`);
      return 1;
    }
    const pgCode = (error as { code?: string }).code;
    if (pgCode === "23505") process.stderr.write("error (conflict): it exists already\n");
    else if (pgCode === "23503") process.stderr.write("error (not_found): the tier or user it refers to does not exist\n");
    else throw error;
    return 1;
  } finally {
    await database.close();
  }
}
