/**
 * Request bodies of the ML Service, validated with zod. Pure: no I/O, unit-tested beside this file.
 * Every rejection becomes an AppError with a stable code and a message that names the field.
 */
import { z } from "zod";
import { AppError } from "../../errors.js";
import {
  bodyParamsShape,
  fromOpenAi,
  fromWire,
  generationFields,
  openAiParamsShape,
  type GenerationLimits,
  type GenerationParams,
} from "../../domain/generation-params.js";
import type { ChatMessage, GenerationRequest } from "../../engines/types.js";
import type { Penalties } from "../../engines/sampling.js";

const modelField = z
  .string()
  .max(500)
  .nullish()
  .transform((v) => v ?? undefined);

const limitsOf = (maxTokensLimit: number): GenerationLimits => ({ maxLength: maxTokensLimit });

/** Messages of `POST /inference`: the engine's chat messages, formatted with the model's chat template. */
const nativeMessageSchema = z.object({
  role: z.enum(["system", "user", "assistant"]),
  content: z.string(),
});

/**
 * The first version's `POST /inference` body: the gateway's parameters, bounded by
 * ML_MAX_TOKENS_LIMIT, and either `prompt` (plain text) or `messages` (chat), exactly one of them.
 * The answer keeps only the one sent: `{ prompt, ... }` or `{ messages, ... }`.
 */
export function inferenceBodySchema(maxTokensLimit: number) {
  return z
    .object({
      prompt: z.string().min(1, "must not be empty").optional(),
      messages: z.array(nativeMessageSchema).min(1).max(256).optional(),
      ...bodyParamsShape(limitsOf(maxTokensLimit)),
      stream: z.boolean().default(false),
      /** How long each NDJSON line gathers text and counts (default ML_STREAM_FLUSH_MS, first line at once). */
      stream_interval_ms: z.number().int().min(0).max(60_000).optional(),
      model: modelField,
    })
    .superRefine((b, ctx) => {
      if (b.prompt !== undefined && b.messages !== undefined) {
        ctx.addIssue({ code: "custom", path: ["messages"], message: "send either prompt or messages, not both" });
      } else if (b.prompt === undefined && b.messages === undefined) {
        ctx.addIssue({ code: "custom", path: ["prompt"], message: "prompt or messages is required", params: { missing: true } });
      }
    })
    .transform((b) => ({
      ...(b.messages !== undefined ? { messages: b.messages as ChatMessage[] } : { prompt: b.prompt as string }),
      model: b.model,
      stream: b.stream,
      ...(b.stream_interval_ms !== undefined ? { streamIntervalMs: b.stream_interval_ms } : {}),
      params: fromWire(b),
    }));
}
export type InferenceBody = z.infer<ReturnType<typeof inferenceBodySchema>>;

/** What `/inference` generates from: the prompt, or the messages. */
export const inferenceInput = (b: InferenceBody): GenerationRequest["input"] =>
  "messages" in b ? { messages: b.messages } : { prompt: b.prompt };

const penalty = z.number().min(-2).max(2).nullish();
const unsupported = (what: string) =>
  z
    .unknown()
    .optional()
    .refine((v) => v === undefined || v === null || v === false || v === 0, `${what} is not supported by this server`);

/** Sampling fields shared by the OpenAI completion and chat bodies: the generation parameters under OpenAI's names. */
function samplingFields(maxTokensLimit: number) {
  return {
    ...openAiParamsShape(limitsOf(maxTokensLimit)),
    presence_penalty: penalty,
    frequency_penalty: penalty,
    stream: z.boolean().nullish(),
    stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
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
    max_completion_tokens: generationFields(limitsOf(maxTokensLimit)).max_length.nullish(),
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
  const absent = (body as Record<string, unknown>)[String(top)] === undefined;
  const missing = (issue?.code === "invalid_type" || (issue?.code === "custom" && issue.params?.missing === true)) && absent;
  if (missing && (top === "prompt" || top === "messages")) {
    const message = issue?.code === "custom" ? issue.message : `${String(top)} is required`;
    throw new AppError("missing_prompt", message, { details: { field: String(top) } });
  }
  throw new AppError("invalid_parameter", `${field || "body"}: ${issue?.message ?? "invalid"}`, { details: { field } });
}

/** OpenAI's defaults: temperature 1, top_p 1, no top_k, no repetition penalty, one choice. */
const OPENAI_DEFAULTS = { temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1, numReturnSequences: 1 };

/** `defaultMaxTokens`: 16 for completions (OpenAI's), our limit for chat (OpenAI's is unbounded). */
export function openAiParams(b: CompletionBody | ChatBody, defaultMaxTokens: number): GenerationParams {
  const max = "max_completion_tokens" in b ? (b.max_completion_tokens ?? b.max_tokens) : b.max_tokens;
  return fromOpenAi({ ...b, max_tokens: max }, { ...OPENAI_DEFAULTS, maxLength: defaultMaxTokens });
}

export function openAiPenalties(b: CompletionBody | ChatBody): Penalties {
  return {
    ...(b.presence_penalty ? { presencePenalty: b.presence_penalty } : {}),
    ...(b.frequency_penalty ? { frequencyPenalty: b.frequency_penalty } : {}),
  };
}

export function chatMessages(b: ChatBody): ChatMessage[] {
  return b.messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: typeof m.content === "string" ? m.content : (m.content ?? []).map((p) => p.text).join(""),
  }));
}
