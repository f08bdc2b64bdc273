/**
 * Request bodies of the ML Service, validated with zod. Pure: no I/O, unit-tested beside this file.
 * Every rejection becomes an AppError with a stable code and a message that names the field.
 */
import { z } from "zod";
import { AppError } from "../../errors.js";
import type { ChatMessage, SamplingParams } from "../../engines/types.js";

const stopField = z
  .union([z.string().max(500), z.array(z.string().max(500)).max(16)])
  .nullish()
  .transform((v) => (v == null ? undefined : typeof v === "string" ? [v] : v));
const seedField = z
  .number()
  .int()
  .min(-(2 ** 31))
  .max(2 ** 32 - 1)
  .nullish()
  .transform((v) => (v == null ? undefined : v >>> 0));
const modelField = z
  .string()
  .max(500)
  .nullish()
  .transform((v) => v ?? undefined);

/** The first version's `POST /inference` body (defaults and ranges as documented in the README). */
export function inferenceBodySchema(maxTokensLimit: number) {
  return z.object({
    prompt: z.string().min(1, "must not be empty"),
    max_length: z.number().int().min(1).max(maxTokensLimit).default(100),
    temperature: z.number().min(0).max(2).default(0.7),
    top_p: z.number().gt(0).max(1).default(0.9),
    top_k: z.number().int().min(0).max(1000).default(50),
    repetition_penalty: z.number().min(0.5).max(2).default(1.2),
    num_return_sequences: z.number().int().min(1).max(5).default(1),
    stream: z.boolean().default(false),
    stop: stopField,
    seed: seedField,
    model: modelField,
  });
}
export type InferenceBody = z.infer<ReturnType<typeof inferenceBodySchema>>;

const penalty = z.number().min(-2).max(2).nullish();
const unsupported = (what: string) =>
  z
    .unknown()
    .optional()
    .refine((v) => v === undefined || v === null || v === false || v === 0, `${what} is not supported by this server`);

/** Sampling fields shared by the OpenAI completion and chat bodies. */
function samplingFields(maxTokensLimit: number) {
  return {
    max_tokens: z.number().int().min(1).max(maxTokensLimit).nullish(),
    temperature: z.number().min(0).max(2).nullish(),
    top_p: z.number().gt(0).max(1).nullish(),
    top_k: z.number().int().min(0).max(1000).nullish(),
    repetition_penalty: z.number().min(0.5).max(2).nullish(),
    presence_penalty: penalty,
    frequency_penalty: penalty,
    n: z.number().int().min(1).max(5).nullish(),
    stream: z.boolean().nullish(),
    stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
    stop: stopField,
    seed: seedField,
  };
}

/** OpenAI `POST /v1/completions` (plus llama.cpp-style extensions top_k and repetition_penalty). */
export function completionBodySchema(maxTokensLimit: number) {
  return z.object({
    model: modelField,
    prompt: z.union([z.string().min(1, "must not be empty"), z.array(z.string().min(1, "must not be empty")).min(1).max(16)]),
    ...samplingFields(maxTokensLimit),
    echo: z.boolean().nullish(),
    user: z.string().max(500).nullish(),
    logprobs: unsupported("logprobs"),
    suffix: unsupported("suffix"),
    best_of: z.number().int().min(1).max(1).nullish(),
  });
}
export type CompletionBody = z.infer<ReturnType<typeof completionBodySchema>>;

const textPart = z.object({ type: z.literal("text"), text: z.string() });
const messageSchema = z.object({
  role: z.enum(["system", "developer", "user", "assistant"]),
  content: z.union([z.string(), z.array(textPart).max(64)]).nullish(),
  name: z.string().optional(),
});

/** OpenAI `POST /v1/chat/completions`; text content only. */
export function chatBodySchema(maxTokensLimit: number) {
  return z.object({
    model: modelField,
    messages: z.array(messageSchema).min(1).max(256),
    ...samplingFields(maxTokensLimit),
    max_completion_tokens: z.number().int().min(1).max(maxTokensLimit).nullish(),
    user: z.string().max(500).nullish(),
    logprobs: unsupported("logprobs"),
    tools: unsupported("tools"),
    response_format: z
      .object({ type: z.literal("text") })
      .nullish()
      .describe("only text"),
  });
}
export type ChatBody = z.infer<ReturnType<typeof chatBodySchema>>;

/** Parse `body` with `schema`, or throw a 400 AppError naming the first bad field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new AppError("invalid_body", "the request body must be a JSON object");
  }
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue ? issue.path.map(String).join(".") : "";
  const top = issue?.path[0];
  const missing = issue?.code === "invalid_type" && (body as Record<string, unknown>)[String(top)] === undefined;
  if (missing && (top === "prompt" || top === "messages")) {
    throw new AppError("missing_prompt", `${String(top)} is required`, { details: { field: String(top) } });
  }
  throw new AppError("invalid_parameter", `${field || "body"}: ${issue?.message ?? "invalid"}`, { details: { field } });
}

export function inferenceSampling(b: InferenceBody): SamplingParams {
  return {
    maxTokens: b.max_length,
    temperature: b.temperature,
    topP: b.top_p,
    topK: b.top_k,
    repetitionPenalty: b.repetition_penalty,
    ...(b.stop ? { stop: b.stop } : {}),
    ...(b.seed !== undefined ? { seed: b.seed } : {}),
  };
}

/** OpenAI defaults: max_tokens 16 for completions (unbounded → our limit for chat), temperature 1, top_p 1. */
export function openAiSampling(b: CompletionBody | ChatBody, defaultMaxTokens: number): SamplingParams {
  const max = "max_completion_tokens" in b ? (b.max_completion_tokens ?? b.max_tokens) : b.max_tokens;
  return {
    maxTokens: max ?? defaultMaxTokens,
    temperature: b.temperature ?? 1,
    topP: b.top_p ?? 1,
    topK: b.top_k ?? 0,
    repetitionPenalty: b.repetition_penalty ?? 1,
    ...(b.presence_penalty ? { presencePenalty: b.presence_penalty } : {}),
    ...(b.frequency_penalty ? { frequencyPenalty: b.frequency_penalty } : {}),
    ...(b.stop ? { stop: b.stop } : {}),
    ...(b.seed !== undefined ? { seed: b.seed } : {}),
  };
}

export function chatMessages(b: ChatBody): ChatMessage[] {
  return b.messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: typeof m.content === "string" ? m.content : (m.content ?? []).map((p) => p.text).join(""),
  }));
}
