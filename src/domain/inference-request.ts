/**
 * The public request body of POST /api/v1/inference: defaults, ranges and the token estimate.
 * Pure: gets a parsed JSON value, returns a typed request or throws AppError naming the problem.
 */
import { AppError } from "../errors.js";
import type { GenerationParams } from "./contracts.js";

export interface InferenceInput {
  prompt: string;
  model: string;
  params: GenerationParams;
  /** Accepted for compatibility with the first version; results are delivered on events_url. */
  stream: boolean;
}

interface NumberField {
  kind: "number";
  integer: boolean;
  min: number;
  max: number;
  /** Exclusive lower bound, for ranges like (0, 1]. */
  minExclusive?: boolean;
  default: number;
}

const NUMBER_FIELDS: Record<string, NumberField> = {
  max_length: { kind: "number", integer: true, min: 1, max: 500, default: 100 },
  temperature: { kind: "number", integer: false, min: 0, max: 2, default: 0.7 },
  top_p: { kind: "number", integer: false, min: 0, max: 1, minExclusive: true, default: 0.9 },
  top_k: { kind: "number", integer: true, min: 0, max: 1000, default: 50 },
  repetition_penalty: { kind: "number", integer: false, min: 0.5, max: 2, default: 1.2 },
  num_return_sequences: { kind: "number", integer: true, min: 1, max: 5, default: 1 },
  seed: { kind: "number", integer: true, min: 0, max: 2 ** 31 - 1, default: Number.NaN },
};

const KNOWN_FIELDS = new Set(["prompt", "model", "stream", "stop", ...Object.keys(NUMBER_FIELDS)]);
const MAX_STOP_SEQUENCES = 4;
const MAX_STOP_LENGTH = 64;

export interface ValidationLimits {
  maxPromptChars: number;
  models: readonly string[];
  defaultModel: string;
}

/** PostgreSQL text and jsonb hold neither NUL nor lone UTF-16 surrogates: refuse them up front. */
const storable = (text: string): boolean => !text.includes("\u0000") && !/\p{Cs}/u.test(text);

const bad = (field: string, message: string) =>
  new AppError("invalid_parameter", `${field}: ${message}`, { details: { field } });

function readNumber(body: Record<string, unknown>, field: string, spec: NumberField): number | undefined {
  const value = body[field];
  if (value === undefined) return Number.isNaN(spec.default) ? undefined : spec.default;
  if (typeof value !== "number" || !Number.isFinite(value)) throw bad(field, `must be a number, got ${describe(value)}`);
  if (spec.integer && !Number.isInteger(value)) throw bad(field, `must be an integer, got ${value}`);
  const belowMin = spec.minExclusive ? value <= spec.min : value < spec.min;
  if (belowMin || value > spec.max) {
    const range = `${spec.minExclusive ? "(" : "["}${spec.min}, ${spec.max}]`;
    throw bad(field, `must be in ${range}, got ${value}`);
  }
  return value;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "string" ? "a string" : typeof value;
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

  let stop: string[] | undefined;
  if (record.stop !== undefined) {
    const raw = typeof record.stop === "string" ? [record.stop] : record.stop;
    if (!Array.isArray(raw) || raw.some((s) => typeof s !== "string" || s.length === 0 || s.length > MAX_STOP_LENGTH)) {
      throw bad("stop", `must be a string or an array of non-empty strings of at most ${MAX_STOP_LENGTH} characters`);
    }
    if (raw.length > MAX_STOP_SEQUENCES) throw bad("stop", `at most ${MAX_STOP_SEQUENCES} sequences`);
    if (!(raw as string[]).every(storable)) throw bad("stop", "must be well-formed Unicode without NUL characters");
    stop = raw as string[];
  }

  const num = (field: string) => readNumber(record, field, NUMBER_FIELDS[field] as NumberField);
  const seed = num("seed");
  const params: GenerationParams = {
    max_length: num("max_length") as number,
    temperature: num("temperature") as number,
    top_p: num("top_p") as number,
    top_k: num("top_k") as number,
    repetition_penalty: num("repetition_penalty") as number,
    num_return_sequences: num("num_return_sequences") as number,
    ...(stop ? { stop } : {}),
    ...(seed !== undefined ? { seed } : {}),
  };
  return { prompt, model, params, stream };
}

/**
 * Tokens reserved at admission: an upper bound of the prompt's tokens (a token covers at least one
 * UTF-8 byte; two more for BOS/EOS) plus every token the request may generate. Settling later
 * replaces it with the model tokenizer's real count, so over-estimating costs nothing but headroom,
 * while under-estimating could let a user pass a limit.
 */
export function estimateTokens(prompt: string, params: Pick<GenerationParams, "max_length" | "num_return_sequences">): number {
  const promptTokens = Buffer.byteLength(prompt, "utf8") + 2;
  return promptTokens * params.num_return_sequences + params.max_length * params.num_return_sequences;
}
