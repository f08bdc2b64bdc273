/**
 * Wire contracts between components, defined once (schema + type) and validated wherever read.
 * Every message carries `v` so a later format can be told apart from this one.
 */
import { z } from "zod";
import { WIRE_LIMITS, wireParamsSchema, type GenerationLimits } from "./generation-params.js";

export const QUEUE_NAMES = {
  requests: "inference_requests",
  results: "inference_results",
} as const;

/**
 * A request on its way to a worker. `params` keep their snake_case wire names, so messages in
 * flight across an upgrade stay readable; the bound of max_length is the ceiling of its setting.
 */
/** One turn of a chat conversation as it travels (the ML Service applies the model's chat template). */
export const chatMessageSchema = z
  .object({ role: z.enum(["system", "user", "assistant"]), content: z.string() })
  .strict();
export type ChatMessage = z.infer<typeof chatMessageSchema>;

export const requestMessageSchemaFor = (limits: GenerationLimits) =>
  z
    .object({
      v: z.literal(1),
      request_id: z.string().uuid(),
      user_id: z.string().min(1).max(128),
      model: z.string().min(1).max(256),
      prompt: z.string().min(1),
      /** Chat requests: the conversation; `prompt` then holds its text (for the estimate). */
      messages: z.array(chatMessageSchema).min(1).max(256).optional(),
      /** The worker publishes the token deltas to the request's stream. */
      stream: z.literal(true).optional(),
      /** The latest time the request may start; a worker that takes it later fails it deadline_exceeded. */
      deadline_at: z.string().refine((v) => !Number.isNaN(Date.parse(v)), "must be a date-time").optional(),
      params: wireParamsSchema(limits),
      reserved_tokens: z.number().int().nonnegative(),
      attempt: z.number().int().min(1),
      created_at: z.string().refine((v) => !Number.isNaN(Date.parse(v)), "must be a date-time"),
    })
    .strict();
export const requestMessageSchema = requestMessageSchemaFor(WIRE_LIMITS);
export type RequestMessage = z.infer<typeof requestMessageSchema>;

export const tokenUsageSchema = z
  .object({
    prompt_tokens: z.number().int().nonnegative(),
    completion_tokens: z.number().int().nonnegative(),
    total_tokens: z.number().int().nonnegative(),
  })
  .strict();
export type TokenUsage = z.infer<typeof tokenUsageSchema>;

// Only final outcomes travel: `processing` is transient state, not a message (the worker sends
// when it started in `started_at`).
// "cancelled": a running request was aborted; its usage is what was processed until then.
export const outcomeStatusSchema = z.enum(["completed", "failed", "cancelled"]);
export type OutcomeStatus = z.infer<typeof outcomeStatusSchema>;

export const outcomeMessageSchema = z
  .object({
    v: z.literal(1),
    request_id: z.string().uuid(),
    user_id: z.string().min(1).max(128),
    status: outcomeStatusSchema,
    model: z.string().optional(),
    output_text: z.string().optional(),
    outputs: z.array(z.string()).optional(),
    usage: tokenUsageSchema.optional(),
    error: z.object({ code: z.string(), message: z.string() }).strict().optional(),
    finish_reason: z.enum(["stop", "length", "cancelled"]).optional(),
    /** The seq of the last delta the worker appended to the request's stream (streamed requests). */
    stream_seq: z.number().int().nonnegative().optional(),
    attempt: z.number().int().min(1),
    timings: z
      .object({ queued_ms: z.number().nonnegative().optional(), processing_ms: z.number().nonnegative().optional() })
      .strict()
      .optional(),
    /** When the worker started the model call that produced this outcome. */
    started_at: z.string().refine((v) => !Number.isNaN(Date.parse(v)), "must be a date-time").optional(),
    at: z.string().refine((v) => !Number.isNaN(Date.parse(v)), "must be a date-time"),
    /** In a bundle: the worker span's W3C traceparent (a single outcome carries it as a header). */
    traceparent: z.string().max(256).optional(),
  })
  .strict();
export type OutcomeMessage = z.infer<typeof outcomeMessageSchema>;

/** The most outcomes one results message carries. */
export const MAX_OUTCOMES_PER_MESSAGE = 256;

/**
 * The outcomes a worker published together: one message, one broker confirm, one delivery and one
 * ack for all the requests that finished while its previous publish was being confirmed. Entries
 * are read one by one, so one unreadable entry does not hide the others.
 */
export const outcomeBundleSchema = z
  .object({ v: z.literal(1), outcomes: z.array(z.unknown()).min(1).max(MAX_OUTCOMES_PER_MESSAGE) })
  .strict();

/** Event pushed to clients waiting on `/events/{id}` (SSE), fanned out across API replicas. */
export const requestEventSchema = z
  .object({
    request_id: z.string(),
    user_id: z.string(),
    status: z.enum(["queued", "processing", "completed", "failed", "cancelled"]),
    final: z.boolean(),
  })
  .passthrough();
export type RequestEvent = z.infer<typeof requestEventSchema>;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

function parseWith<T>(schema: z.ZodType<T>, raw: Buffer | string): ParseResult<T> {
  let data: unknown;
  try {
    data = JSON.parse(typeof raw === "string" ? raw : raw.toString("utf8"));
  } catch {
    return { ok: false, error: "message is not JSON" };
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) return { ok: false, error: describeIssues(parsed.error.issues) };
  return { ok: true, value: parsed.data };
}

function describeIssues(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): string {
  return issues.map((i) => `${i.path.map(String).join(".") || "(root)"}: ${i.message}`).join("; ");
}

export const parseRequestMessage = (raw: Buffer | string) => parseWith(requestMessageSchema, raw);
export const parseOutcomeMessage = (raw: Buffer | string) => parseWith(outcomeMessageSchema, raw);

/** What a results message holds: its readable outcomes, and a problem for each entry that is not one. */
export interface ReadOutcomes {
  outcomes: OutcomeMessage[];
  problems: string[];
}

/** A results message: a bundle (`{v, outcomes}`) or, as before bundles, one outcome. */
export function parseOutcomes(raw: Buffer | string): ParseResult<ReadOutcomes> {
  let data: unknown;
  try {
    data = JSON.parse(typeof raw === "string" ? raw : raw.toString("utf8"));
  } catch {
    return { ok: false, error: "message is not JSON" };
  }
  const isBundle = typeof data === "object" && data !== null && "outcomes" in data;
  const entries: unknown[] = [data];
  if (isBundle) {
    const bundle = outcomeBundleSchema.safeParse(data);
    if (!bundle.success) return { ok: false, error: describeIssues(bundle.error.issues) };
    entries.splice(0, 1, ...bundle.data.outcomes);
  }
  const read: ReadOutcomes = { outcomes: [], problems: [] };
  entries.forEach((entry, index) => {
    const parsed = outcomeMessageSchema.safeParse(entry);
    if (parsed.success) read.outcomes.push(parsed.data);
    else read.problems.push(`${isBundle ? `outcomes.${index}: ` : ""}${describeIssues(parsed.error.issues)}`);
  });
  if (read.outcomes.length === 0) return { ok: false, error: read.problems.join("; ") };
  return { ok: true, value: read };
}

export const encodeOutcomes = (outcomes: readonly OutcomeMessage[]): Buffer => Buffer.from(JSON.stringify({ v: 1, outcomes }));
/**
 * Text PostgreSQL can store: without NUL, and with lone UTF-16 surrogates (a model may emit half of
 * a pair) replaced by U+FFFD.
 */
export function storableText(text: string): string {
  return text.replace(/\u0000/g, "").replace(/\p{Cs}/gu, "\uFFFD");
}

export const encodeMessage = (message: RequestMessage | OutcomeMessage): Buffer => Buffer.from(JSON.stringify(message));
