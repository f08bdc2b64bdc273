/**
 * How batch work is shared between tenants: by tokens, weighted by the tier (start-time fair
 * queueing; the SQL that orders the lines is `claimBatchLines` in queries.sql, described in the
 * README's "Batch scheduling"). A line is charged its estimated tokens when it is claimed and its
 * real tokens when it ends, so the estimate only steers the lines in flight and a tick's order; it
 * need not be a bound (the quota's estimate is one, and would charge long prompts several times over).
 */
import type { GenerationParams } from "./generation-params.js";

/** English text averages about four characters a token; the real count replaces this when the line ends. */
const CHARS_PER_TOKEN = 4;
/** Role markers and separators a chat template adds to each message. */
const TEMPLATE_TOKENS_PER_MESSAGE = 4;

/** The tokens a batch line is expected to use: its prompt and every token it may generate, per sequence. */
export function estimatedLineTokens(line: {
  prompt: string;
  params: Pick<GenerationParams, "maxLength" | "numReturnSequences">;
  messages?: readonly unknown[];
}): number {
  const prompt = Math.ceil(line.prompt.length / CHARS_PER_TOKEN) + (line.messages?.length ?? 0) * TEMPLATE_TOKENS_PER_MESSAGE;
  return Math.max(1, (prompt + line.params.maxLength) * line.params.numReturnSequences);
}

/** Tier weights: how many times a tier's tenants' share of batch work is a weight-1 tier's. */
export const MIN_TIER_WEIGHT = 0.01;
export const MAX_TIER_WEIGHT = 1_000;

/** A weight as the admin CLI takes it, or null when it is not a number in [MIN_TIER_WEIGHT, MAX_TIER_WEIGHT]. */
export function tierWeightOf(raw: string): number | null {
  if (!/^\d+(\.\d+)?$/.test(raw.trim())) return null;
  const value = Number(raw);
  return value >= MIN_TIER_WEIGHT && value <= MAX_TIER_WEIGHT ? value : null;
}
