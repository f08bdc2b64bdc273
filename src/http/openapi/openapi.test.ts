/**
 * The OpenAPI document against the code it describes: its structure (OpenAPI 3.1, every $ref
 * resolves, every embedded schema compiles with ajv 2020), the error table (every code of
 * errors.ts, each with its doc, answered by some route under its status), the request schemas
 * (they accept and refuse the same bodies as the routes' zod schemas) and the hand-written answer
 * schemas (they accept what chat-shapes.ts and responses-shapes.ts really produce). Pure.
 * openapi-app.test.ts checks the document against the routes a real app registers.
 *
 * Every assert.ok has a message: without one, node builds it by reading the source, which hangs
 * under tsx (seen when a bound was dropped on purpose).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import type { z } from "zod";
import { AppError, ERROR_CODES, ERRORS, openAiErrorBody } from "../../errors.js";
import { parseInferenceBody } from "../../domain/inference-request.js";
import { chatSchema, completionSchema } from "../../components/gateway/openai/bodies.js";
import { responsesBodySchema } from "../../components/gateway/openai/responses-body.js";
import { chatChunksFor, chatCompletionBody, completionBody, completionChunksFor } from "../../components/gateway/openai/chat-shapes.js";
import { replayEvents, responseObject, type ResponseFacts } from "../../components/gateway/openai/responses-shapes.js";
import { statusBody } from "../../components/api-service/index.js";
import { endpointList } from "../../components/webhooks/endpoints.js";
import { WEBHOOK_EVENT_TYPES } from "../../domain/webhooks.js";
import type { RequestView, StreamEvent } from "../../domain/ports.js";
import { openApiDocument, type OpenApiDocument } from "./index.js";
import { docsPage } from "./docs-page.js";

const LIMITS = { maxLengthLimit: 500, maxPromptChars: 100, bodyLimitBytes: 65536, defaultModel: "default" };
const doc = openApiDocument({ component: "all", limits: LIMITS });
const schemas = (doc.components as { schemas: Record<string, object> }).schemas;

/** Validates values against the document's schemas by name (refs between components resolved by ajv). */
function validatorFor(document: OpenApiDocument): (name: string, value: unknown) => boolean {
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, formats: { uuid: /^[0-9a-f-]{36}$/i, "date-time": true } });
  ajv.addKeyword("x-errors");
  const all = (document.components as { schemas: Record<string, object> }).schemas;
  for (const [name, schema] of Object.entries(all)) {
    ajv.addSchema(JSON.parse(JSON.stringify(schema).replaceAll('"#/components/schemas/', '"urn:schema:')), `urn:schema:${name}`);
  }
  return (name, value) => ajv.validate(`urn:schema:${name}`, value) as boolean;
}
const valid = validatorFor(doc);

const operations = () =>
  Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op: op as Record<string, any> })));

describe("the OpenAPI document: structure", () => {
  it("has OpenAPI 3.1's required fields, and every operation an id, a 2xx answer and a description per answer", () => {
    assert.match(doc.openapi, /^3\.1\.\d+$/);
    const info = doc.info as { title: unknown; version: unknown };
    assert.equal(typeof info.title, "string");
    assert.equal(typeof info.version, "string");
    const ids = new Set<string>();
    for (const { path, method, op } of operations()) {
      assert.ok(path.startsWith("/"), path);
      assert.ok(["get", "post", "delete"].includes(method), `${method}: a method the routes use`);
      assert.ok(!ids.has(op.operationId), `duplicate operationId ${op.operationId}`);
      ids.add(op.operationId);
      assert.ok(Object.keys(op.responses).some((s) => /^2\d\d$/.test(s)), `${method} ${path} has no 2xx answer`);
      for (const [status, answer] of Object.entries(op.responses as Record<string, { description?: string }>)) {
        assert.equal(typeof answer.description, "string", `${method} ${path} ${status}`);
      }
      // Every {name} of the path is a required path parameter.
      const names = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      const declared = (op.parameters ?? []).map((p: { $ref: string }) => resolve(p.$ref) as { name: string; in: string; required: boolean });
      for (const name of names) assert.ok(declared.some((p: any) => p.name === name && p.in === "path" && p.required), `${path}: {${name}}`);
      for (const s of op.security) for (const scheme of Object.keys(s)) assert.ok(resolve(`#/components/securitySchemes/${scheme}`), `security scheme ${scheme}`);
    }
  });

  it("every $ref resolves", () => {
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(refs.length > 50, "refs.length > 50");
    for (const ref of new Set(refs)) assert.ok(resolve(ref) !== undefined, ref);
  });

  it("every schema compiles with ajv (JSON Schema 2020-12), parameters' too", () => {
    for (const name of Object.keys(schemas)) assert.equal(typeof valid(name, {}), "boolean");
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, formats: { uuid: true } });
    for (const p of Object.values((doc.components as { parameters: Record<string, { schema: object }> }).parameters)) ajv.compile(p.schema);
  });

  it("the bearer key is the security scheme; submit routes take Idempotency-Key; /v1 answers carry the rate-limit headers", () => {
    assert.deepEqual((doc.components as any).securitySchemes.bearerAuth, { ...(doc.components as any).securitySchemes.bearerAuth, type: "http", scheme: "bearer" });
    for (const { path, method, op } of operations()) {
      // Every submit route (the batch, webhook and admin routes create files, batches, endpoints and users, not requests).
      if (op.requestBody && !/^\/v1\/(files|batches)$|^\/api\/v1\/webhooks$/.test(path) && !path.startsWith("/api/v1/admin/")) assert.ok(op.parameters.some((p: { $ref: string }) => p.$ref.endsWith("/IdempotencyKey")), `${method} ${path}`);
      if (!path.startsWith("/v1/")) continue;
      for (const [status, answer] of Object.entries(op.responses as Record<string, { headers: object }>)) {
        assert.ok("x-ratelimit-remaining-tokens" in answer.headers, `${method} ${path} ${status}`);
        if (status === "429" || status === "503") assert.ok("Retry-After" in answer.headers, "'Retry-After' in answer.headers");
      }
    }
  });
});

describe("the OpenAPI document: errors", () => {
  const codeSchema = schemas.ErrorCode as { enum: string[]; "x-errors": Record<string, { status: number; doc: string }> };

  it("the ErrorCode enum is every code of errors.ts, each with its status and doc", () => {
    assert.deepEqual(codeSchema.enum, ERROR_CODES);
    for (const code of ERROR_CODES) assert.deepEqual(codeSchema["x-errors"][code], { status: ERRORS[code].status, retryable: ERRORS[code].retryable, doc: ERRORS[code].doc });
  });

  it("every code is answered by some route (but those no route answers, named here), under its own status and shape", () => {
    const answered = new Set<string>();
    for (const { path, method, op } of operations()) {
      for (const [status, answer] of Object.entries(op.responses as Record<string, any>)) {
        for (const code of answer["x-error-codes"] ?? []) {
          answered.add(code);
          assert.equal(String(ERRORS[code as keyof typeof ERRORS].status), status, `${method} ${path}: ${code}`);
          assert.ok(answer.description.includes(ERRORS[code as keyof typeof ERRORS].doc), "answer.description.includes(ERRORS[code as keyof typeof ERRORS].doc)");
        }
        if (answer["x-error-codes"]) {
          const shape = path.startsWith("/v1/") ? "OpenAIError" : "Error";
          assert.equal(answer.content["application/json"].schema.$ref, `#/components/schemas/${shape}`, `${method} ${path} ${status}`);
        }
      }
    }
    // Not a route's answer: no such route (404, 405 on any path, said in info.description) and the CLI's config error.
    const elsewhere = ["not_found", "method_not_allowed", "config_invalid"];
    assert.deepEqual(ERROR_CODES.filter((c) => !answered.has(c) && !elsewhere.includes(c)), []);
  });

  it("the error shapes accept the errors the platform sends", () => {
    const error = new AppError("invalid_parameter", "temperature: must be in [0, 2], got 3", { details: { field: "temperature" } });
    assert.ok(valid("Error", error.toJSON()), "valid('Error', error.toJSON())");
    assert.ok(valid("OpenAIError", openAiErrorBody(error)), "valid('OpenAIError', openAiErrorBody(error))");
    assert.ok(!valid("Error", { error: { code: "no_such_code", message: "x" } }), "!valid('Error', { error: { code: 'no_such_code', message: 'x' } })");
  });
});

/** Each case: a body, and whether the route's own schema takes it; the document must agree. */
type Case = [string, unknown, boolean];
const chatOk = { model: "default", messages: [{ role: "user", content: "hi" }] };
const BODY_CASES: Record<string, { schema: string; parse: (body: unknown) => boolean; cases: Case[] }> = {
  "POST /api/v1/inference": {
    schema: "InferenceBody",
    parse: (body) => {
      try {
        parseInferenceBody(body, { maxPromptChars: LIMITS.maxPromptChars, maxLength: LIMITS.maxLengthLimit, models: ["default"], defaultModel: "default" });
        return true;
      } catch (error) {
        return !(error instanceof AppError && error.status === 400);
      }
    },
    cases: [
      ["a prompt alone", { prompt: "hi" }, true],
      ["every parameter", { prompt: "hi", model: "default", stream: true, max_length: 500, temperature: 0, top_p: 1, top_k: 0, repetition_penalty: 0.5, num_return_sequences: 5, stop: ["a"], seed: 7 }, true],
      ["temperature 3", { prompt: "hi", temperature: 3 }, false],
      ["top_p 0 (the range is (0, 1])", { prompt: "hi", top_p: 0 }, false],
      ["max_length over MAX_LENGTH_LIMIT", { prompt: "hi", max_length: 501 }, false],
      ["max_length 1.5", { prompt: "hi", max_length: 1.5 }, false],
      ["five stop sequences", { prompt: "hi", stop: ["a", "b", "c", "d", "e"] }, false],
      ["one stop string", { prompt: "hi", stop: "\n" }, true],
      ["an empty stop string", { prompt: "hi", stop: "" }, false],
      ["no prompt", {}, false],
      ["a blank prompt", { prompt: "   " }, false],
      ["a prompt over MAX_PROMPT_CHARS", { prompt: "x".repeat(101) }, false],
      ["an unknown field", { prompt: "hi", user_id: "u" }, false],
      ["stream as a string", { prompt: "hi", stream: "yes" }, false],
      ["not an object", ["hi"], false],
    ],
  },
  "POST /v1/chat/completions": {
    schema: "ChatCompletionBody",
    parse: zodParse(chatSchema({ maxLength: 500, maxPromptChars: 100, models: ["default"], defaultModel: "default" })),
    cases: [
      ["a valid chat body", chatOk, true],
      ["OpenAI's nulls", { ...chatOk, temperature: null, max_tokens: null, stop: null, stream_options: null, presence_penalty: null }, true],
      ["content parts", { model: "m", messages: [{ role: "system", content: [{ type: "text", text: "be brief" }] }] }, true],
      ["temperature 3", { ...chatOk, temperature: 3 }, false],
      ["no messages", { ...chatOk, messages: [] }, false],
      ["a tool message", { ...chatOk, messages: [{ role: "tool", content: "x" }] }, false],
      ["presence_penalty 0 (neutral)", { ...chatOk, presence_penalty: 0 }, true],
      ["presence_penalty 0.5", { ...chatOk, presence_penalty: 0.5 }, false],
      ["logit_bias {}", { ...chatOk, logit_bias: {} }, true],
      ["a logit_bias", { ...chatOk, logit_bias: { "50256": -100 } }, false],
      ["n 6", { ...chatOk, n: 6 }, false],
      ["tools (unknown)", { ...chatOk, tools: [] }, false],
      ["no model", { messages: chatOk.messages }, false],
    ],
  },
  "POST /v1/completions": {
    schema: "CompletionBody",
    parse: zodParse(completionSchema({ maxLength: 500, maxPromptChars: 100, models: ["default"], defaultModel: "default" })),
    cases: [
      ["a prompt", { model: "default", prompt: "Once" }, true],
      ["a list of one prompt", { model: "default", prompt: ["Once"], best_of: 1, echo: false }, true],
      ["two prompts", { model: "default", prompt: ["a", "b"] }, false],
      ["echo", { model: "default", prompt: "a", echo: true }, false],
      ["temperature -1", { model: "default", prompt: "a", temperature: -1 }, false],
      ["max_tokens 0", { model: "default", prompt: "a", max_tokens: 0 }, false],
    ],
  },
  "POST /v1/responses": {
    schema: "ResponsesBody",
    parse: zodParse(responsesBodySchema({ maxLength: 500 })),
    cases: [
      ["an input string", { input: "hi" }, true],
      ["messages with parts", { model: "default", input: [{ role: "user", content: [{ type: "input_text", text: "hi" }] }], store: true, metadata: { a: "b" } }, true],
      ["an empty input", { input: "" }, false],
      ["store false", { input: "hi", store: false }, false],
      ["17 metadata keys", { input: "hi", metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"])) }, false],
      ["a metadata value over 512", { input: "hi", metadata: { a: "x".repeat(513) } }, false],
      ["a function call item", { input: [{ type: "function_call", role: "user", content: "x" }] }, false],
      ["temperature 3", { input: "hi", temperature: 3 }, false],
      ["max_output_tokens 0", { input: "hi", max_output_tokens: 0 }, false],
      ["tools (unknown)", { input: "hi", tools: [] }, false],
    ],
  },
};

function zodParse(schema: z.ZodType): (body: unknown) => boolean {
  return (body) => schema.safeParse(body).success;
}

describe("the request schemas agree with the routes' own validation", () => {
  for (const [route, { schema, parse, cases }] of Object.entries(BODY_CASES)) {
    it(`${route}: ${schema}`, () => {
      const [method, path] = route.split(" ");
      const op = doc.paths[path!]![method!.toLowerCase()] as any;
      assert.equal(op.requestBody.content["application/json"].schema.$ref, `#/components/schemas/${schema}`);
      for (const [name, body, accepted] of cases) {
        assert.equal(parse(body), accepted, `${route} ${name}: the route's schema`);
        assert.equal(valid(schema, body), accepted, `${route} ${name}: the document's schema`);
      }
    });
  }
  it("bounds that are settings come from the limits given", () => {
    const other = validatorFor(openApiDocument({ component: "gateway", limits: { ...LIMITS, maxLengthLimit: 1000 } }));
    assert.ok(other("InferenceBody", { prompt: "hi", max_length: 1000 }), "other('InferenceBody', { prompt: 'hi', max_length: 1000 })");
    assert.ok(!valid("InferenceBody", { prompt: "hi", max_length: 1000 }), "!valid('InferenceBody', { prompt: 'hi', max_length: 1000 })");
  });
});

describe("the answer schemas accept what the routes send", () => {
  const requestId = "0b7f3c2e-1d2a-4c5b-9e8f-7a6b5c4d3e2f";
  const createdAt = new Date("2026-11-25T10:00:00Z");
  const usage = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 };
  const stream: StreamEvent[] = [
    { seq: 1, type: "delta", text: "Hel" },
    { seq: 2, type: "delta", text: "lo" },
    { seq: 3, type: "final", status: "completed", usage, finishReason: "length", error: null },
  ];
  const answer = { requestId, createdAt, model: "default", text: ["Hello"], finishReason: ["stop" as const], usage };

  it("chat.completion, text_completion and their chunks", () => {
    assert.ok(valid("ChatCompletion", chatCompletionBody(answer)), "valid('ChatCompletion', chatCompletionBody(answer))");
    assert.ok(valid("TextCompletion", completionBody({ ...answer, usage: null })), "valid('TextCompletion', completionBody({ ...answer, usage: null }))");
    assert.ok(!valid("ChatCompletion", completionBody(answer)), "!valid('ChatCompletion', completionBody(answer))");
    const ctx = { requestId, createdAt, model: "default", includeUsage: true };
    for (const event of stream) {
      for (const chunk of chatChunksFor(ctx, event)) assert.ok(valid("ChatCompletionChunk", chunk), JSON.stringify(chunk));
      for (const chunk of completionChunksFor(ctx, event)) assert.ok(valid("TextCompletionChunk", chunk), JSON.stringify(chunk));
    }
  });

  it("the response object and every response event", () => {
    const facts: ResponseFacts = { requestId, createdAt, model: "default", instructions: null, metadata: { a: "b" }, maxOutputTokens: 10, temperature: null, topP: null, background: true };
    for (const status of ["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"] as const) {
      const error = status === "failed" ? { code: "generation_failed", message: "boom" } : null;
      const body = responseObject(facts, { status, text: status === "queued" ? null : "Hi", usage: status === "queued" ? null : usage, error, completedAt: createdAt });
      assert.ok(valid("Response", body), `${status}: ${JSON.stringify(body)}`);
    }
    const { events } = replayEvents(facts, stream);
    assert.equal(events.length, 10);
    for (const event of events) assert.ok(valid("ResponseStreamEvent", event), event.type);
  });

  it("the status answer", () => {
    const view = { requestId, status: "completed", model: "default", createdAt, startedAt: createdAt, completedAt: createdAt, estimatedTokens: 9, outputText: "Hi", outputs: null, usage, error: null };
    assert.ok(valid("Status", statusBody(view as unknown as RequestView)), "valid('Status', statusBody(view as unknown as RequestView))");
  });

  it("the webhook endpoint list, with every event type there is", () => {
    const at = createdAt;
    const endpoint = { endpointId: "whe_0123456789abcdef01234567", userId: "u", url: "https://example.com/h", events: ["batch.completed"], createdAt: at, disabledAt: at, disabledReason: "gave up", lastError: "answered 500", lastErrorAt: at, lastDeliveredAt: null, pending: 0 };
    const list = endpointList([endpoint, { ...endpoint, events: [], disabledAt: null, disabledReason: null }]);
    assert.ok(valid("WebhookEndpointList", list), JSON.stringify(list));
    assert.deepEqual(list.event_types, [...WEBHOOK_EVENT_TYPES]);
    assert.ok(!valid("WebhookEndpointList", { ...list, event_types: ["chat.completed"] }), "an event type that does not exist passed");
  });
});

describe("GET /docs", () => {
  const { html, csp } = docsPage();
  it("references no other host: no http(s) URL, no external script, style, font or image", () => {
    assert.equal(html.match(/https?:\/\//gi), null);
    assert.doesNotMatch(html, /<(script|link|img|iframe)[^>]*\s(src|href)=/i);
    assert.doesNotMatch(html, /@import|url\(/i);
  });
  it("its CSP forbids every external source and allows only its own inline code", () => {
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/=]+'(;|$)/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /https?:|\*|unsafe-inline|unsafe-eval/);
  });
  it("its inline script is valid JavaScript (compiled here, not run)", () => {
    const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1] ?? "";
    assert.ok(script.length > 1000, "the page has its script inline");
    assert.doesNotThrow(() => new Function(script));
  });
  it("is accessible in structure: a language, a main landmark, headings, a labelled filter", () => {
    assert.match(html, /<html lang="en">/);
    assert.match(html, /<main id="main"/);
    assert.match(html, /<h1/);
    assert.match(html, /<label for="filter">/);
    assert.match(html, /<nav aria-label="Routes">/);
  });
});

function resolve(ref: string): unknown {
  return ref
    .replace(/^#\//, "")
    .split("/")
    .reduce<any>((node, key) => node?.[key.replaceAll("~1", "/").replaceAll("~0", "~")], doc);
}
