/** Command-line management of the schema, users, API keys and tiers. */
import type { Config } from "./config.js";
import { AppError } from "./errors.js";
import { adminOperations, DEFAULT_TIER } from "./admin-operations.js";
import { MAX_TIER_WEIGHT, MIN_TIER_WEIGHT, tierWeightOf } from "./domain/fair-share.js";
import { migrate } from "./adapters/postgres/migrate.js";
import { SqlBatchStore } from "./adapters/postgres/batch-store.js";
import type { QuotaLimits } from "./domain/ports.js";
import type { Logger } from "./observability/logger.js";
import { openDatabase } from "./runtime.js";
import { SqlWebhookStore } from "./adapters/postgres/webhook-store.js";
import { runWebhookCommand, WEBHOOK_ADMIN_HELP } from "./components/webhooks/admin-commands.js";

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
${WEBHOOK_ADMIN_HELP}`;

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
  const known = ["migrate", "users", "keys", "tiers", "webhooks"];
  if (!known.includes(command)) {
    process.stderr.write(`unknown command "${command}"; run "ml-inference help"\n`);
    return 2;
  }
  const database = await openDatabase(config, logger, { embeddedAllowed: true });
  try {
    const { db, users } = database;
    const ops = adminOperations(users);
    const batches = new SqlBatchStore(db);
    const { positional, options } = flags(args);
    const [sub, a, b] = positional;
    if (command === "webhooks") {
      const store = new SqlWebhookStore(db);
      const result = await runWebhookCommand(sub, positional.slice(1), options, { store, users, config: config.gateway.webhooks });
      if (result !== null) {
        out(result);
        return 0;
      }
    }
    switch (`${command} ${sub ?? ""}`.trim()) {
      case "migrate": {
        const result = await migrate(db);
        out({ applied: result.applied, schema_version: result.current });
        return 0;
      }
      case "users create": {
        const created = await ops.createUser(a, options.get("tier") ?? DEFAULT_TIER);
        out({ user_id: created.userId, tier: created.tier });
        return 0;
      }
      case "users list":
        out(await ops.listUsers());
        return 0;
      case "users set-tier": {
        if (!a || !b) throw new AppError("invalid_parameter", "usage: users set-tier <user-id> <tier>");
        if (!(await users.setTier(a, b))) throw new AppError("not_found", `no user ${a}`);
        out({ user_id: a, tier: b });
        return 0;
      }
      case "keys create": {
        if (!a) throw new AppError("invalid_parameter", "usage: keys create <user-id>");
        const key = await ops.createKey(a);
        out({ user_id: key.userId, key_id: key.keyId, api_key: key.apiKey, note: "store this key now: it is not shown again" });
        return 0;
      }
      case "keys revoke": {
        if (!a) throw new AppError("invalid_parameter", "usage: keys revoke <key-id>");
        out({ key_id: (await ops.revokeKey(a)).keyId, revoked: true });
        return 0;
      }
      case "tiers list": {
        const weights = await batches.tierWeights();
        out((await ops.listTiers()).map((tier) => ({ ...tier, weight: weights.get(tier.name) ?? 1 })));
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
