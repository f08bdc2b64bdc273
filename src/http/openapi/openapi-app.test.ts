/**
 * The document against a real app: the HTTP shell (createHttpApp) with the gateway's and the API
 * service's routes registered as assemble() registers them, and registerApiDocs. Every route the
 * app has is documented with its method, body and answers (and every documented route exists);
 * the error answers the routes really give are documented under their status, in the documented
 * shape. The stores are stubs that fail: only what is answered before admission is exercised.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import type { FastifyInstance } from "fastify";
import { AppError } from "../../errors.js";
import { loadConfig } from "../../config.js";
import { silentLogger } from "../../observability/logger.js";
import { createRegistry } from "../../observability/metrics.js";
import { createGateway } from "../../components/gateway/index.js";
import { createApiService } from "../../components/api-service/index.js";
import { createHttpApp } from "../server.js";
import { openApiDocument, registerApiDocs, type OpenApiDocument } from "./index.js";

const config = loadConfig({ HOST: "127.0.0.1", PORT: "0", ML_SERVICE_URL: "http://127.0.0.1:9", MAX_LENGTH_LIMIT: "300" }, "all");
const document = openApiDocument({
  component: "all",
  limits: { maxLengthLimit: config.gateway.maxLengthLimit, maxPromptChars: config.gateway.maxPromptChars, bodyLimitBytes: config.gateway.bodyLimitBytes },
});
/** Routes the app has that the document leaves out on purpose: none but the HEAD twins fastify adds to every GET. */
const UNDOCUMENTED_METHODS = new Set(["HEAD"]);
const USER = { userId: "u1", anonymous: false, limits: { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null } };

/** A store whose every call fails (a dependency that is down), never a thenable itself. */
const failing = new Proxy({}, { get: (_t, key) => (key === "then" ? undefined : () => Promise.reject(new Error("stub store"))) });

function buildApp(doc: OpenApiDocument): FastifyInstance {
  const registry = createRegistry();
  const app = createHttpApp({ logger: silentLogger, registries: [registry] });
  const auth = {
    authenticate: async (header?: string, token?: string) => {
      if (!header && !token) throw new AppError("unauthorized", "missing API key");
      return USER;
    },
  };
  const deps = { logger: silentLogger, registry, auth, quota: failing, requests: failing, outbox: failing, stale: failing, queue: failing, events: failing, streams: failing, runs: failing, batches: failing, webhooks: failing, users: failing, requestsQueue: "q", models: ["default"] };
  createGateway(config.gateway, deps as never).register(app);
  createApiService(config.apiService, deps as never).register(app);
  registerApiDocs(app, { document: doc });
  return app;
}

/** `app.printRoutes()` as [METHOD, /path/:param] pairs (its tree joined back into whole paths). */
function registeredRoutes(app: FastifyInstance): Array<[string, string]> {
  const stack: string[] = [];
  const routes: Array<[string, string]> = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split("\n")) {
    const m = /^([│ ]*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?$/.exec(line.replace(/\u00a0/g, " "));
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    for (const method of (m[3] ?? "").split(", ").filter(Boolean)) routes.push([method, stack.join("")]);
  }
  return routes;
}

const openApiPath = (path: string) => path.replace(/:(\w+)/g, "{$1}");
const SAMPLE_PARAMS: Record<string, string> = { id: "0b7f3c2e-1d2a-4c5b-9e8f-7a6b5c4d3e2f", model: "default" };
const RESPONSE_ID = "resp_0b7f3c2e1d2a4c5b9e8f7a6b5c4d3e2f";

describe("the OpenAPI document against the app's routes", () => {
  let app: FastifyInstance;
  let validate: (name: string, value: unknown) => boolean;
  before(async () => {
    app = buildApp(document);
    await app.ready();
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, formats: { uuid: true, "date-time": true } });
    ajv.addKeyword("x-errors");
    for (const [name, schema] of Object.entries((document.components as { schemas: Record<string, object> }).schemas)) {
      ajv.addSchema(JSON.parse(JSON.stringify(schema).replaceAll('"#/components/schemas/', '"urn:schema:')), `urn:schema:${name}`);
    }
    validate = (name, value) => ajv.validate(`urn:schema:${name}`, value) as boolean;
  });
  after(async () => {
    await app?.close();
  });

  it("documents every route the app registers, with its method, its body and its answers", () => {
    const routes = registeredRoutes(app).filter(([method]) => !UNDOCUMENTED_METHODS.has(method));
    assert.ok(routes.length >= 17, `only ${routes.length} routes read from printRoutes`);
    for (const [method, path] of routes) {
      const op = document.paths[openApiPath(path)]?.[method.toLowerCase()] as Record<string, any> | undefined;
      assert.ok(op, `${method} ${path} is not in the document`);
      assert.ok(Object.keys(op.responses).length > 0, `${method} ${path}: no answers`);
      // Every POST takes a JSON body but the cancels and the admin's key creation, which take none.
      if (method === "POST" && !path.endsWith("/cancel") && !path.endsWith("/keys")) {
        const content = op.requestBody?.content ?? {};
        assert.ok(content["application/json"]?.schema ?? content["multipart/form-data"]?.schema, `${method} ${path}: no body schema`);
      }
    }
  });

  it("every documented route exists", () => {
    for (const [path, methods] of Object.entries(document.paths)) {
      for (const method of Object.keys(methods)) {
        assert.ok(app.hasRoute({ method: method.toUpperCase() as "GET", url: path.replace(/\{(\w+)\}/g, ":$1") }), `${method} ${path} is documented but not registered`);
      }
    }
  });

  /** Asserts that an error answer is documented for its route, status and code, in the documented shape. */
  function documented(method: string, path: string, status: number, body: any): void {
    const op = document.paths[path]![method] as Record<string, any>;
    const answer = op.responses[String(status)];
    assert.ok(answer, `${method} ${path} answered ${status}, which is not documented`);
    assert.ok(answer["x-error-codes"].includes(body.error.code), `${method} ${path} ${status}: ${body.error.code} is not documented`);
    assert.ok(validate(path.startsWith("/v1/") ? "OpenAIError" : "Error", body), JSON.stringify(body));
  }

  it("without a key every authenticated route answers a documented 401", async () => {
    for (const [path, methods] of Object.entries(document.paths)) {
      for (const [method, op] of Object.entries(methods) as Array<[string, Record<string, any>]>) {
        if (op.security.length === 0) continue;
        const url = path.replace("{id}", path.startsWith("/v1/responses") ? RESPONSE_ID : SAMPLE_PARAMS.id!).replace("{model}", "default");
        const res = await app.inject({ method: method.toUpperCase() as "GET", url, ...(op.requestBody ? { payload: {} } : {}) });
        assert.equal(res.statusCode, 401, `${method} ${url}`);
        documented(method, path, 401, res.json());
      }
    }
  });

  it("a body the document refuses, the route refuses with a documented 400; one it accepts gets past validation", async () => {
    const cases: Array<[string, unknown, boolean]> = [
      ["/api/v1/inference", { prompt: "hi" }, true],
      ["/api/v1/inference", { prompt: "hi", temperature: 3 }, false],
      ["/api/v1/inference", { prompt: "hi", max_length: 301 }, false],
      ["/api/v1/inference", { prompt: "hi", max_length: 300 }, true],
      ["/api/v1/inference", { prompt: "hi", tools: [] }, false],
      ["/v1/chat/completions", { model: "default", messages: [{ role: "user", content: "hi" }] }, true],
      ["/v1/chat/completions", { model: "default", messages: [{ role: "user", content: "hi" }], temperature: 3 }, false],
      ["/v1/completions", { model: "default", prompt: "Once", frequency_penalty: 1 }, false],
      ["/v1/responses", { input: "hi" }, true],
      ["/v1/responses", { input: "hi", store: false }, false],
    ];
    const schemaOf: Record<string, string> = { "/api/v1/inference": "InferenceBody", "/v1/chat/completions": "ChatCompletionBody", "/v1/completions": "CompletionBody", "/v1/responses": "ResponsesBody" };
    for (const [path, body, accepted] of cases) {
      assert.equal(validate(schemaOf[path]!, body), accepted, `${path} ${JSON.stringify(body)}: the document`);
      const res = await app.inject({ method: "POST", url: path, headers: { authorization: "Bearer k" }, payload: body as object });
      if (accepted) assert.notEqual(res.statusCode, 400, `${path} ${JSON.stringify(body)}: ${res.body}`);
      else assert.equal(res.statusCode, 400, `${path} ${JSON.stringify(body)}: ${res.body}`);
      // Accepted bodies reach admission, whose stores are down: a documented 503 too.
      documented("post", path, res.statusCode, res.json());
    }
  });

  it("serves the document and the page (HTML, with a CSP that forbids external sources)", async () => {
    const json = await app.inject({ method: "GET", url: "/openapi.json" });
    assert.equal(json.statusCode, 200);
    assert.match(String(json.headers["content-type"]), /^application\/json/);
    assert.deepEqual(json.json(), JSON.parse(JSON.stringify(document)));
    const page = await app.inject({ method: "GET", url: "/docs" });
    assert.equal(page.statusCode, 200);
    assert.equal(page.headers["content-type"], "text/html; charset=utf-8");
    assert.match(String(page.headers["content-security-policy"]), /^default-src 'none';/);
    assert.equal(page.body.match(/https?:\/\//g), null);
  });

  it("a component's document has its own routes only", () => {
    const limits = { maxLengthLimit: 500, maxPromptChars: 100 };
    const gateway = Object.keys(openApiDocument({ component: "gateway", limits }).paths);
    const api = Object.keys(openApiDocument({ component: "api-service", limits }).paths);
    assert.ok(gateway.includes("/v1/responses") && !gateway.includes("/api/v1/quota") && gateway.includes("/health"), "gateway.includes('/v1/responses') && !gateway.includes('/api/v1/quota'");
    assert.ok(api.includes("/events/{id}") && !api.includes("/v1/models") && api.includes("/docs"), "api.includes('/events/{id}') && !api.includes('/v1/models') && api.inc");
  });
});
