/**
 * client.batches against a scripted fetch: what goes on the wire (the multipart upload with
 * purpose=batch, the create body), the wire → client conversion, wait()'s progress callback (once
 * per change) and its timeout. The real platform is test/e2e/client-batches.test.ts's.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Client, ClientError } from "./index.js";

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

const wireBatch = (status: string, completed: number, extra: Record<string, unknown> = {}) => ({
  id: "batch_1",
  object: "batch",
  endpoint: "/v1/chat/completions",
  input_file_id: "file-1",
  completion_window: "24h",
  status,
  created_at: 1_700_000_000,
  request_counts: { total: 2, completed, failed: 0 },
  metadata: null,
  ...extra,
});

function scripted(answers: Array<(url: URL, init: RequestInit) => Response>) {
  const calls: Array<{ url: URL; init: RequestInit }> = [];
  const fetchImpl = (async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = new URL(String(input));
    calls.push({ url, init });
    const next = answers.length > 1 ? answers.shift()! : answers[0]!;
    return next(url, init);
  }) as typeof fetch;
  return { client: new Client({ baseUrl: "http://platform.test/", apiKey: "mli_k", fetch: fetchImpl }), calls };
}

describe("client.batches", () => {
  it("submit uploads the file as multipart (purpose=batch) and creates the batch for the endpoint", async () => {
    const { client, calls } = scripted([
      () => json(200, { id: "file-1", object: "file", bytes: 10, created_at: 1_700_000_000, filename: "a.jsonl", purpose: "batch" }),
      () => json(200, wireBatch("in_progress", 0)),
    ]);
    const batch = await client.batches.submit('{"custom_id":"1"}\n', { filename: "a.jsonl", endpoint: "/v1/completions" });
    assert.equal(calls[0]!.url.pathname, "/v1/files");
    assert.equal((calls[0]!.init.headers as Record<string, string>).authorization, "Bearer mli_k");
    const form = calls[0]!.init.body as FormData;
    assert.ok(form instanceof FormData);
    assert.equal(form.get("purpose"), "batch");
    const file = form.get("file") as File;
    assert.equal(file.name, "a.jsonl");
    assert.equal(await file.text(), '{"custom_id":"1"}\n');
    assert.equal((calls[0]!.init.headers as Record<string, string>)["content-type"], undefined, "fetch writes the boundary itself");
    assert.equal(calls[1]!.url.pathname, "/v1/batches");
    assert.deepEqual(JSON.parse(String(calls[1]!.init.body)), { input_file_id: "file-1", endpoint: "/v1/completions", completion_window: "24h" });
    assert.deepEqual(batch, {
      id: "batch_1",
      status: "in_progress",
      endpoint: "/v1/chat/completions",
      inputFileId: "file-1",
      outputFileId: null,
      errorFileId: null,
      requestCounts: { total: 2, completed: 0, failed: 0 },
      errors: null,
      metadata: null,
      createdAt: "2023-11-14T22:13:20.000Z",
      completedAt: null,
    });
  });

  it("wait polls until final, calling onProgress once per change; output reads the output file", async () => {
    const { client, calls } = scripted([
      () => json(200, wireBatch("in_progress", 0)),
      () => json(200, wireBatch("in_progress", 0)),
      () => json(200, wireBatch("in_progress", 1)),
      () => json(200, wireBatch("completed", 2, { output_file_id: "file-out", completed_at: 1_700_000_010 })),
      (url) => new Response(url.pathname === "/v1/files/file-out/content" ? '{"custom_id":"1"}\n{"custom_id":"2"}\n' : "", { status: 200 }),
    ]);
    const seen: string[] = [];
    const final = await client.batches.wait("batch_1", { pollMs: 1, onProgress: (b) => seen.push(`${b.status}:${b.requestCounts.completed}`) });
    assert.deepEqual(seen, ["in_progress:0", "in_progress:1", "completed:2"]);
    assert.equal(final.completedAt, "2023-11-14T22:13:30.000Z");
    assert.equal(await client.batches.output(final), '{"custom_id":"1"}\n{"custom_id":"2"}\n');
    assert.equal(calls.at(-1)!.url.pathname, "/v1/files/file-out/content");
    assert.equal(await client.batches.output(final, { errors: true }), null, "no error file: null, nothing fetched");
  });

  it("wait gives up with wait_timeout; a refusal is the platform's code (OpenAI's error shape)", async () => {
    const running = scripted([() => json(200, wireBatch("in_progress", 0))]);
    await assert.rejects(running.client.batches.wait("batch_1", { pollMs: 5, timeoutMs: 30 }), (e: unknown) => e instanceof ClientError && e.code === "wait_timeout");
    const missing = scripted([() => json(404, { error: { message: "no batch batch_x", type: "invalid_request_error", param: "batch_id", code: "batch_not_found" } })]);
    await assert.rejects(missing.client.batches.retrieve("batch_x"), (e: unknown) => e instanceof ClientError && e.code === "batch_not_found" && e.status === 404 && e.message === "no batch batch_x");
  });

  it("list passes limit and after, and reads the page", async () => {
    const { client, calls } = scripted([() => json(200, { object: "list", data: [wireBatch("completed", 2)], first_id: "batch_1", last_id: "batch_1", has_more: true })]);
    const page = await client.batches.list({ limit: 1, after: "batch_0" });
    assert.equal(calls[0]!.url.search, "?limit=1&after=batch_0");
    assert.equal(page.hasMore, true);
    assert.equal(page.lastId, "batch_1");
    assert.equal(page.data[0]!.status, "completed");
  });
});
