/**
 * Traces end to end: each component runs as its own process on the real servers with
 * OTEL_EXPORTER_OTLP_ENDPOINT pointing at a small OTLP/HTTP receiver in this test. One request with
 * a client `traceparent` must come back as one trace: spans from gateway, worker, ml-service and
 * collector, all in the client's trace, linked into one tree under the client's span, the model call
 * carrying time to first token and token counts. Without the endpoint, the receiver hears nothing.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { gunzipSync } from "node:zlib";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deleteQueues, deleteRedisKeys } from "../support/cleanup.js";
import { requireServices, serverEnv, uniqueName } from "../support/services.js";
import { requireStoriesModel, STORIES_MODEL_PATH } from "../support/model.js";
import { freshPostgres, type TestDatabase } from "../support/databases.js";
import { freePort, runCommand, startProcess, waitForHttp, type Proc } from "../support/processes.js";
import { waitForFinal } from "../support/platform.js";

const skipModel = requireStoriesModel();
const skipServers = skipModel ?? (await requireServices("postgres", "redis", "rabbitmq"));

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  attributes: Record<string, unknown>;
}

/** OTLP/JSON ids are hex (the JS exporter's choice) or, per the protobuf JSON mapping, base64. */
const hexId = (id: unknown): string => {
  const s = typeof id === "string" ? id : "";
  return /^[0-9a-f]*$/i.test(s) ? s.toLowerCase() : Buffer.from(s, "base64").toString("hex");
};

type OtlpValue = { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
const valueOf = (v: OtlpValue): unknown =>
  v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.doubleValue ?? v.boolValue;
const attributesOf = (list: Array<{ key: string; value: OtlpValue }> | undefined) =>
  Object.fromEntries((list ?? []).map((a) => [a.key, valueOf(a.value)]));

/** A minimal OTLP/HTTP trace receiver: POST /v1/traces with JSON (the exporter used here sends JSON). */
async function startReceiver() {
  const spans: ReceivedSpan[] = [];
  const problems: string[] = [];
  let posts = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      posts++;
      const type = req.headers["content-type"] ?? "";
      if (req.method !== "POST" || req.url !== "/v1/traces") problems.push(`${req.method} ${req.url}`);
      else if (!type.startsWith("application/json")) {
        // Protobuf would need the OTLP schema to decode; this platform's exporter sends JSON.
        problems.push(`content-type ${type}: only OTLP/JSON is decoded here`);
      } else {
        let raw = Buffer.concat(chunks);
        if (req.headers["content-encoding"] === "gzip") raw = gunzipSync(raw);
        const body = JSON.parse(raw.toString("utf8")) as { resourceSpans?: any[] };
        for (const rs of body.resourceSpans ?? []) {
          const service = String(attributesOf(rs.resource?.attributes)["service.name"] ?? "");
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              spans.push({ service, traceId: hexId(s.traceId), spanId: hexId(s.spanId), parentSpanId: hexId(s.parentSpanId ?? ""), name: s.name, attributes: attributesOf(s.attributes) });
            }
          }
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url, spans, problems, posts: () => posts, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const newTraceparent = () => {
  const hex = (n: number) => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join("");
  const traceId = hex(32);
  const spanId = hex(16);
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
};

/** Submits one request with the client's traceparent; the request id. */
async function submitTraced(gateway: string, traceparent: string, authorization?: string): Promise<string> {
  const response = await fetch(`${gateway}/api/v1/inference`, {
    method: "POST",
    headers: { "content-type": "application/json", traceparent, ...(authorization ? { authorization } : {}) },
    body: JSON.stringify({ prompt: "Once upon a time", max_length: 12 }),
  });
  const body = (await response.json()) as Record<string, any>;
  assert.equal(response.status, 202, JSON.stringify(body));
  return body.request_id as string;
}

const EXPECTED = ["admission", "queue wait", "worker", "model call", "ml-service POST /inference", "collection"];

describe("traces across the components as separate processes", { skip: skipServers }, () => {
  let database: TestDatabase;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const procs: Proc[] = [];
  const ports: Record<string, number> = {};
  let authorization: string;
  const prefix = `${uniqueName("e2e_traces")}:`;
  const queues = { requests: uniqueName("e2e_tr_req"), results: uniqueName("e2e_tr_res") };

  before(async () => {
    receiver = await startReceiver();
    database = await freshPostgres();
    for (const name of ["gateway", "worker", "collector", "api-service", "ml-service"]) ports[name] = await freePort();
    const env = {
      ...serverEnv(database.url!, queues, prefix),
      ML_SERVICE_URL: `http://127.0.0.1:${ports["ml-service"]}`,
      MODEL: STORIES_MODEL_PATH,
      ML_SERVICE_TOKEN: "traces-e2e-internal-token",
      SHUTDOWN_TIMEOUT_MS: "15000",
    };
    const migrated = await runCommand(["migrate"], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    await runCommand(["tiers", "set", "e2e", "--daily-requests", "1000"], env);
    await runCommand(["users", "create", "traces-user", "--tier", "e2e"], env);
    const key = await runCommand(["keys", "create", "traces-user"], env);
    authorization = `Bearer ${JSON.parse(key.stdout).api_key as string}`;
    // The SDK reads OTEL_BSP_SCHEDULE_DELAY: spans leave within 100 ms instead of 5 s.
    const traced = { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "100", OTEL_SERVICE_NAME: "" };
    for (const name of ["ml-service", "gateway", "api-service", "worker", "collector"]) procs.push(startProcess(name, [name], { ...traced, PORT: String(ports[name]) }));
    await Promise.all(procs.map((p) => waitForHttp(`http://127.0.0.1:${ports[p.name]}/health`, p)));
  });

  after(async () => {
    for (const proc of procs) await proc.stop();
    await receiver?.close();
    await database?.drop();
    await deleteRedisKeys(prefix);
    await deleteQueues(Object.values(queues));
  });

  it("one request is one trace under the client's span: admission → queue wait / worker → model call → ML Service, collection", async () => {
    const client = newTraceparent();
    const id = await submitTraced(`http://127.0.0.1:${ports.gateway}`, client.header, authorization);
    const final = await waitForFinal(`http://127.0.0.1:${ports["api-service"]}`, id, authorization);
    assert.equal(final.status, "completed", JSON.stringify(final));

    const deadline = Date.now() + 15_000;
    let spans: ReceivedSpan[] = [];
    for (;;) {
      spans = receiver.spans.filter((s) => s.attributes["ml_inference.request_id"] === id || s.traceId === client.traceId);
      if (EXPECTED.every((name) => spans.some((s) => s.name === name))) break;
      if (Date.now() > deadline) assert.fail(`spans missing after 15 s: got ${JSON.stringify(spans.map((s) => `${s.service}:${s.name}`))}; problems ${receiver.problems.join("; ")}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(receiver.problems, []);
    // Every span, whichever process sent it, is in the client's trace.
    for (const s of spans) assert.equal(s.traceId, client.traceId, `${s.service}:${s.name} is in another trace`);
    const byName = (name: string) => {
      const found = spans.filter((s) => s.name === name);
      assert.equal(found.length, 1, `one ${name} span: ${JSON.stringify(found)}`);
      return found[0]!;
    };
    const admission = byName("admission");
    const wait = byName("queue wait");
    const worker = byName("worker");
    const call = byName("model call");
    const ml = byName("ml-service POST /inference");
    const collection = byName("collection");
    assert.deepEqual(
      Object.fromEntries([admission, wait, worker, call, ml, collection].map((s) => [s.name, s.service])),
      { admission: "gateway", "queue wait": "worker", worker: "worker", "model call": "worker", "ml-service POST /inference": "ml-service", collection: "collector" },
    );
    // The tree: each parent is the span before it in the request's path.
    assert.equal(admission.parentSpanId, client.spanId);
    assert.equal(wait.parentSpanId, admission.spanId);
    assert.equal(worker.parentSpanId, admission.spanId);
    assert.equal(call.parentSpanId, worker.spanId);
    assert.equal(ml.parentSpanId, call.spanId);
    assert.equal(collection.parentSpanId, worker.spanId);
    const ids = new Set([client.spanId, ...spans.map((s) => s.spanId)]);
    for (const s of spans) assert.ok(ids.has(s.parentSpanId), `${s.name}'s parent is outside the tree`);
    // The model call's measurements, matching what was stored.
    const ttft = call.attributes["ml_inference.time_to_first_token_ms"];
    assert.equal(typeof ttft, "number");
    assert.ok((ttft as number) >= 0);
    assert.equal(call.attributes["gen_ai.usage.input_tokens"], final.usage.prompt_tokens);
    assert.equal(call.attributes["gen_ai.usage.output_tokens"], final.usage.completion_tokens);
  });
});

describe("tracing off: no endpoint, no spans", { skip: skipModel }, () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let proc: Proc;
  let url: string;
  let dataDir: string;
  before(async () => {
    receiver = await startReceiver();
    dataDir = mkdtempSync(join(tmpdir(), "mli-traces-off-"));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    // Every component in one process on embedded defaults; the endpoint is explicitly unset (empty).
    proc = startProcess("all", ["all"], { DATA_DIR: dataDir, PORT: String(port), MODEL: STORIES_MODEL_PATH, ML_SERVICE_PORT: String(await freePort()), OTEL_EXPORTER_OTLP_ENDPOINT: "", OTEL_BSP_SCHEDULE_DELAY: "100" });
    await waitForHttp(`${url}/health`, proc, 90_000);
  });
  after(async () => {
    await proc?.stop();
    await receiver?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("a request with a client traceparent completes and the receiver gets nothing", async () => {
    const id = await submitTraced(url, newTraceparent().header);
    assert.equal((await waitForFinal(url, id, undefined)).status, "completed");
    // Longer than the batch delay many times over: anything exported would have arrived.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(receiver.posts(), 0);
  });
});
