/**
 * The request bodies of the OpenAPI document, as JSON Schema generated from the zod schemas that
 * validate them at the routes (never a copy kept by hand): a bound changed in generation-params.ts
 * or bodies.ts changes the document too. Bounds that are settings come in as `DocLimits`.
 *
 * `io: "input"` describes what a client sends (defaults are optional there, transforms by their
 * input); `unrepresentable: "any"` keeps a schema JSON Schema cannot say as `{}` instead of throwing.
 * Refinements are invisible to JSON Schema; the fields whose bounds are refinements carry them as
 * zod metadata (`.meta`) beside the refinement, so the document still states them.
 */
import { createBatchBody } from "../../components/gateway/batches/routes.js";
import { createUserBody } from "../../components/gateway/admin/shapes.js";
import { createWebhookBody } from "../../components/webhooks/endpoints.js";
import { z } from "zod";
import { KNOWN_FIELDS, MAX_QUEUE_SECONDS } from "../../domain/inference-request.js";
import { bodyParamsShape } from "../../domain/generation-params.js";
import { chatSchema, completionSchema } from "../../components/gateway/openai/bodies.js";
import { responsesBodySchema } from "../../components/gateway/openai/responses-body.js";

/** The bounds of the request bodies that are settings (GatewayConfig). */
export interface DocLimits {
  /** `MAX_LENGTH_LIMIT`: the largest max_length / max_tokens / max_output_tokens. */
  maxLengthLimit: number;
  /** `MAX_PROMPT_CHARS`. */
  maxPromptChars: number;
  /** `BODY_LIMIT_BYTES`, stated in the description of 413. */
  bodyLimitBytes?: number;
  /** `DEFAULT_MODEL`: what a body without `model` gets. */
  defaultModel?: string;
}

export type JsonSchema = Record<string, unknown>;

/** A zod schema as a JSON Schema to embed in the document (its dialect is the document's own). */
export function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as JsonSchema;
  return json;
}

/**
 * POST /api/v1/inference. parseInferenceBody checks prompt, model and stream by hand (for its own
 * error codes) and the parameters with `bodyParamsShape`; this object states the first three in
 * zod and spreads the parameters' own validators. Its field list is checked against KNOWN_FIELDS
 * here (and in the test), so a field added to the route and not to the document fails loudly.
 */
export function inferenceBodySchema(limits: DocLimits): z.ZodType {
  const schema = z.strictObject({
    prompt: z
      .string()
      .min(1)
      .max(limits.maxPromptChars)
      .meta({ pattern: "\\S", description: `The text to continue: not blank, at most ${limits.maxPromptChars} characters (MAX_PROMPT_CHARS).` }),
    model: z.string().optional().meta({ description: `A served model (GET /v1/models)${limits.defaultModel ? `; default ${limits.defaultModel}` : ""}.` }),
    stream: z.boolean().optional().meta({ description: "Keep the token stream, for GET /events/{id}?tokens=true." }),
    max_queue_seconds: z
      .number()
      .min(MAX_QUEUE_SECONDS.min)
      .max(MAX_QUEUE_SECONDS.max)
      .nullish()
      .meta({ description: "The longest the request may wait before it starts: refused at once (429 queue_deadline_unmeetable) when the estimate is longer, failed deadline_exceeded if still queued after it." }),
    ...bodyParamsShape({ maxLength: limits.maxLengthLimit }),
  });
  const fields = Object.keys(schema.shape).sort();
  const known = [...KNOWN_FIELDS].sort();
  if (fields.join() !== known.join()) throw new Error(`the documented inference body has ${fields.join()} but the route takes ${known.join()}`);
  return schema;
}

/** The zod schema of each body, by `${method} ${path}` of the document. */
export function bodySchemas(limits: DocLimits): Record<string, z.ZodType> {
  const openAi = { maxLength: limits.maxLengthLimit, maxPromptChars: limits.maxPromptChars, models: [], defaultModel: limits.defaultModel ?? "default" };
  return {
    "post /api/v1/inference": inferenceBodySchema(limits),
    "post /v1/chat/completions": chatSchema(openAi),
    "post /v1/completions": completionSchema(openAi),
    "post /v1/responses": responsesBodySchema({ maxLength: limits.maxLengthLimit }),
    "post /v1/batches": createBatchBody,
    "post /api/v1/admin/users": createUserBody,
    "post /api/v1/webhooks": createWebhookBody,
  };
}
