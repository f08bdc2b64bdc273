/**
 * The answer schemas of the OpenAPI document. The two error shapes are generated from the error
 * table (errors.ts), and the status answer is the route's own fastify response schema. The other
 * answers have no schema in code (the routes build them with typed functions: chat-shapes.ts,
 * responses-shapes.ts, the handlers), so they are written here, in this one module, and the test
 * checks them against what those functions really return.
 */
import { ERROR_CODES, ERRORS } from "../../errors.js";
import { STATUS_SCHEMA } from "../../components/api-service/index.js";
import type { JsonSchema } from "./requests.js";
import { WEBHOOK_EVENT_TYPES } from "../../domain/webhooks.js";

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
const nullable = (schema: JsonSchema): JsonSchema => ({ anyOf: [schema, { type: "null" }] });
const str = { type: "string" };
const int = { type: "integer" };
/** An object whose listed properties are all required (OpenAI's shapes always carry them). */
const obj = (properties: Record<string, JsonSchema>, optional: string[] = []): JsonSchema => ({
  type: "object",
  properties,
  required: Object.keys(properties).filter((k) => !optional.includes(k)),
});

const webhookEvents: JsonSchema = { anyOf: [{ type: "array", items: { enum: [...WEBHOOK_EVENT_TYPES] } }, { const: "all" }] };
const REQUEST_STATUSES = ["queued", "processing", "completed", "failed", "cancelled"];
const FINISH = { enum: ["stop", "length"], description: "A cancelled generation ends with stop (its text is what was generated)." };
/** OpenAI's error `type`s, one per status class (errors.ts `openAiType`). */
const OPENAI_TYPES = ["invalid_request_error", "authentication_error", "permission_error", "rate_limit_error", "server_error"];

/** The stable codes of errors.ts, each with its status and doc (the docs page renders the table from it). */
export function errorCodeSchema(): JsonSchema {
  return {
    type: "string",
    enum: [...ERROR_CODES],
    description: "The stable error code. The table lists each code's HTTP status, whether a retry can succeed, and what it means.",
    "x-errors": Object.fromEntries(
      ERROR_CODES.map((code) => [code, { status: ERRORS[code].status, retryable: ERRORS[code].retryable, doc: ERRORS[code].doc }]),
    ),
  };
}

const usage = obj({ prompt_tokens: int, completion_tokens: int, total_tokens: int });
const modelObject = obj({ id: str, object: { const: "model" }, created: int, owned_by: str });

const chatChoice = obj({
  index: int,
  message: obj({ role: { const: "assistant" }, content: str, refusal: { type: "null" } }),
  logprobs: { type: "null" },
  finish_reason: FINISH,
});
const chunkChoice = obj({
  index: int,
  delta: obj({ role: { const: "assistant" }, content: str }, ["role", "content"]),
  logprobs: { type: "null" },
  finish_reason: nullable(FINISH),
});
const completionChoice = (finish: JsonSchema) => obj({ index: int, text: str, logprobs: { type: "null" }, finish_reason: finish });
const openAiHead = (object: string, idPrefix: string) => ({
  id: { type: "string", pattern: `^${idPrefix}` },
  object: { const: object },
  created: { type: "integer", description: "Unix seconds." },
  model: str,
});

const outputText = obj({ type: { const: "output_text" }, text: str, annotations: { type: "array", maxItems: 0 }, logprobs: { type: "array" } });
const messageItem = obj({
  id: { type: "string", pattern: "^msg_" },
  type: { const: "message" },
  role: { const: "assistant" },
  status: { enum: ["in_progress", "completed", "incomplete"] },
  content: { type: "array", items: outputText },
});
const responseUsage = obj({
  input_tokens: int,
  input_tokens_details: obj({ cached_tokens: int, cache_write_tokens: int }),
  output_tokens: int,
  output_tokens_details: obj({ reasoning_tokens: int }),
  total_tokens: int,
});
const responseObject = obj(
  {
    id: { type: "string", pattern: "^resp_[0-9a-f]{32}$" },
    object: { const: "response" },
    created_at: int,
    status: { enum: ["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"] },
    background: { type: "boolean" },
    model: str,
    output: { type: "array", items: messageItem, maxItems: 1 },
    error: nullable(obj({ code: { enum: ["rate_limit_exceeded", "invalid_prompt", "server_error"] }, message: str, type: { type: "string", description: "The stable code of the error table (ErrorCode)." } })),
    incomplete_details: nullable(obj({ reason: { const: "max_output_tokens" } })),
    instructions: nullable(str),
    metadata: { type: "object", additionalProperties: str },
    max_output_tokens: nullable(int),
    temperature: nullable({ type: "number" }),
    top_p: nullable({ type: "number" }),
    parallel_tool_calls: { const: false },
    tool_choice: { const: "none" },
    tools: { type: "array", maxItems: 0 },
    text: obj({ format: obj({ type: { const: "text" } }) }),
    truncation: { const: "disabled" },
    access_programs: { type: "null" },
    usage: responseUsage,
    completed_at: { type: "integer", description: "Unix seconds; a completed response only." },
  },
  ["usage", "completed_at"],
);

const seq = { type: "integer", minimum: 0, description: "Depends only on the request's stream: resume with starting_after." };
const at = { output_index: { const: 0 }, content_index: { const: 0 }, item_id: { type: "string", pattern: "^msg_" } };
/** Every event the Responses stream emits (responses-shapes.ts `EmittedEvent`), by `type`. */
const responseEvents: JsonSchema[] = [
  ...["response.created", "response.in_progress", "response.completed", "response.failed", "response.incomplete"].map((type) =>
    obj({ type: { const: type }, sequence_number: seq, response: ref("Response") }),
  ),
  obj({ type: { const: "response.output_item.added" }, sequence_number: seq, output_index: { const: 0 }, item: messageItem }),
  obj({ type: { const: "response.output_item.done" }, sequence_number: seq, output_index: { const: 0 }, item: messageItem }),
  obj({ type: { const: "response.content_part.added" }, sequence_number: seq, ...at, part: outputText }),
  obj({ type: { const: "response.content_part.done" }, sequence_number: seq, ...at, part: outputText }),
  obj({ type: { const: "response.output_text.delta" }, sequence_number: seq, ...at, delta: str, logprobs: { type: "array" } }),
  obj({ type: { const: "response.output_text.done" }, sequence_number: seq, ...at, text: str, logprobs: { type: "array" } }),
];

/** Every named schema of `components.schemas`. */
export function answerSchemas(): Record<string, JsonSchema> {
  return {
    ErrorCode: errorCodeSchema(),
    Error: {
      ...obj({ error: obj({ code: ref("ErrorCode"), message: str, details: { type: "object", description: "e.g. `field`: the field at fault." } }, ["details"]) }),
      description: "Every error answer outside /v1.",
    },
    OpenAIError: {
      ...obj({ error: obj({ message: str, type: { enum: OPENAI_TYPES }, param: nullable(str), code: ref("ErrorCode") }) }),
      description: "Every error answer of a /v1 route, in OpenAI's shape; `code` is the stable code, `param` the field at fault.",
    },
    Usage: usage,
    Accepted: obj({
      request_id: { type: "string", format: "uuid" },
      status: { enum: REQUEST_STATUSES, description: "queued when new; a replayed Idempotency-Key answers 200 with the request's status now." },
      status_url: str,
      events_url: str,
      sse_endpoint: { type: "string", description: "The same as events_url (kept for the first version's clients)." },
      cancel_url: str,
      model: str,
      estimated_tokens: { type: "integer", description: "Tokens reserved against the quota until the request settles." },
      user_id: str,
      timestamp: { type: "string", format: "date-time" },
      estimated_start_at: { ...nullable({ type: "string", format: "date-time" }), description: "When the request should start, from the backlog ahead of it and the throughput just measured; null before anything was measured." },
      estimated_finish_at: { ...nullable({ type: "string", format: "date-time" }), description: "When it should finish (the start plus the recent mean run, scaled by its size)." },
    }),
    Queue: obj({
      object: { const: "queue" },
      at: { type: "string", format: "date-time" },
      backlog: obj({ interactive: obj({ requests: int, estimated_tokens: int }), batch: obj({ pending_lines: int }) }),
      throughput: obj({ window_seconds: int, requests_per_second: { type: "number" }, estimated_tokens_per_second: { type: "number" }, mean_run_seconds: nullable({ type: "number" }) }),
      estimated_wait_seconds: { ...nullable({ type: "number" }), description: "How long a request admitted now would wait before it starts." },
      yours: obj({ open: int, position: nullable(int), estimated_start_at: nullable({ type: "string", format: "date-time" }) }),
    }),
    CancelResult: obj({ request_id: str, status: { enum: REQUEST_STATUSES }, usage: nullable(usage), error: nullable(obj({ code: str, message: str })) }),
    Status: STATUS_SCHEMA as unknown as JsonSchema,
    FileObject: {
      type: "object",
      required: ["id", "object", "bytes", "created_at", "filename", "purpose", "status"],
      properties: { id: { type: "string" }, object: { const: "file" }, bytes: { type: "integer" }, created_at: { type: "integer" }, filename: { type: "string" }, purpose: { type: "string" }, status: { type: "string" },
        expires_at: { type: "integer", description: "When the file stops being found (Unix seconds): `expires_after`, else `BATCH_INPUT_FILE_TTL_S` (input files) or the batch's output expiry; absent: it lasts until deleted." } },
    },
    Batch: {
      type: "object",
      required: ["id", "object", "endpoint", "input_file_id", "completion_window", "status", "created_at"],
      properties: {
        id: { type: "string" }, object: { const: "batch" }, endpoint: { type: "string" }, input_file_id: { type: "string" }, completion_window: { type: "string" },
        status: {
          enum: ["validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"],
          description: "OpenAI's: `validating` when created, then `in_progress` (or `failed` when its file is not valid), `finalizing` while its files are written, `completed`; `cancelling` → `cancelled`; `expired` when the window ends first.",
        },
        created_at: { type: "integer" }, output_file_id: { anyOf: [{ type: "string" }, { type: "null" }] }, error_file_id: { anyOf: [{ type: "string" }, { type: "null" }] },
        request_counts: { type: "object", properties: { total: { type: "integer" }, completed: { type: "integer" }, failed: { type: "integer" } } },
        model: { type: "string", description: "The model its lines run on." },
        usage: {
          type: "object",
          description: "Tokens its lines used, once it finished.",
          properties: {
            input_tokens: { type: "integer" }, input_tokens_details: { type: "object", properties: { cached_tokens: { type: "integer" } } },
            output_tokens: { type: "integer" }, output_tokens_details: { type: "object", properties: { reasoning_tokens: { type: "integer" } } },
            total_tokens: { type: "integer" },
          },
        },
        errors: { anyOf: [{ type: "null" }, { type: "object", properties: { data: { type: "array", items: { type: "object", properties: { code: { type: "string" }, line: { anyOf: [{ type: "integer" }, { type: "null" }] }, message: { type: "string" }, param: { anyOf: [{ type: "string" }, { type: "null" }] } } } } } }] },
      },
    },
    List: { type: "object", required: ["object", "data"], properties: { object: { const: "list" }, data: { type: "array" }, has_more: { type: "boolean" }, first_id: { anyOf: [{ type: "string" }, { type: "null" }] }, last_id: { anyOf: [{ type: "string" }, { type: "null" }] } } },
    Deleted: { type: "object", required: ["id", "object", "deleted"], properties: { id: { type: "string" }, object: { type: "string" }, deleted: { const: true } } },
    JsonlText: { type: "string", description: "One JSON object per line." },
    WebhookEndpointCreated: {
      ...obj({ id: { type: "string", pattern: "^whe_" }, object: { const: "webhook_endpoint" }, url: str, events: webhookEvents, status: { const: "enabled" }, secret: { type: "string", pattern: "^whsec_" } }),
      description: "The new endpoint with its signing secret, shown this once.",
    },
    WebhookEndpoint: obj({
      id: { type: "string", pattern: "^whe_" },
      object: { const: "webhook_endpoint" },
      url: str,
      events: webhookEvents,
      status: { enum: ["enabled", "disabled"], description: "disabled: its deliveries kept failing for WEBHOOK_MAX_ATTEMPT_AGE_MS; `disabled_reason` says why." },
      disabled_reason: nullable(str),
      disabled_at: nullable({ type: "string", format: "date-time" }),
      last_error: nullable(str),
      last_error_at: nullable({ type: "string", format: "date-time" }),
      last_delivered_at: nullable({ type: "string", format: "date-time" }),
      pending_deliveries: int,
      created_at: { type: "string", format: "date-time" },
    }),
    WebhookEndpointList: obj({
      object: { const: "list" },
      data: { type: "array", items: ref("WebhookEndpoint") },
      event_types: { type: "array", items: { enum: [...WEBHOOK_EVENT_TYPES] }, description: "Every event type an endpoint may ask for (the values `events` accepts)." },
    }),
    WebhookEvent: {
      ...obj({ id: { type: "string", pattern: "^evt_" }, type: { enum: [...WEBHOOK_EVENT_TYPES] }, created_at: { type: "integer", description: "Unix seconds." }, object: { const: "event" }, data: obj({ id: str }) }),
      description:
        "What is POSTed to an endpoint, signed as Standard Webhooks (and OpenAI's SDK `webhooks.unwrap`) check it: `webhook-id` (the event id, the same on every retry), " +
        "`webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of \"id.timestamp.body\" keyed with the secret after whsec_, base64-decoded>`.",
    },
    RequestList: {
      type: "object",
      required: ["object", "data", "has_more", "next_cursor"],
      properties: {
        object: { const: "list" },
        data: { type: "array", items: { type: "object", properties: { request_id: { type: "string" }, status: { type: "string" }, api: { type: "string" } } } },
        has_more: { type: "boolean" },
        next_cursor: { anyOf: [{ type: "string" }, { type: "null" }] },
      },
    },
    Quota: obj({
      user_id: str,
      limits: obj({ daily: obj({ requests: nullable(int), tokens: nullable(int) }), monthly: obj({ requests: nullable(int), tokens: nullable(int) }) }),
      window: { type: "object", description: "The quota windows now (day and month)." },
      daily: obj({ requests: int, tokens_used: int, tokens_reserved: int }),
      monthly: obj({ requests: int, tokens_used: int, tokens_reserved: int }),
      resets: obj({ daily: { type: "string", format: "date-time" }, monthly: { type: "string", format: "date-time" } }),
    }),
    Model: modelObject,
    ModelList: obj({ object: { const: "list" }, data: { type: "array", items: ref("Model") } }),
    ChatCompletion: obj({ ...openAiHead("chat.completion", "chatcmpl-"), choices: { type: "array", items: chatChoice }, usage }, ["usage"]),
    ChatCompletionChunk: {
      ...obj({ ...openAiHead("chat.completion.chunk", "chatcmpl-"), choices: { type: "array", items: chunkChoice }, usage: nullable(usage) }, ["usage"]),
      description: "One `data:` line of the stream; the stream ends with `data: [DONE]`. With include_usage a last chunk has no choices and the usage.",
    },
    TextCompletion: obj({ ...openAiHead("text_completion", "cmpl-"), choices: { type: "array", items: completionChoice(FINISH) }, usage }, ["usage"]),
    TextCompletionChunk: {
      ...obj({ ...openAiHead("text_completion", "cmpl-"), choices: { type: "array", items: completionChoice(nullable(FINISH)) }, usage: nullable(usage) }, ["usage"]),
      description: "One `data:` line of a streamed /v1/completions; the stream ends with `data: [DONE]`.",
    },
    Response: responseObject,
    ResponseStreamEvent: {
      oneOf: responseEvents,
      description: "One SSE message, `event: <type>` then `data: <event>`; no [DONE]. An interrupted stream ends with `event: error` and an OpenAIError.",
    },
    RequestEvent: {
      description:
        "`event: queued|processing` with `{request_id, status}`; the final event (`completed`, `failed`, `cancelled`) carries the Status body, then the stream closes. " +
        "With tokens=true: `event: token` with `{request_id, seq, text}` and `id: <seq>` (resume with Last-Event-ID). `event: error` carries an Error.",
      anyOf: [obj({ request_id: str, status: { enum: REQUEST_STATUSES } }), ref("Status"), obj({ request_id: str, seq: int, text: str }), ref("Error")],
    },
    Health: { type: "object", properties: { status: { enum: ["ok", "unavailable"] }, down: { type: "array", items: str } }, required: ["status"] },
  };
}
