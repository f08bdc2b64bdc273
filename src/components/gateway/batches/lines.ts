/**
 * A batch's input file, checked line by line before anything runs, and each line turned into what
 * admission takes. Pure. Line bodies go through the very parsers the routes use (bodies.ts,
 * responses-body.ts), so a line is refused for exactly what the route would refuse it for, and the
 * error names the line and the field (`param: "body.max_tokens"`).
 */
import { AppError, isAppError } from "../../../errors.js";
import type { BatchEndpoint, BatchLineError } from "../../../domain/batches.js";
import { BATCH_ENDPOINTS } from "../../../domain/batches.js";
import { estimatedLineTokens } from "../../../domain/fair-share.js";
import type { AdmissionInput } from "../admission.js";
import { parseChatBody, parseCompletionBody, type OpenAiBodyLimits } from "../openai/bodies.js";
import { parseResponsesBody, responsesRequest } from "../openai/responses-body.js";

export interface BatchLimits {
  maxBytes: number;
  maxLines: number;
  body: OpenAiBodyLimits;
}

export interface BatchLine {
  line: number;
  customId: string;
  body: Record<string, unknown>;
  /** The model it runs on and its estimated tokens, for the fair scheduler. */
  model: string;
  cost: number;
}

export type Validated = { ok: true; lines: BatchLine[] } | { ok: false; errors: BatchLineError[] };

/** A file with thousands of bad lines is told about the first ones; that is enough to fix it. */
export const MAX_REPORTED_ERRORS = 100;
const CUSTOM_ID_MAX = 512;

export const isBatchEndpoint = (value: unknown): value is BatchEndpoint => BATCH_ENDPOINTS.includes(value as BatchEndpoint);

export type LineAdmission = Omit<AdmissionInput, "user" | "idempotency">;

/** The line's body as admission takes it, or an AppError naming the field as the route would. */
export function lineAdmission(endpoint: BatchEndpoint, body: unknown, limits: OpenAiBodyLimits): LineAdmission {
  const b = body as Record<string, unknown> | null;
  // Nobody holds a connection for a batch line: its answer goes into the output file.
  if (b && typeof b === "object" && (b.stream === true || b.background === true)) {
    const field = b.stream === true ? "stream" : "background";
    throw new AppError("invalid_parameter", `${field}: not supported in a batch`, { details: { field } });
  }
  if (endpoint === "/v1/responses") {
    const parsed = parseResponsesBody(body, { maxLength: limits.maxLength });
    const { messages, params } = responsesRequest(parsed);
    const prompt = messages.map((m) => m.content).join("\n");
    if (prompt.length > limits.maxPromptChars) {
      throw new AppError("prompt_too_long", `input has ${prompt.length} characters; the limit is ${limits.maxPromptChars}`, { details: { field: "input" } });
    }
    const requested = parsed.model ?? limits.defaultModel;
    if (!limits.models.includes(requested)) {
      throw new AppError("model_not_found", `model "${requested.slice(0, 64)}" is not served here`, { details: { field: "model" } });
    }
    return {
      api: "response",
      model: requested === "default" ? limits.defaultModel : requested,
      prompt,
      messages,
      params: { maxLength: limits.maxLength, temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1, numReturnSequences: 1, ...params },
      streamTokens: false,
      // What responseOf() echoes, as the route stores it.
      apiOptions: {
        instructions: parsed.instructions ?? null,
        metadata: parsed.metadata ?? null,
        max_output_tokens: parsed.max_output_tokens ?? null,
        temperature: parsed.temperature ?? null,
        top_p: parsed.top_p ?? null,
        background: false,
      },
    };
  }
  const chat = endpoint === "/v1/chat/completions";
  const parsed = chat ? parseChatBody(body, limits) : parseCompletionBody(body, limits);
  return {
    api: chat ? "chat" : "completion",
    model: parsed.model,
    prompt: parsed.prompt,
    ...(parsed.messages ? { messages: parsed.messages } : {}),
    params: parsed.params,
    streamTokens: false,
    apiOptions: { include_usage: false },
  };
}

const lineError = (code: string, line: number | null, message: string, param: string | null = null): BatchLineError => ({ code, line, message, param });

/**
 * Every line must be a JSON object `{custom_id, method: "POST", url, body}` with a unique custom_id,
 * the batch's endpoint as url and a body the endpoint takes. Empty lines are skipped (a trailing
 * newline is normal) but keep their number, so `line` is what an editor shows.
 */
export function validateBatchFile(content: Buffer, endpoint: BatchEndpoint, limits: BatchLimits): Validated {
  if (content.length > limits.maxBytes) {
    return { ok: false, errors: [lineError("file_too_large", null, `the input file has ${content.length} bytes; the limit is ${limits.maxBytes}`)] };
  }
  const errors: BatchLineError[] = [];
  const lines: BatchLine[] = [];
  const seen = new Set<string>();
  const rows = content.toString("utf8").split("\n");
  let count = 0;
  for (let i = 0; i < rows.length && errors.length < MAX_REPORTED_ERRORS; i++) {
    const text = (rows[i] as string).replace(/\r$/, "");
    if (text.trim() === "") continue;
    const n = i + 1;
    if (++count > limits.maxLines) {
      errors.push(lineError("too_many_lines", n, `the input file has more than ${limits.maxLines} request lines`));
      break;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      errors.push(lineError("invalid_json_line", n, `line ${n} is not valid JSON`));
      continue;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      errors.push(lineError("invalid_json_line", n, `line ${n} is not a JSON object`));
      continue;
    }
    const o = value as Record<string, unknown>;
    const unknown = Object.keys(o).find((k) => !["custom_id", "method", "url", "body"].includes(k));
    if (unknown !== undefined) {
      errors.push(lineError("unknown_field", n, `line ${n} has an unknown field "${unknown.slice(0, 64)}"`, unknown.slice(0, 64)));
      continue;
    }
    if (typeof o.custom_id !== "string" || o.custom_id.length === 0 || o.custom_id.length > CUSTOM_ID_MAX) {
      errors.push(lineError("invalid_custom_id", n, `line ${n}: custom_id must be a string of 1 to ${CUSTOM_ID_MAX} characters`, "custom_id"));
      continue;
    }
    if (seen.has(o.custom_id)) {
      errors.push(lineError("duplicate_custom_id", n, `line ${n}: custom_id "${o.custom_id.slice(0, 64)}" is used by an earlier line`, "custom_id"));
      continue;
    }
    seen.add(o.custom_id);
    if (o.method !== "POST") {
      errors.push(lineError("invalid_method", n, `line ${n}: method must be "POST"`, "method"));
      continue;
    }
    if (o.url !== endpoint) {
      errors.push(lineError("invalid_url", n, `line ${n}: url must be the batch's endpoint, "${endpoint}"`, "url"));
      continue;
    }
    let admission: LineAdmission;
    try {
      admission = lineAdmission(endpoint, o.body, limits.body);
    } catch (error) {
      if (!isAppError(error)) throw error;
      const field = error.details?.field;
      errors.push(lineError(error.code, n, `line ${n}: ${error.message}`, typeof field === "string" && field !== "body" ? `body.${field}` : "body"));
      continue;
    }
    lines.push({ line: n, customId: o.custom_id, body: o.body as Record<string, unknown>, model: admission.model, cost: estimatedLineTokens(admission) });
  }
  if (errors.length > 0) return { ok: false, errors };
  if (lines.length === 0) return { ok: false, errors: [lineError("empty_file", null, "the input file has no request lines")] };
  return { ok: true, lines };
}
