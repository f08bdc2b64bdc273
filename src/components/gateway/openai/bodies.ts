/**
 * The bodies of the gateway's `POST /v1/chat/completions` and `POST /v1/completions`: OpenAI's
 * fields, with the generation parameters' own validators (generation-params.ts) under OpenAI's
 * names, and the extensions `top_k` and `repetition_penalty`. Fields OpenAI has but this platform
 * does not do are refused when set to anything but their neutral value; unknown fields are refused.
 * Pure: returns what admission needs, or throws AppError naming the field (OpenAI's `param`).
 */
import { z } from "zod";
import { AppError } from "../../../errors.js";
import type { ChatMessage } from "../../../domain/contracts.js";
import { MAX_QUEUE_SECONDS } from "../../../domain/inference-request.js";
import { fromOpenAi, generationFields, isStorable, openAiParamsShape, type GenerationParams } from "../../../domain/generation-params.js";

export interface OpenAiBodyLimits {
  maxLength: number;
  maxPromptChars: number;
  models: readonly string[];
  defaultModel: string;
}

export interface ParsedOpenAiBody {
  model: string;
  /** Chat: the conversation; completions: absent. */
  messages?: ChatMessage[];
  /** Completions: the prompt; chat: the messages' text (what the estimate is made from). */
  prompt: string;
  params: GenerationParams;
  stream: boolean;
  includeUsage: boolean;
  maxQueueSeconds?: number;
}

/** OpenAI's defaults where ours differ: sampling as the model is (temperature 1, no top-k, no penalty). */
const OPENAI_DEFAULTS = { temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1, numReturnSequences: 1 };
/** OpenAI's default max_tokens for /v1/completions. */
const COMPLETION_DEFAULT_MAX_TOKENS = 16;

/** `json`: the neutral value as JSON Schema, for the OpenAPI document (a refinement is invisible to it). */
const neutral = (what: string, isNeutral: (v: unknown) => boolean, json: Record<string, unknown>) =>
  z
    .unknown()
    .optional()
    .refine((v) => v === undefined || v === null || isNeutral(v), `${what} is not supported here`)
    .meta({ description: `Not supported here: only null or its neutral value is accepted.`, anyOf: [json, { type: "null" }] });
const unsupported = {
  presence_penalty: neutral("presence_penalty", (v) => v === 0, { const: 0 }),
  frequency_penalty: neutral("frequency_penalty", (v) => v === 0, { const: 0 }),
  logit_bias: neutral("logit_bias", (v) => typeof v === "object" && v !== null && Object.keys(v).length === 0, { type: "object", maxProperties: 0 }),
  logprobs: neutral("logprobs", (v) => v === false || v === 0, { enum: [false, 0] }),
  top_logprobs: neutral("top_logprobs", (v) => v === 0, { const: 0 }),
};

const queueLimit = (b: { max_queue_seconds?: number | null }) =>
  typeof b.max_queue_seconds === "number" ? { maxQueueSeconds: b.max_queue_seconds } : {};

function commonFields(limits: OpenAiBodyLimits) {
  return {
    model: z.string().min(1).max(256),
    ...openAiParamsShape({ maxLength: limits.maxLength }),
    stream: z.boolean().nullish(),
    stream_options: z.object({ include_usage: z.boolean().nullish() }).strict().nullish(),
    user: z.string().max(256).nullish(),
    /** Extension: the longest the request may wait in the queue (see POST /api/v1/inference). */
    max_queue_seconds: z.number().min(MAX_QUEUE_SECONDS.min).max(MAX_QUEUE_SECONDS.max).nullish(),
    ...unsupported,
  };
}

const text = z.string().refine(isStorable, "must be well-formed Unicode without NUL characters");
const contentPart = z.object({ type: z.literal("text"), text }).strict();
const chatMessage = z
  .object({
    role: z.enum(["system", "developer", "user", "assistant"], { error: "must be system, developer, user or assistant" }),
    content: z.union([text, z.array(contentPart).max(64)]).nullish(),
    name: z.string().max(64).optional(),
  })
  .strict();

const chatSchemas = new Map<string, z.ZodType>();
const completionSchemas = new Map<string, z.ZodType>();
const cached = (map: Map<string, z.ZodType>, limits: OpenAiBodyLimits, build: () => z.ZodType) => {
  const key = `${limits.maxLength}`;
  let schema = map.get(key);
  if (!schema) map.set(key, (schema = build()));
  return schema;
};

/** The zod schema of the chat body (exported for the OpenAPI document, which is generated from it). */
export function chatSchema(limits: OpenAiBodyLimits) {
  return cached(chatSchemas, limits, () =>
    z
      .object({
        ...commonFields(limits),
        messages: z.array(chatMessage).min(1, "must hold at least one message").max(256),
        max_completion_tokens: generationFields({ maxLength: limits.maxLength }).max_length.nullish(),
      })
      .strict(),
  );
}

/** The zod schema of the completion body (exported for the OpenAPI document). */
export function completionSchema(limits: OpenAiBodyLimits) {
  return cached(completionSchemas, limits, () =>
    z
      .object({
        ...commonFields(limits),
        prompt: z.union([text, z.array(text).length(1, "one prompt per request")]),
        echo: neutral("echo", (v) => v === false, { const: false }),
        suffix: neutral("suffix", (v) => v === "", { const: "" }),
        best_of: neutral("best_of", (v) => v === 1, { const: 1 }),
      })
      .strict(),
  );
}

/** The first problem, as our error: unknown fields as unknown_field, the rest as invalid_parameter. */
function refusal(error: z.ZodError, body: Record<string, unknown>): AppError {
  const issue = error.issues[0] as z.core.$ZodIssue;
  if (issue.code === "unrecognized_keys") {
    const key = String(issue.keys[0]).slice(0, 64);
    const where = issue.path.length > 0 ? `${issue.path.join(".")}.` : "";
    return new AppError("unknown_field", `unknown field "${where}${key}"`, { details: { field: `${where}${key}` } });
  }
  const field = issue.path.length > 0 ? issue.path.join(".") : "body";
  if ((field === "messages" || field === "prompt") && body[field] === undefined) {
    return new AppError("missing_prompt", `${field} is required`, { details: { field } });
  }
  return new AppError("invalid_parameter", `${field}: ${issue.message}`, { details: { field } });
}

function parseWith<T>(schema: z.ZodType, body: unknown): T {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new AppError("invalid_body", "the body must be a JSON object");
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw refusal(parsed.error, body as Record<string, unknown>);
  return parsed.data as T;
}

function checkModel(model: string, limits: OpenAiBodyLimits): string {
  if (!limits.models.includes(model)) {
    throw new AppError("model_not_found", `model "${model.slice(0, 64)}" is not served here; available: ${limits.models.join(", ")}`, {
      details: { field: "model" },
    });
  }
  return model === "default" ? limits.defaultModel : model;
}

function checkLength(prompt: string, field: string, limits: OpenAiBodyLimits): void {
  if (prompt.trim().length === 0) throw new AppError("missing_prompt", `${field} must not be empty`, { details: { field } });
  if (prompt.length > limits.maxPromptChars) {
    throw new AppError("prompt_too_long", `${field} has ${prompt.length} characters; the limit is ${limits.maxPromptChars}`, {
      details: { field, limit: limits.maxPromptChars },
    });
  }
}

function checkStreaming(stream: boolean, params: GenerationParams): void {
  if (stream && params.numReturnSequences > 1) {
    throw new AppError("invalid_parameter", "n: streaming returns one choice; use n: 1 with stream", { details: { field: "n" } });
  }
}

type Common = z.infer<z.ZodObject<ReturnType<typeof commonFields>>>;

export function parseChatBody(body: unknown, limits: OpenAiBodyLimits): ParsedOpenAiBody {
  const b = parseWith<Common & { messages: Array<z.infer<typeof chatMessage>>; max_completion_tokens?: number | null }>(chatSchema(limits), body);
  const messages: ChatMessage[] = b.messages.map((m) => ({
    // A developer message is the system prompt of newer OpenAI models.
    role: m.role === "developer" ? "system" : m.role,
    content: typeof m.content === "string" ? m.content : (m.content ?? []).map((part) => part.text).join(""),
  }));
  const prompt = messages.map((m) => m.content).join("\n");
  checkLength(prompt, "messages", limits);
  const params = fromOpenAi({ ...b, max_tokens: b.max_completion_tokens ?? b.max_tokens }, { ...OPENAI_DEFAULTS, maxLength: limits.maxLength });
  checkStreaming(b.stream === true, params);
  return { model: checkModel(b.model, limits), messages, prompt, params, stream: b.stream === true, includeUsage: b.stream_options?.include_usage === true, ...queueLimit(b) };
}

export function parseCompletionBody(body: unknown, limits: OpenAiBodyLimits): ParsedOpenAiBody {
  const b = parseWith<Common & { prompt: string | string[] }>(completionSchema(limits), body);
  const prompt = typeof b.prompt === "string" ? b.prompt : (b.prompt[0] as string);
  checkLength(prompt, "prompt", limits);
  const params = fromOpenAi(b, { ...OPENAI_DEFAULTS, maxLength: Math.min(COMPLETION_DEFAULT_MAX_TOKENS, limits.maxLength) });
  checkStreaming(b.stream === true, params);
  return { model: checkModel(b.model, limits), prompt, params, stream: b.stream === true, includeUsage: b.stream_options?.include_usage === true, ...queueLimit(b) };
}
