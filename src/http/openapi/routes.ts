/**
 * What the OpenAPI document says about each route that the code does not say by itself: its
 * summary, its parameters, which answers it gives and which error codes it can answer. The bodies
 * and the error shapes are generated (requests.ts, answers.ts); the test checks that every route
 * the app registers is here and every code of errors.ts is answered somewhere.
 */
import type { ErrorCode } from "../../errors.js";
import type { JsonSchema } from "./requests.js";
import { ADMIN_PARAMETERS, ADMIN_ROUTE_DOCS } from "../../components/gateway/admin/docs.js";

export type Part = "gateway" | "api-service" | "shell";

export interface SuccessAnswer {
  description: string;
  /** Schema name in components.schemas by media type (`application/json`, `text/event-stream`, …); none: no body described. */
  content?: Record<string, string | JsonSchema>;
  /** Names in components.headers the answer carries. */
  headers?: string[];
}

export interface RouteDoc {
  method: "get" | "post" | "delete";
  /** OpenAPI form: `/api/v1/inference/{id}/cancel`. */
  path: string;
  part: Part;
  tag: string;
  summary: string;
  description?: string;
  /** none: public; bearer: the API key; bearerOrQuery: also `?access_token=` (EventSource cannot set headers). */
  auth: "none" | "bearer" | "bearerOrQuery";
  /** /v1 routes answer errors as OpenAIError and carry the x-ratelimit-* headers. */
  openAi?: boolean;
  /** Name of the body's schema in components.schemas (generated from the route's zod schema). */
  body?: string;
  /** The body is a multipart/form-data upload (POST /v1/files). */
  upload?: boolean;
  /** Names in components.parameters. */
  parameters?: string[];
  success: Record<number, SuccessAnswer>;
  /** The codes this route answers besides the ones every route (and every body, every key) can. */
  errors: ErrorCode[];
}

/** Any route: the HTTP shell's own refusals (server.ts, error-answers.ts). */
export const SHELL_ERRORS: ErrorCode[] = ["malformed_request", "uri_too_long", "headers_too_large", "request_timeout", "rate_limited", "service_unavailable", "internal_error"];
/** Any route that takes a body. */
export const BODY_ERRORS: ErrorCode[] = ["invalid_json", "invalid_body", "payload_too_large", "unsupported_media_type"];
/** Any route that reads the API key (a key store that cannot answer is service_unavailable, in SHELL_ERRORS). */
export const AUTH_ERRORS: ErrorCode[] = ["unauthorized", "forbidden"];
/** Admission of a new request (admission.ts). */
const SUBMIT_ERRORS: ErrorCode[] = ["invalid_idempotency_key", "idempotency_key_reused", "quota_exceeded", "queue_deadline_unmeetable", "invalid_parameter", "unknown_field", "missing_prompt", "prompt_too_long", "model_not_found"];
/** A route that holds the connection until the request is final answers with the request's own outcome. */
const OUTCOME_ERRORS: ErrorCode[] = [
  "request_cancelled",
  "generation_failed",
  "queue_full",
  "model_not_ready",
  "attempts_exhausted",
  "deadline_exceeded",
  "timeout",
  "missing_usage",
  "ml_http_error",
  "ml_timeout",
  "ml_unreachable",
  "ml_bad_response",
  "worker_error",
];

const json = (schema: string) => ({ "application/json": schema });
const v1Headers = ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"];
const held = (object: string, chunk: string): Record<number, SuccessAnswer> => ({
  200: {
    description: `The ${object} when the request is final; with \`stream: true\` the chunks as Server-Sent Events (\`data: <chunk>\`), then \`data: [DONE]\`. A client that disconnects cancels the request.`,
    content: { "application/json": object, "text/event-stream": chunk },
    headers: v1Headers,
  },
});

export const ROUTES: RouteDoc[] = [
  {
    method: "post", path: "/api/v1/inference", part: "gateway", tag: "Inference", auth: "bearer", body: "InferenceBody", parameters: ["IdempotencyKey"],
    summary: "Submit an inference request",
    description: "Admits the request (quota reserved, stored, queued) and answers at once; follow it on `events_url` or poll `status_url`.",
    success: {
      202: { description: "Admitted; `Location` is the status URL.", content: json("Accepted"), headers: ["Location"] },
      200: { description: "The same Idempotency-Key and body again: the request admitted before.", content: json("Accepted"), headers: ["Location"] },
    },
    errors: SUBMIT_ERRORS,
  },
  {
    method: "post", path: "/api/v1/inference/{id}/cancel", part: "gateway", tag: "Inference", auth: "bearer", parameters: ["RequestId"],
    summary: "Cancel a request", description: "Stops the request if it is not final; its reservation is released. A final request is answered as it is.",
    success: { 200: { description: "The request after the cancel.", content: json("CancelResult") } },
    errors: ["invalid_request_id", "request_not_found"],
  },
  {
    method: "get", path: "/v1/models", part: "gateway", tag: "OpenAI", auth: "bearer", openAi: true,
    summary: "List the models", success: { 200: { description: "The models served.", content: json("ModelList"), headers: v1Headers } }, errors: [],
  },
  {
    method: "get", path: "/v1/models/{model}", part: "gateway", tag: "OpenAI", auth: "bearer", openAi: true, parameters: ["ModelName"],
    summary: "Retrieve a model", success: { 200: { description: "The model.", content: json("Model"), headers: v1Headers } }, errors: ["model_not_found"],
  },
  {
    method: "post", path: "/v1/chat/completions", part: "gateway", tag: "OpenAI", auth: "bearer", openAi: true, body: "ChatCompletionBody", parameters: ["IdempotencyKey"],
    summary: "Create a chat completion", success: held("ChatCompletion", "ChatCompletionChunk"), errors: [...SUBMIT_ERRORS, ...OUTCOME_ERRORS],
  },
  {
    method: "post", path: "/v1/completions", part: "gateway", tag: "OpenAI", auth: "bearer", openAi: true, body: "CompletionBody", parameters: ["IdempotencyKey"],
    summary: "Create a completion", success: held("TextCompletion", "TextCompletionChunk"), errors: [...SUBMIT_ERRORS, ...OUTCOME_ERRORS],
  },
  {
    method: "post", path: "/v1/responses", part: "gateway", tag: "OpenAI", auth: "bearer", openAi: true, body: "ResponsesBody", parameters: ["IdempotencyKey"],
    summary: "Create a response",
    description: "Held until final; `background: true` answers `queued` at once; `stream: true` sends the events. Every response is stored.",
    success: { 200: { description: "The response, or its events as Server-Sent Events.", content: { "application/json": "Response", "text/event-stream": "ResponseStreamEvent" }, headers: v1Headers } },
    errors: [...SUBMIT_ERRORS, ...OUTCOME_ERRORS],
  },
  {
    method: "post", path: "/v1/files", part: "gateway", tag: "Batches", auth: "bearer", openAi: true, upload: true,
    summary: "Upload a batch input file (JSONL)", success: { 200: { description: "The file.", content: json("FileObject"), headers: v1Headers } },
    errors: ["invalid_parameter", "payload_too_large"],
  },
  {
    method: "get", path: "/v1/files", part: "gateway", tag: "Batches", auth: "bearer", openAi: true, parameters: ["PageAfter", "PageLimit"],
    summary: "Your files", success: { 200: { description: "A page of files.", content: json("List"), headers: v1Headers } }, errors: ["invalid_parameter"],
  },
  {
    method: "get", path: "/v1/files/{id}", part: "gateway", tag: "Batches", auth: "bearer", openAi: true, parameters: ["FileId"],
    summary: "A file", success: { 200: { description: "The file.", content: json("FileObject"), headers: v1Headers } }, errors: ["file_not_found"],
  },
  {
    method: "delete", path: "/v1/files/{id}", part: "gateway", tag: "Batches", auth: "bearer", openAi: true, parameters: ["FileId"],
    summary: "Delete a file", success: { 200: { description: "`{id, object: \"file\", deleted: true}`.", content: json("Deleted"), headers: v1Headers } }, errors: ["file_not_found"],
  },
  {
    method: "get", path: "/v1/files/{id}/content", part: "gateway", tag: "Batches", auth: "bearer", openAi: true, parameters: ["FileId"],
    summary: "A file's content (JSONL)", success: { 200: { description: "The lines.", content: { "application/jsonl": "JsonlText" }, headers: v1Headers } }, errors: ["file_not_found"],
  },
  {
    method: "post", path: "/v1/batches", part: "gateway", tag: "Batches", auth: "bearer", openAi: true, body: "BatchBody",
    summary: "Create a batch from an uploaded file", description: "Answered `validating` at once; the gateway then validates every line: `in_progress` when they are all good, else `failed` naming the lines (`errors.data[]`), nothing charged.",
    success: { 200: { description: "The batch.", content: json("Batch"), headers: v1Headers } },
    errors: ["invalid_parameter", "unknown_field", "file_not_found"],
  },
  {
    method: "get", path: "/v1/batches", part: "gateway", tag: "Batches", auth: "bearer", openAi: true, parameters: ["PageAfter", "PageLimit"],
    summary: "Your batches", success: { 200: { description: "A page of batches.", content: json("List"), headers: v1Headers } }, errors: ["invalid_parameter"],
  },
  {
    method: "get", path: "/v1/batches/{id}", part: "gateway", tag: "Batches", auth: "bearer", openAi: true, parameters: ["BatchId"],
    summary: "A batch, with request_counts and its output and error files", success: { 200: { description: "The batch.", content: json("Batch"), headers: v1Headers } }, errors: ["batch_not_found"],
  },
  {
    method: "post", path: "/v1/batches/{id}/cancel", part: "gateway", tag: "Batches", auth: "bearer", openAi: true, parameters: ["BatchId"],
    summary: "Cancel a batch (running lines finish; the rest never run)", success: { 200: { description: "The batch.", content: json("Batch"), headers: v1Headers } }, errors: ["batch_not_found"],
  },
  {
    method: "post", path: "/api/v1/webhooks", part: "gateway", tag: "Webhooks", auth: "bearer", body: "WebhookBody",
    summary: "Register a webhook endpoint",
    description: "Events (see the WebhookEvent schema) are POSTed to `url`, signed with the secret answered here once; retried with back-off for WEBHOOK_MAX_ATTEMPT_AGE_MS, then the endpoint is disabled.",
    success: { 201: { description: "The endpoint and its signing secret.", content: json("WebhookEndpointCreated") } },
    errors: ["invalid_parameter", "unknown_field", "invalid_webhook_url", "webhook_address_refused", "unknown_webhook_event", "webhook_limit_reached"],
  },
  {
    method: "get", path: "/api/v1/webhooks", part: "gateway", tag: "Webhooks", auth: "bearer",
    summary: "Your webhook endpoints", success: { 200: { description: "Each endpoint: enabled or disabled (and why), its last error and pending deliveries.", content: json("WebhookEndpointList") } }, errors: [],
  },
  {
    method: "delete", path: "/api/v1/webhooks/{id}", part: "gateway", tag: "Webhooks", auth: "bearer", parameters: ["WebhookId"],
    summary: "Delete a webhook endpoint (its undelivered events with it)", success: { 200: { description: "`{id, object, deleted: true}`.", content: json("Deleted") } }, errors: ["webhook_not_found"],
  },
  {
    method: "get", path: "/v1/responses/{id}", part: "gateway", tag: "OpenAI", auth: "bearer", openAi: true, parameters: ["ResponseId", "ResponseStream", "StartingAfter"],
    summary: "Retrieve a response",
    description: "With `stream=true` (a response created with stream or background): its events after `starting_after`, the stored ones first, then live.",
    success: { 200: { description: "The response, or its events.", content: { "application/json": "Response", "text/event-stream": "ResponseStreamEvent" }, headers: v1Headers } },
    errors: ["request_not_found", "invalid_parameter"],
  },
  {
    method: "post", path: "/v1/responses/{id}/cancel", part: "gateway", tag: "OpenAI", auth: "bearer", openAi: true, parameters: ["ResponseId"],
    summary: "Cancel a response", success: { 200: { description: "The response after the cancel.", content: json("Response"), headers: v1Headers } },
    errors: ["request_not_found"],
  },
  {
    method: "get", path: "/api/v1/status/{id}", part: "api-service", tag: "Requests", auth: "bearer", parameters: ["RequestId"],
    summary: "Status and result of a request", success: { 200: { description: "The request now.", content: json("Status") } },
    errors: ["invalid_request_id", "request_not_found"],
  },
  {
    method: "get", path: "/api/v1/requests", part: "api-service", tag: "Requests", auth: "bearer", parameters: ["ListStatus", "ListLimit", "ListCursor"],
    summary: "The caller's own requests, newest first, a page at a time",
    success: { 200: { description: "A page: `data` (status bodies without `result`), `has_more`, `next_cursor`.", content: json("RequestList") } },
    errors: ["invalid_parameter"],
  },
  {
    method: "get", path: "/api/v1/queue", part: "gateway", tag: "Requests", auth: "bearer",
    summary: "The queue: backlog by priority, throughput, and the caller's place",
    description: "Interactive requests (queued or running) go ahead of batch lines not yet dispatched; the estimate divides the backlog's estimated tokens by the estimated tokens finished per second lately.",
    success: { 200: { description: "The backlog, the throughput and the caller's own position.", content: json("Queue") } },
    errors: [],
  },
  {
    method: "get", path: "/api/v1/quota", part: "api-service", tag: "Requests", auth: "bearer",
    summary: "The caller's quota", success: { 200: { description: "Limits, usage and when the windows reset.", content: json("Quota") } }, errors: [],
  },
  {
    method: "get", path: "/events/{id}", part: "api-service", tag: "Requests", auth: "bearerOrQuery", parameters: ["RequestId", "AccessToken", "Tokens", "LastEventId"],
    summary: "Follow a request (Server-Sent Events)",
    description: "Status events until the final one (also for a request that finished before the client connected); heartbeats as comments.",
    success: { 200: { description: "The event stream.", content: { "text/event-stream": "RequestEvent" } } },
    errors: ["invalid_request_id", "request_not_found"],
  },
  ...ADMIN_ROUTE_DOCS,
  {
    method: "get", path: "/health", part: "shell", tag: "Operations", auth: "none",
    summary: "Readiness", description: "Ready when every dependency answers; 503 names the ones down.",
    success: { 200: { description: "Ready.", content: json("Health") }, 503: { description: "Not ready; `down` names the dependencies.", content: json("Health"), headers: ["Retry-After"] } },
    errors: [],
  },
  {
    method: "get", path: "/livez", part: "shell", tag: "Operations", auth: "none",
    summary: "Liveness", success: { 200: { description: "The process answers.", content: json("Health") } }, errors: [],
  },
  {
    method: "get", path: "/metrics", part: "shell", tag: "Operations", auth: "none",
    summary: "Prometheus metrics", description: "Served on METRICS_PORT instead when it is set.",
    success: { 200: { description: "Prometheus text format.", content: { "text/plain": { type: "string" } } } }, errors: [],
  },
  {
    method: "get", path: "/openapi.json", part: "shell", tag: "Operations", auth: "none",
    summary: "This document", success: { 200: { description: "OpenAPI 3.1.", content: { "application/json": { type: "object" } } } }, errors: [],
  },
  {
    method: "get", path: "/docs", part: "shell", tag: "Operations", auth: "none",
    summary: "The API reference page", description: "Self-contained HTML (no external resources) that renders this document.",
    success: { 200: { description: "HTML.", content: { "text/html": { type: "string" } } } }, errors: [],
  },
];

/** components.parameters: every parameter a route names. */
export const PARAMETERS: Record<string, JsonSchema> = {
  IdempotencyKey: {
    name: "Idempotency-Key", in: "header", required: false,
    description: "Sending the same key (within 24 h) with the same body returns the request admitted first instead of admitting another.",
    schema: { type: "string", minLength: 1, maxLength: 255, pattern: "^[\\x21-\\x7e]+$" },
  },
  RequestId: { name: "id", in: "path", required: true, description: "The request id (request_id).", schema: { type: "string", format: "uuid" } },
  ResponseId: { name: "id", in: "path", required: true, description: "The response id (`resp_…`).", schema: { type: "string", pattern: "^resp_[0-9a-fA-F]{32}$" } },
  ModelName: { name: "model", in: "path", required: true, schema: { type: "string" } },
  FileId: { name: "id", in: "path", required: true, description: "The file id (`file-…`).", schema: { type: "string" } },
  WebhookId: { name: "id", in: "path", required: true, description: "The endpoint id (`whe_…`).", schema: { type: "string" } },
  BatchId: { name: "id", in: "path", required: true, description: "The batch id (`batch_…`).", schema: { type: "string" } },
  PageAfter: { name: "after", in: "query", required: false, description: "The id of the last item of the page before.", schema: { type: "string" } },
  PageLimit: { name: "limit", in: "query", required: false, description: "Items per page, 1–100 (20).", schema: { type: "integer", minimum: 1, maximum: 100 } },
  ListStatus: { name: "status", in: "query", required: false, description: "Only requests in this status.", schema: { enum: ["queued", "processing", "completed", "failed", "cancelled"] } },
  ListLimit: { name: "limit", in: "query", required: false, description: "Requests per page, 1–100 (20).", schema: { type: "integer", minimum: 1, maximum: 100 } },
  ListCursor: { name: "cursor", in: "query", required: false, description: "The `next_cursor` of the page before, as it came.", schema: { type: "string" } },
  ResponseStream: { name: "stream", in: "query", required: false, description: "true: the events as Server-Sent Events.", schema: { enum: ["true", "false"] } },
  StartingAfter: { name: "starting_after", in: "query", required: false, description: "With stream=true: only the events whose sequence_number is greater.", schema: { type: "integer", minimum: -1 } },
  AccessToken: { name: "access_token", in: "query", required: false, description: "The API key, for clients (EventSource) that cannot send Authorization.", schema: { type: "string" } },
  Tokens: { name: "tokens", in: "query", required: false, description: "true: also the token deltas, for a request submitted with stream: true.", schema: { enum: ["true", "false"] } },
  LastEventId: { name: "Last-Event-ID", in: "header", required: false, description: "With tokens=true: resume after this token seq.", schema: { type: "integer", minimum: 0 } },
  ...ADMIN_PARAMETERS,
};
