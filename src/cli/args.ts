/**
 * Argument parsing and exit codes of the user-facing commands. Kept apart from the commands so the
 * contract a script relies on (which flag is a usage error, which failure is which exit code) is
 * in one small file.
 */
import { parseArgs } from "node:util";
import type { ClientError } from "../client/index.js";

/** The exit codes the usage text documents; scripts branch on them. */
export const EXIT = {
  ok: 0,
  /** The request failed or was cancelled (its final status is not `completed`). */
  failed: 1,
  /** Bad flags or arguments; nothing was sent. */
  usage: 2,
  /** The platform refused (4xx other than 429): the message is the API's. */
  refused: 3,
  /** Unavailable: unreachable, 5xx, or 429 (Retry-After printed): trying later may work. */
  unavailable: 4,
  /** Ctrl-C while waiting or streaming; the request itself goes on. */
  interrupted: 130,
} as const;

export class UsageError extends Error {}

export function exitCodeOf(error: ClientError): number {
  if (error.code === "aborted") return EXIT.interrupted;
  if (error.code === "unreachable" || error.status >= 500 || error.status === 429) return EXIT.unavailable;
  if (error.status >= 400) return EXIT.refused;
  // A 2xx answer that was not the platform's JSON, or a wait that ran out: the request did not succeed.
  return EXIT.failed;
}

export type FlagKind = "boolean" | "integer" | "number" | "string";

export interface Parsed {
  positional: string[];
  flags: Record<string, boolean | number | string | undefined>;
}

/**
 * Strict parsing: an unknown flag, a missing or non-numeric value, or a wrong number of arguments
 * is a UsageError (exit 2). `--flag=value` and `--flag value` both work; `--` ends the flags (a
 * prompt that starts with "-").
 */
export function parseCommandArgs(args: string[], kinds: Record<string, FlagKind>, positionals: { count: number; what: string }): Parsed {
  const options = Object.fromEntries(Object.entries(kinds).map(([name, kind]) => [name, { type: kind === "boolean" ? "boolean" : "string" } as const]));
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (error) {
    // node:util's messages name the flag ("Unknown option '--x'"); its error codes are not for users.
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ""));
  }
  if (parsed.positionals.length !== positionals.count) {
    throw new UsageError(positionals.count === 0 ? `takes no argument, got "${parsed.positionals[0]}"` : `needs exactly ${positionals.what}`);
  }
  const flags: Parsed["flags"] = {};
  for (const [name, kind] of Object.entries(kinds)) {
    const raw = parsed.values[name];
    if (raw === undefined) continue;
    if (kind === "boolean") flags[name] = raw === true;
    else if (kind === "string") flags[name] = String(raw);
    else flags[name] = numberFlag(name, String(raw), kind === "integer");
  }
  return { positional: parsed.positionals, flags };
}

function numberFlag(name: string, raw: string, integer: boolean): number {
  const value = raw.trim() === "" ? Number.NaN : Number(raw);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new UsageError(`--${name} needs ${integer ? "an integer" : "a number"}, got "${raw}"`);
  }
  return value;
}
