/**
 * The client against a scripted fetch: what goes on the wire (snake_case body, headers), how
 * answers become ClientErrors, and the recoveries a real network needs (a token stream resumed
 * with Last-Event-ID, wait() falling back to polling). The real platform is test/e2e/client-cli.test.ts's.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Client, ClientError } from "./index.js";

type Handler = (url: URL, init: RequestInit) => Response | Promise<Response>;

function fakeFetch(handler: Handler): { fetch: typeof fetch; calls: Array<{ url: URL; init: RequestInit }> } {
  const calls: Array<{ url: URL; init: RequestInit }> = [];
  const fn = (async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = new URL(String(input));
    calls.push({ url, init });
    return handler(url, init);
  }) as typeof fetch;
  return { fetch: fn, calls };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

/** An SSE body of the given texts; `thenFail` makes it break (as a reset connection does) after them. */
function sse(texts: string[], thenFail = false): Response {
  const encoder = new TextEncoder();
  const queue = [...texts];
  // One chunk per read, so that the error comes after them (an error discards queued chunks).
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const text = queue.shift();
      if (text !== undefined) controller.enqueue(encoder.encode(text));
      else if (thenFail) controller.error(new TypeError("terminated"));
      else controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
}

const ID = "00000000-0000-4000-8000-000000000001";
const token = (seq: number, text: string) => `id: ${seq}\nevent: token\ndata: ${JSON.stringify({ request_id: ID, seq, text })}\n\n`;
const statusWire = (status: string, text: string | null = null) => ({
  request_id: ID,
  status,
  model: "stories",
  created_at: "2026-01-01T00:00:00.000Z",
  started_at: null,
  completed_at: null,
  estimated_tokens: 10,
  result: text === null ? null : { output_text: text },
  usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
  error: null,
});
const accepted = { request_id: ID, status: "queued", model: "stories", estimated_tokens: 10, user_id: "u", timestamp: "t" };

describe("Client over a scripted fetch", () => {
  it("submit sends the parameters snake_case, the key as Bearer and the Idempotency-Key", async () => {
    const fake = fakeFetch(() => json(202, accepted));
    const client = new Client({ baseUrl: "http://platform/", apiKey: "k1", fetch: fake.fetch });
    const submitted = await client.submit("hi", { maxLength: 5, topP: 0.5, repetitionPenalty: 1.1, numReturnSequences: 2 }, { idempotencyKey: "idem-1" });
    assert.equal(submitted.requestId, ID);
    assert.equal(submitted.replayed, false);
    const call = fake.calls[0]!;
    assert.equal(call.url.href, "http://platform/api/v1/inference");
    assert.deepEqual(JSON.parse(String(call.init.body)), { prompt: "hi", max_length: 5, top_p: 0.5, repetition_penalty: 1.1, num_return_sequences: 2 });
    const headers = call.init.headers as Record<string, string>;
    assert.equal(headers.authorization, "Bearer k1");
    assert.equal(headers["idempotency-key"], "idem-1");
  });

  it("a refusal carries the platform's code, message, status, details and Retry-After", async () => {
    const fake = fakeFetch(() =>
      json(429, { error: { code: "quota_exceeded", message: "daily limit", details: { limit: "daily_requests" } } }, { "retry-after": "30" }),
    );
    const error = await new Client({ baseUrl: "http://p", fetch: fake.fetch }).quota().catch((e: unknown) => e);
    assert.ok(error instanceof ClientError);
    assert.deepEqual(
      { code: error.code, status: error.status, message: error.message, retry: error.retryAfterSeconds, details: error.details },
      { code: "quota_exceeded", status: 429, message: "daily limit", retry: 30, details: { limit: "daily_requests" } },
    );
  });

  it("a body that is not the platform's (a proxy's HTML 502) is bad_response; no answer at all is unreachable", async () => {
    const html = fakeFetch(() => new Response("<html>Bad Gateway</html>", { status: 502 }));
    const bad = await new Client({ baseUrl: "http://p", fetch: html.fetch }).status(ID).catch((e: unknown) => e);
    assert.ok(bad instanceof ClientError);
    assert.equal(bad.code, "bad_response");
    assert.equal(bad.status, 502);
    const down = fakeFetch(() => Promise.reject(new TypeError("fetch failed", { cause: { code: "ECONNREFUSED" } })));
    const unreachable = await new Client({ baseUrl: "http://p", fetch: down.fetch }).status(ID).catch((e: unknown) => e);
    assert.ok(unreachable instanceof ClientError);
    assert.equal(unreachable.code, "unreachable");
    assert.equal(unreachable.status, 0);
    assert.match(unreachable.message, /ECONNREFUSED/);
  });

  it("stream resumes a dropped token stream with Last-Event-ID: no token lost, none repeated", async () => {
    let connections = 0;
    const fake = fakeFetch((url, init) => {
      if (url.pathname === "/api/v1/inference") {
        assert.equal(JSON.parse(String(init.body)).stream, true);
        return json(202, accepted);
      }
      connections++;
      const after = Number((init.headers as Record<string, string>)["last-event-id"] ?? 0);
      if (connections === 1) return sse(["retry: 10\n\n", token(1, "Once"), token(2, " upon"), "id: 3\nevent: tok"], true);
      assert.equal(after, 2, "the second connection resumes after the last complete token");
      return sse([token(3, " a"), token(4, " time"), `id: 5\nevent: completed\ndata: ${JSON.stringify(statusWire("completed", "Once upon a time"))}\n\n`]);
    });
    const events = [];
    for await (const event of new Client({ baseUrl: "http://p", fetch: fake.fetch }).stream("Once")) events.push(event);
    const tokens = events.filter((e) => e.type === "token");
    assert.deepEqual(tokens.map((e) => e.seq), [1, 2, 3, 4]);
    const final = events.at(-1)!;
    assert.equal(final.type, "final");
    assert.equal(tokens.map((e) => e.text).join(""), final.type === "final" ? final.result?.outputText : undefined);
    assert.equal(connections, 2);
  });

  it("a refused token stream (404) is thrown at once, not retried", async () => {
    const fake = fakeFetch(() => json(404, { error: { code: "request_not_found", message: "no request" } }));
    await assert.rejects(async () => {
      for await (const _ of new Client({ baseUrl: "http://p", fetch: fake.fetch }).tokens(ID)) void _;
    }, (e: unknown) => e instanceof ClientError && e.code === "request_not_found");
    assert.equal(fake.calls.length, 1);
  });

  it("wait falls back to polling the status when the event stream breaks", async () => {
    let polls = 0;
    const seen: string[] = [];
    const fake = fakeFetch((url) => {
      if (url.pathname.startsWith("/events/")) return sse([`event: queued\ndata: {}\n\n`, `event: error\ndata: {"error":{}}\n\n`]);
      return json(200, statusWire(++polls < 2 ? "processing" : "completed", "done"));
    });
    const final = await new Client({ baseUrl: "http://p", fetch: fake.fetch }).wait(ID, { onStatus: (s) => seen.push(s) });
    assert.equal(final.status, "completed");
    assert.equal(final.result?.outputText, "done");
    assert.deepEqual(seen, ["queued", "processing"]);
  });

  it("wait past timeoutMs is wait_timeout; the caller's own abort is aborted", async () => {
    const hang = fakeFetch((_url, init) => new Promise<Response>((_, reject) => init.signal?.addEventListener("abort", () => reject(init.signal?.reason))));
    const client = new Client({ baseUrl: "http://p", fetch: hang.fetch });
    await assert.rejects(client.wait(ID, { timeoutMs: 50 }), (e: unknown) => e instanceof ClientError && e.code === "wait_timeout");
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 20);
    await assert.rejects(client.wait(ID, { timeoutMs: 5_000, signal: controller.signal }), (e: unknown) => e instanceof ClientError && e.code === "aborted");
  });
});
