/**
 * The public request body of POST /api/v1/inference and the token estimate. The generation
 * parameters (fields, defaults, ranges) are generation-params.ts's; this adds prompt, model, stream
 * and the refusal of unknown fields. Pure: gets a parsed JSON value, returns a typed request or
 * throws AppError naming the problem.
 */
import { z } from "zod";
import { AppError } from "../errors.js";
import {
  bodyParamsSchema,
  describeValue as describe,
  fromWire,
  GENERATION_FIELD_NAMES,
  isStorable as storable,
  type GenerationLimits,
  type GenerationParams,
} from "./generation-params.js";

export interface InferenceInput {
  prompt: string;
  model: string;
  params: GenerationParams;
  /** Accepted for compatibility with the first version; results are delivered on events_url. */
  stream: boolean;
  /** The longest the request may wait in the queue (refused at admission when the estimate is longer). */
  maxQueueSeconds?: number;
}

/** Bounds of max_queue_seconds: a second to a day. */
export const MAX_QUEUE_SECONDS = { min: 1, max: 86_400 } as const;

/** The body's max_queue_seconds, checked (shared by every submit route); undefined when absent or null. */
export function readMaxQueueSeconds(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < MAX_QUEUE_SECONDS.min || value > MAX_QUEUE_SECONDS.max) {
    throw bad("max_queue_seconds", `must be a number of seconds from ${MAX_QUEUE_SECONDS.min} to ${MAX_QUEUE_SECONDS.max}, got ${describe(value)}`);
  }
  return value;
}

/** Every top-level field the body may carry (the OpenAPI document's schema is checked against it). */
export const KNOWN_FIELDS = new Set<string>(["prompt", "model", "stream", "max_queue_seconds", ...GENERATION_FIELD_NAMES]);

export interface ValidationLimits extends GenerationLimits {
  maxPromptChars: number;
  models: readonly string[];
  defaultModel: string;
}

const bad = (field: string, message: string) =>
  new AppError("invalid_parameter", `${field}: ${message}`, { details: { field } });

/** The generation fields of the body, defaults filled in; the first bad one is named. */
function readParams(body: Record<string, unknown>, limits: GenerationLimits): GenerationParams {
  const parsed = bodyParamsSchema(limits).safeParse(body);
  if (parsed.success) return fromWire(parsed.data);
  const issue = parsed.error.issues[0] as z.core.$ZodIssue;
  throw bad(String(issue.path[0]), issue.message);
}

export function parseInferenceBody(body: unknown, limits: ValidationLimits): InferenceInput {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new AppError("invalid_body", `the body must be a JSON object, got ${describe(body)}`);
  }
  const record = body as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!KNOWN_FIELDS.has(key)) {
      const hint = key === "user_id" ? " (the user comes from the API key)" : "";
      throw new AppError("unknown_field", `unknown field "${key.slice(0, 64)}"${hint}`, { details: { field: key.slice(0, 64) } });
    }
  }
  const prompt = record.prompt;
  if (prompt === undefined) throw new AppError("missing_prompt", "prompt is required", { details: { field: "prompt" } });
  if (typeof prompt !== "string") throw bad("prompt", `must be a string, got ${describe(prompt)}`);
  if (prompt.trim().length === 0) throw new AppError("missing_prompt", "prompt must not be empty", { details: { field: "prompt" } });
  if (prompt.length > limits.maxPromptChars) {
    throw new AppError("prompt_too_long", `prompt has ${prompt.length} characters; the limit is ${limits.maxPromptChars}`, {
      details: { field: "prompt", limit: limits.maxPromptChars },
    });
  }
  if (!storable(prompt)) throw bad("prompt", "must be well-formed Unicode without NUL characters");

  let model = limits.defaultModel;
  if (record.model !== undefined) {
    if (typeof record.model !== "string") throw bad("model", `must be a string, got ${describe(record.model)}`);
    if (!limits.models.includes(record.model)) {
      throw new AppError("model_not_found", `model "${record.model.slice(0, 64)}" is not served here; available: ${limits.models.join(", ")}`, {
        details: { field: "model" },
      });
    }
    model = record.model;
  }

  let stream = false;
  if (record.stream !== undefined) {
    if (typeof record.stream !== "boolean") throw bad("stream", `must be a boolean, got ${describe(record.stream)}`);
    stream = record.stream;
  }

  const params = readParams(record, limits);
  const maxQueueSeconds = readMaxQueueSeconds(record.max_queue_seconds);
  return { prompt, model, params, stream, ...(maxQueueSeconds !== undefined ? { maxQueueSeconds } : {}) };
}

/**
 * Tokens reserved at admission: an upper bound of the prompt's tokens (a token covers at least one
 * UTF-8 byte; two more for BOS/EOS) plus every token the request may generate. Settling later
 * replaces it with the model tokenizer's real count, so over-estimating costs nothing but headroom,
 * while under-estimating could let a user pass a limit.
 */
export function estimateTokens(prompt: string, params: Pick<GenerationParams, "maxLength" | "numReturnSequences">): number {
  const promptTokens = Buffer.byteLength(prompt, "utf8") + 2;
  return promptTokens * params.numReturnSequences + params.maxLength * params.numReturnSequences;
}
