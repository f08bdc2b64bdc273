/**
 * The body of `POST /v1/responses`: what this platform takes of OpenAI's Responses API (text in,
 * text out, stored), validated with zod, and its translation into chat messages and generation
 * parameters. Pure: gets a parsed JSON value, returns a typed body or throws an AppError whose
 * `details.field` (OpenAI's `param`) names the field, in OpenAI's notation: `input[0].content`.
 *
 * Bounds of the generation fields are generation-params.ts's (`generationFields`), never restated.
 */
import { MAX_QUEUE_SECONDS } from "../../../domain/inference-request.js";
import { z } from "zod";
import { AppError } from "../../../errors.js";
import { describeValue, generationFields, isStorable, type GenerationLimits, type GenerationParams } from "../../../domain/generation-params.js";

/** OpenAI's documented limits on `metadata`. */
export const METADATA_MAX_KEYS = 16;
export const METADATA_MAX_KEY_CHARS = 64;
export const METADATA_MAX_VALUE_CHARS = 512;
/** The same bounds as the chat body's `model` and `user` (ml-service/schemas.ts). */
const MAX_NAME_CHARS = 500;
const MAX_MESSAGES = 256;
const MAX_PARTS = 64;

// Everything here is stored (PostgreSQL text/jsonb), so every string must be storable.
const text = z.string({ error: (i) => `must be a string, got ${describeValue(i.input)}` }).refine(isStorable, "must be well-formed Unicode without NUL characters");

const inputText = z.strictObject({ type: z.literal("input_text"), text });
// An assistant turn passed back from an earlier response's `output` carries output_text parts.
const outputText = z.strictObject({
  type: z.literal("output_text"),
  text,
  annotations: z.array(z.unknown()).max(0, "annotations are not supported").optional(),
  logprobs: z.array(z.unknown()).optional(),
});
const part = z.discriminatedUnion("type", [inputText, outputText], {
  error: (i) => (i.code === "invalid_union" ? "only input_text (and output_text) parts are supported" : undefined),
});

const message = z.strictObject({
  type: z.literal("message", { error: "only message items are supported (no tool calls or other item types)" }).optional(),
  role: z.enum(["user", "system", "developer", "assistant"]),
  content: z.union([text, z.array(part).min(1, "must not be empty").max(MAX_PARTS)]),
  // Present on items copied from an earlier response's output; not needed, so only checked.
  id: z.string().max(MAX_NAME_CHARS).optional(),
  status: z.enum(["in_progress", "completed", "incomplete"]).optional(),
});

const metadata = z
  .record(
    z.string().max(METADATA_MAX_KEY_CHARS, `keys must be at most ${METADATA_MAX_KEY_CHARS} characters`).refine(isStorable, "keys must be well-formed Unicode"),
    text.refine((v) => v.length <= METADATA_MAX_VALUE_CHARS, `values must be at most ${METADATA_MAX_VALUE_CHARS} characters`),
  )
  .refine((m) => Object.keys(m).length <= METADATA_MAX_KEYS, `at most ${METADATA_MAX_KEYS} keys`)
  // Refinements are invisible to JSON Schema: the bounds again as metadata, for the OpenAPI document.
  .meta({ maxProperties: METADATA_MAX_KEYS, additionalProperties: { type: "string", maxLength: METADATA_MAX_VALUE_CHARS } });

const STORE_FALSE =
  "store: false is not supported: every response is stored, since GET /v1/responses/{id} and resuming a stream " +
  "(starting_after) read it back; leave store out or send true";

export function responsesBodySchema(limits: GenerationLimits) {
  const f = generationFields(limits);
  // OpenAI clients send null for "not given", as for the chat and completion bodies.
  return z.strictObject({
    model: z.string().max(MAX_NAME_CHARS).nullish(),
    input: z.union([text.refine((v) => v.length > 0, "must not be empty").meta({ minLength: 1 }), z.array(message).min(1, "must not be empty").max(MAX_MESSAGES)]),
    instructions: text.nullish(),
    max_output_tokens: f.max_length.nullish(),
    temperature: f.temperature.nullish(),
    top_p: f.top_p.nullish(),
    metadata: metadata.nullish(),
    background: z.boolean().nullish(),
    stream: z.boolean().nullish(),
    /** Extension: the longest the response may wait in the queue (see POST /api/v1/inference). */
    max_queue_seconds: z.number().min(MAX_QUEUE_SECONDS.min).max(MAX_QUEUE_SECONDS.max).nullish(),
    store: z.boolean().nullish().refine((v) => v !== false, STORE_FALSE).meta({ enum: [true, null], description: STORE_FALSE }),
    user: text.refine((v) => v.length <= MAX_NAME_CHARS, `must be at most ${MAX_NAME_CHARS} characters`).meta({ maxLength: MAX_NAME_CHARS }).nullish(),
  });
}
export type ResponsesBody = z.infer<ReturnType<typeof responsesBodySchema>>;

/** The top-level fields taken; any other (tools, reasoning, previous_response_id, …) is refused by name. */
export const RESPONSES_BODY_FIELDS = Object.keys(responsesBodySchema({ maxLength: 1 }).shape);

/** OpenAI's notation for a path: `input[0].content[1].type`. */
function param(path: readonly PropertyKey[]): string {
  return path.reduce<string>((s, k) => (typeof k === "number" ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)), "");
}

/**
 * The issue to report and its path. A union reports every branch; the branch that failed past its
 * root type (an array whose part is wrong) says what is wrong, so it is the one followed.
 */
function explain(issue: z.core.$ZodIssue, base: readonly PropertyKey[] = []): { field: string; message: string } {
  const path = [...base, ...issue.path];
  if (issue.code === "unrecognized_keys") {
    const key = String(issue.keys[0]).slice(0, 64);
    return { field: param([...path, key]), message: `unknown field "${key}"` };
  }
  // A bad metadata key: name the record (the key may be long), with what is wrong with the key.
  if (issue.code === "invalid_key") {
    return { field: param(path.slice(0, -1)), message: issue.issues[0]?.message ?? issue.message };
  }
  if (issue.code === "invalid_union" && issue.errors.length > 0) {
    const deeper = issue.errors.find((branch) => branch.some((i) => !(i.code === "invalid_type" && i.path.length === 0)));
    if (deeper?.[0]) return explain(deeper[0], path);
    const expected = issue.errors.flatMap((b) => b.map((i) => (i.code === "invalid_type" ? i.expected : "valid")));
    return { field: param(path), message: `must be ${[...new Set(expected)].join(" or ")}` };
  }
  return { field: param(path), message: issue.message };
}

const schemas = new Map<number, ReturnType<typeof responsesBodySchema>>();
/** Built once per limit: zod compiles a schema on first use, which costs more than the parse itself. */
function schemaFor(limits: GenerationLimits) {
  let schema = schemas.get(limits.maxLength);
  if (!schema) schemas.set(limits.maxLength, (schema = responsesBodySchema(limits)));
  return schema;
}

/** The body parsed, or an AppError naming the first bad field (unknown fields before bad values). */
export function parseResponsesBody(body: unknown, limits: GenerationLimits): ResponsesBody {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new AppError("invalid_body", `the body must be a JSON object, got ${describeValue(body)}`);
  }
  for (const key of Object.keys(body)) {
    if (!RESPONSES_BODY_FIELDS.includes(key)) {
      const field = key.slice(0, 64);
      throw new AppError("unknown_field", `"${field}" is not supported here; the fields taken are ${RESPONSES_BODY_FIELDS.join(", ")}`, {
        details: { field },
      });
    }
  }
  const input = (body as Record<string, unknown>).input;
  if (input === undefined || input === null) {
    throw new AppError("missing_prompt", "input is required", { details: { field: "input" } });
  }
  const parsed = schemaFor(limits).safeParse(body);
  if (parsed.success) return parsed.data;
  const { field, message } = explain(parsed.error.issues[0]!);
  throw new AppError("invalid_parameter", `${field || "body"}: ${message}`, { details: { field } });
}

export interface ChatTurn {
  role: "system" | "user" | "assistant";
  content: string;
}

/** The generation parameters the body names (null and absent alike left out, for the caller's defaults). */
export type ResponsesParamOverrides = Partial<Pick<GenerationParams, "maxLength" | "temperature" | "topP">>;

/**
 * The body as chat turns and parameter overrides. `instructions` is a leading system message (as
 * OpenAI places it, before the input); `developer` is the model's system role; parts are joined.
 */
export function responsesRequest(body: ResponsesBody): { messages: ChatTurn[]; params: ResponsesParamOverrides } {
  const messages: ChatTurn[] = body.instructions ? [{ role: "system", content: body.instructions }] : [];
  if (typeof body.input === "string") {
    messages.push({ role: "user", content: body.input });
  } else {
    for (const m of body.input) {
      const content = typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join("");
      messages.push({ role: m.role === "developer" ? "system" : m.role, content });
    }
  }
  return {
    messages,
    params: {
      ...(body.max_output_tokens != null ? { maxLength: body.max_output_tokens } : {}),
      ...(body.temperature != null ? { temperature: body.temperature } : {}),
      ...(body.top_p != null ? { topP: body.top_p } : {}),
    },
  };
}
