/**
 * End to end across processes: each component runs as its own `ml-inference <component>` process
 * on the real servers, requests go through all of them, and SIGTERM drains each one cleanly.
 * Then `ml-inference all` on embedded defaults answers the guide's own curl request.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deleteQueues, deleteRedisKeys } from "../support/cleanup.js";
import { requireServices, serverEnv, uniqueName } from "../support/services.js";
import { requireStoriesModel, STORIES_MODEL_PATH } from "../support/model.js";
import { freshPostgres, type TestDatabase } from "../support/databases.js";
import { freePort, runCommand, startProcess, waitForHttp, type Proc, componentsEnv } from "../support/processes.js";
import OpenAI from "openai";
import { readEvents, submit, waitForFinal } from "../support/platform.js";

const skipModel = requireStoriesModel();
const skipServers = skipModel ?? (await requireServices("postgres", "redis", "rabbitmq"));

describe("components as separate processes on real servers", { skip: skipServers }, () => {
  let database: TestDatabase;
  const procs: Proc[] = [];
  const ports: Record<string, number> = {};
  let env: Record<string, string>;
  let authorization: string;
  const prefix = `${uniqueName("e2e")}:`;
  const queues = { requests: uniqueName("e2e_req"), results: uniqueName("e2e_res") };

  before(async () => {
    database = await freshPostgres();
    const shared = await componentsEnv(serverEnv(database.url!, queues, prefix), STORIES_MODEL_PATH, "chaos-and-e2e-internal-token");
    Object.assign(ports, shared.ports);
    env = {
      ...shared.env,
      SHUTDOWN_TIMEOUT_MS: "15000",
    };
    const migrated = await runCommand(["migrate"], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    await runCommand(["tiers", "set", "e2e", "--daily-requests", "1000"], env);
    await runCommand(["users", "create", "e2e-user", "--tier", "e2e"], env);
    const key = await runCommand(["keys", "create", "e2e-user"], env);
    authorization = `Bearer ${JSON.parse(key.stdout).api_key as string}`;
    for (const name of ["ml-service", "gateway", "api-service", "worker", "collector"]) {
      const proc = startProcess(name, [name], { ...env, PORT: String(ports[name]) });
      procs.push(proc);
    }
    await Promise.all(procs.map((p) => waitForHttp(`http://127.0.0.1:${ports[p.name]}/health`, p)));
  });

  after(async () => {
    for (const proc of procs) await proc.stop();
    await database?.drop();
    await deleteRedisKeys(prefix);
    await deleteQueues(Object.values(queues));
  });

  it("requests flow gateway → worker → ml-service → collector → api-service", async () => {
    const gateway = `http://127.0.0.1:${ports.gateway}`;
    const api = `http://127.0.0.1:${ports["api-service"]}`;
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await submit(gateway, { prompt: `Once upon a time ${i}`, max_length: 20 }, authorization);
      assert.equal(r.status, 202, JSON.stringify(r.body));
      ids.push(r.body.request_id);
    }
    const stream = await readEvents(`${api}/events/${ids[0]}`, authorization);
    assert.ok(["completed"].includes(stream.events.at(-1)?.event ?? ""), JSON.stringify(stream.events));
    let total = 0;
    for (const id of ids) {
      const final = await waitForFinal(api, id, authorization);
      assert.equal(final.status, "completed");
      total += final.usage.total_tokens;
    }
    const quota = (await (await fetch(`${api}/api/v1/quota`, { headers: { authorization } })).json()) as any;
    assert.equal(quota.daily.tokens_used, total);
    assert.equal(quota.daily.requests, 10);
    const anonymous = await submit(gateway, { prompt: "hi" });
    assert.equal(anonymous.status, 401, "anonymous access is off by default on real servers");
    for (const [name, port] of Object.entries(ports)) {
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(metrics, /process_resident_memory_bytes/, `${name} serves /metrics`);
    }
  });

  it("the OpenAI SDK gets streamed and whole answers across the processes, and tokens on /events", async () => {
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${ports.gateway}/v1`, apiKey: authorization.replace(/^Bearer /, ""), maxRetries: 0 });
    const body = { model: "default", messages: [{ role: "user" as const, content: "Lily found a ball" }], max_tokens: 24, temperature: 0, seed: 5 };
    const whole = await client.chat.completions.create(body);
    let streamed = "";
    for await (const chunk of await client.chat.completions.create({ ...body, stream: true })) streamed += chunk.choices[0]?.delta.content ?? "";
    assert.equal(streamed, whole.choices[0]!.message.content);
    // /events?tokens=true on the API service (another process) relays the worker's deltas; a
    // reconnect with Last-Event-ID resumes after the last one seen.
    const accepted = await submit(`http://127.0.0.1:${ports.gateway}`, { prompt: "Tom had a kite", max_length: 24, temperature: 0, stream: true }, authorization);
    const api = `http://127.0.0.1:${ports["api-service"]}`;
    const first = await readEvents(`${api}/events/${accepted.body.request_id}?tokens=true`, authorization);
    const tokens = first.events.filter((e) => e.event === "token").map((e) => e.data as { seq: number; text: string });
    const final = first.events.at(-1)!;
    assert.equal(final.event, "completed", JSON.stringify(first.events));
    assert.deepEqual(tokens.map((t) => t.seq), tokens.map((_, i) => i + 1));
    assert.equal(tokens.map((t) => t.text).join(""), final.data.result.output_text, "the stored text is the deltas concatenated");
    const resumed = await fetch(`${api}/events/${accepted.body.request_id}?tokens=true`, { headers: { authorization, "last-event-id": "2" } });
    const again = (await resumed.text()).split("\n\n").filter((block) => block.includes("event: token"));
    assert.equal(again.length, tokens.length - 2, "resumed after seq 2, no duplicate");
  });

  it("SIGTERM drains every component and exits 0", async () => {
    const gateway = `http://127.0.0.1:${ports.gateway}`;
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await submit(gateway, { prompt: `Drain ${i}`, max_length: 100 }, authorization)).body.request_id);
    for (const name of ["gateway", "worker"]) {
      const proc = procs.find((p) => p.name === name)!;
      assert.equal(await proc.stop(), 0, `${name} exits 0:\n${proc.output()}`);
    }
    // Whatever the worker had in flight finished; what it had not taken waits in the durable queue.
    const worker = startProcess("worker", ["worker"], { ...env, PORT: String(await freePort()) });
    procs.push(worker);
    const api = `http://127.0.0.1:${ports["api-service"]}`;
    for (const id of ids) assert.equal((await waitForFinal(api, id, authorization, 30_000)).status, "completed");
    for (const name of ["collector", "api-service", "ml-service"]) {
      const proc = procs.find((p) => p.name === name)!;
      assert.equal(await proc.stop(), 0, `${name} exits 0:\n${proc.output()}`);
    }
  });
});

describe("`ml-inference all` on embedded defaults (what npm start runs)", () => {
  let dataDir: string;
  let proc: Proc;
  let url: string;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "mli-all-"));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    // No MODEL: the service generates its demo model into the data folder.
    proc = startProcess("all", ["all"], { DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: "info", ML_SERVICE_PORT: String(await freePort()) });
    await waitForHttp(`${url}/livez`, proc, 90_000);
  });
  after(async () => {
    const code = await proc?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    assert.equal(code, 0);
  });

  it("the guide's curl request is accepted and completes", async () => {
    const response = await fetch(`${url}/api/v1/inference`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: '{"prompt": "test prompt"}',
    });
    assert.equal(response.status, 202);
    const body = (await response.json()) as Record<string, string>;
    for (const field of ["request_id", "status", "status_url", "events_url"]) assert.ok(body[field], field);
    const final = await waitForFinal(url, body.request_id as string, undefined, 60_000);
    assert.equal(final.status, "completed");
    assert.ok(final.usage.total_tokens > 0);
    assert.match(proc.output(), /"msg":"[^"]*demo/i, "the demo model announces itself");
  });
});

describe("SIGTERM with a client waiting on /events", () => {
  it("closes the stream, drains and exits 0 promptly", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "mli-sse-"));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // No model server answers, so the request stays open (retrying) and its event stream with it.
    const proc = startProcess("all", ["all"], {
      DATA_DIR: dataDir,
      PORT: String(port),
      ML_SERVICE_URL: "http://127.0.0.1:9",
      WORKER_RETRY_BASE_MS: "60000",
      SHUTDOWN_TIMEOUT_MS: "20000",
    });
    try {
      await waitForHttp(`${url}/livez`, proc, 90_000);
      const accepted = await submit(url, { prompt: "wait for me", max_length: 5 });
      assert.equal(accepted.status, 202);
      const response = await fetch(`${url}/events/${accepted.body.request_id}`);
      const reader = response.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      assert.match(first, /retry: 2000/);
      const started = Date.now();
      const code = await proc.stop(20_000);
      assert.equal(code, 0, proc.output());
      assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms to stop`);
      // The stream was ended by the server, not left hanging.
      let done = false;
      while (!done) done = (await reader.read()).done;
    } finally {
      await proc.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
