/**
 * The OpenAPI 3.1 document of a component: the route table (routes.ts) with the request bodies
 * generated from the routes' zod schemas (requests.ts) and the answers and error shapes of
 * answers.ts. Built once at start-up (it depends only on settings), served by registerApiDocs.
 */
import { ERRORS, type ErrorCode } from "../../errors.js";
import { answerSchemas } from "./answers.js";
import { bodySchemas, jsonSchemaOf, type DocLimits, type JsonSchema } from "./requests.js";
import { AUTH_ERRORS, BODY_ERRORS, PARAMETERS, ROUTES, SHELL_ERRORS, type Part, type RouteDoc } from "./routes.js";

export interface OpenApiOptions {
  /** Which routes the serving process has: `all` serves both the gateway's and the API service's. */
  component: "gateway" | "api-service" | "all";
  limits: DocLimits;
  /** info.version (the package's version, say). */
  version?: string;
}

export type OpenApiDocument = JsonSchema & { openapi: string; paths: Record<string, Record<string, JsonSchema>> };

/** The body schemas' names in components.schemas, by route. */
const BODY_ROUTES: Record<string, string> = {
  InferenceBody: "post /api/v1/inference",
  ChatCompletionBody: "post /v1/chat/completions",
  CompletionBody: "post /v1/completions",
  ResponsesBody: "post /v1/responses",
  BatchBody: "post /v1/batches",
  AdminUserBody: "post /api/v1/admin/users",
  WebhookBody: "post /api/v1/webhooks",
};

/** POST /v1/files: the one upload, as OpenAI takes it. */
const MULTIPART_UPLOAD: JsonSchema = {
  type: "object",
  required: ["purpose", "file"],
  properties: {
    purpose: { const: "batch" },
    file: { type: "string", contentMediaType: "application/jsonl", description: "JSONL lines {custom_id, method, url, body}." },
    "expires_after[anchor]": { const: "created_at", description: "With expires_after[seconds]: the file expires that long after it was created." },
    "expires_after[seconds]": { type: "integer", minimum: 3600, maximum: 2592000 },
  },
};

const HEADERS: Record<string, JsonSchema> = {
  "Retry-After": { description: "Seconds to wait before retrying.", schema: { type: "integer", minimum: 1 } },
  Location: { description: "The status URL of the request.", schema: { type: "string" } },
  ...Object.fromEntries(
    ["requests", "tokens"].flatMap((what) => [
      [`x-ratelimit-limit-${what}`, { description: `The tightest quota window's limit on ${what} (absent without a limit).`, schema: { type: "integer" } }],
      [`x-ratelimit-remaining-${what}`, { description: `What is left of it.`, schema: { type: "integer" } }],
      [`x-ratelimit-reset-${what}`, { description: `When it resets, as OpenAI writes durations (\`6m0s\`).`, schema: { type: "string" } }],
    ]),
  ),
};

const headerRefs = (names: readonly string[]) => Object.fromEntries(names.map((n) => [n, { $ref: `#/components/headers/${n}` }]));
const RATE_HEADERS = Object.keys(HEADERS).filter((n) => n.startsWith("x-ratelimit-"));

/** Every code a route can answer: its own, plus the shell's, the body's and the key's where they apply. */
export function routeErrorCodes(route: RouteDoc): ErrorCode[] {
  const codes = [...SHELL_ERRORS, ...(route.body ? BODY_ERRORS : []), ...(route.auth === "none" ? [] : AUTH_ERRORS), ...route.errors];
  return [...new Set(codes)];
}

/** The error answers of a route, one per status, each naming its codes (and their docs) and the one error shape. */
function errorAnswers(route: RouteDoc): Record<string, JsonSchema> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of routeErrorCodes(route)) byStatus.set(ERRORS[code].status, [...(byStatus.get(ERRORS[code].status) ?? []), code]);
  const answers: Record<string, JsonSchema> = {};
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    if (route.success[status]) continue; // /health's own 503 says it already
    const retry = status === 429 || status === 503 ? ["Retry-After"] : [];
    answers[String(status)] = {
      description: codes.map((c) => `\`${c}\`: ${ERRORS[c].doc}`).join("\n"),
      headers: headerRefs([...retry, ...(route.openAi ? RATE_HEADERS : [])]),
      content: { "application/json": { schema: { $ref: `#/components/schemas/${route.openAi ? "OpenAIError" : "Error"}` } } },
      "x-error-codes": codes,
    };
  }
  return answers;
}

function operation(route: RouteDoc): JsonSchema {
  const success = Object.fromEntries(
    Object.entries(route.success).map(([status, answer]) => [
      status,
      {
        description: answer.description,
        ...(answer.headers ? { headers: headerRefs(answer.headers) } : {}),
        ...(answer.content
          ? {
              content: Object.fromEntries(
                Object.entries(answer.content).map(([type, schema]) => [type, { schema: typeof schema === "string" ? { $ref: `#/components/schemas/${schema}` } : schema }]),
              ),
            }
          : {}),
      },
    ]),
  );
  const security = route.auth === "none" ? [] : route.auth === "bearer" ? [{ bearerAuth: [] }] : [{ bearerAuth: [] }, { accessToken: [] }];
  return {
    operationId: `${route.method}${route.path.replace(/[{}]/g, "").replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? "").toUpperCase())}`,
    tags: [route.tag],
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    security,
    ...(route.parameters ? { parameters: route.parameters.map((p) => ({ $ref: `#/components/parameters/${p}` })) } : {}),
    ...(route.body ? { requestBody: { required: true, content: { "application/json": { schema: { $ref: `#/components/schemas/${route.body}` } } } } } : {}),
    ...(route.upload ? { requestBody: { required: true, content: { "multipart/form-data": { schema: MULTIPART_UPLOAD } } } } : {}),
    responses: { ...success, ...errorAnswers(route) },
  };
}

const PARTS: Record<OpenApiOptions["component"], readonly Part[]> = {
  gateway: ["gateway", "shell"],
  "api-service": ["api-service", "shell"],
  all: ["gateway", "api-service", "shell"],
};

export function openApiDocument(options: OpenApiOptions): OpenApiDocument {
  const routes = ROUTES.filter((r) => PARTS[options.component].includes(r.part));
  const paths: OpenApiDocument["paths"] = {};
  for (const route of routes) (paths[route.path] ??= {})[route.method] = operation(route);
  const bodies = bodySchemas(options.limits);
  const bodyComponents: Record<string, JsonSchema> = {};
  for (const [name, key] of Object.entries(BODY_ROUTES)) {
    if (routes.some((r) => r.body === name)) bodyComponents[name] = jsonSchemaOf(bodies[key]!);
  }
  const usedParameters = new Set(routes.flatMap((r) => r.parameters ?? []));
  const limits = options.limits;
  return {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: {
      title: `ml-inference ${options.component === "all" ? "API" : options.component}`,
      version: options.version ?? "0.1.0",
      description:
        "Asynchronous, quota-aware inference. Every error answer carries a stable `code` (the ErrorCode table); routes under /v1 answer errors in OpenAI's shape. " +
        `Any route may also answer \`not_found\` (no such route) or \`method_not_allowed\` (with \`Allow\`). Bodies: at most ${limits.bodyLimitBytes ?? "BODY_LIMIT_BYTES"} bytes; ` +
        `prompts: at most ${limits.maxPromptChars} characters; max_length: at most ${limits.maxLengthLimit}.`,
    },
    servers: [{ url: "/" }],
    tags: [...new Set(routes.map((r) => r.tag))].map((name) => ({ name })),
    security: [{ bearerAuth: [] }],
    paths,
    components: {
      securitySchemes: {
        bearerAuth: { type: "http", scheme: "bearer", description: "`Authorization: Bearer <api key>` (with ANONYMOUS_ACCESS, requests without a key are the anonymous user's)." },
        ...(usedParameters.has("AccessToken") ? { accessToken: { type: "apiKey", in: "query", name: "access_token", description: "The API key as a query parameter (EventSource)." } } : {}),
      },
      parameters: Object.fromEntries(Object.entries(PARAMETERS).filter(([name]) => usedParameters.has(name))),
      headers: HEADERS,
      schemas: { ...answerSchemas(), ...bodyComponents },
    },
  };
}
