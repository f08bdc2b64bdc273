/**
 * The typed client and the user-facing CLI against a real platform (embedded adapters, the trained
 * model, the same assemble() as `ml-inference all`): the CLI runs as a child process with
 * ML_INFERENCE_URL / ML_INFERENCE_API_KEY, exactly as a user's shell runs it, and its exit codes
 * are the contract the usage text documents.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { requireStoriesModel } from "../support/model.js";
import { freePort } from "../support/processes.js";
import { cli, show, type Run } from "../support/cli.js";
import { startPlatform, type Platform } from "../support/platform.js";
import { Client, ClientError, type StreamEvent } from "../../src/client/index.js";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const skip = requireStoriesModel();




function parsed(run: Run): any {
  try {
    return JSON.parse(run.stdout);
  } catch {
    assert.fail(`stdout is not one JSON object: ${show(run)}`);
  }
}

/** Errors are one stderr line `error: <code>: <message>`. */
function assertErrorLine(run: Run, code: string): void {
  assert.match(run.stderr, new RegExp(`^error: ${code}: \\S.*\\n$`), show(run));
}

/**
 * A fetch whose first token stream is cut in the middle of the event after the first token, as a
 * proxy dropping the connection would: the client must resume with Last-Event-ID.
 */
function droppingFetch(): { fetch: typeof fetch; drops: () => number } {
  let drops = 0;
  const wrapped = (async (input: string | URL | Request, init?: RequestInit) => {
    const response = await fetch(input, init);
    if (drops > 0 || !String(input).includes("tokens=true") || !response.body) return response;
    drops++;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let seen = "";
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { value, done } = await reader.read();
        if (done) return controller.close();
        seen += decoder.decode(value, { stream: true });
        const first = seen.indexOf("event: token");
        const end = first < 0 ? -1 : seen.indexOf("\n\n", first);
        if (end < 0) return; // the next pull reads on
        // The first token event whole, then half a line of whatever follows, then the break.
        controller.enqueue(new TextEncoder().encode(seen.slice(0, end + 2) + seen.slice(end + 2, end + 8)));
        await reader.cancel();
        controller.error(new TypeError("terminated"));
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  }) as typeof fetch;
  return { fetch: wrapped, drops: () => drops };
}

describe("typed client and CLI against the embedded platform with the model", { skip }, () => {
  let platform: Platform;
  let key: string;
  let client: Client;
  const keyOf = (authorization: string) => authorization.replace(/^Bearer /, "");

  before(async () => {
    platform = await startPlatform({ backend: "embedded" });
    key = keyOf((await platform.createUser()).authorization);
    client = new Client({ baseUrl: platform.url, apiKey: key });
  });
  after(async () => platform?.stop());

  it("submit then wait: the final status is completed with the stored text", async () => {
    const submitted = await client.submit("Once upon a time", { maxLength: 24, temperature: 0 }, { idempotencyKey: `k-${Date.now()}` });
    assert.equal(submitted.status, "queued");
    assert.equal(submitted.replayed, false);
    const seen: string[] = [];
    const final = await client.wait(submitted.requestId, { timeoutMs: 30_000, onStatus: (s) => seen.push(s) });
    assert.equal(final.status, "completed", JSON.stringify(final));
    assert.ok(final.result?.outputText, "a completed request has text");
    assert.deepEqual(await client.status(submitted.requestId), final);
  });

  it("stream: tokens arrive in seq order and concatenate to the stored result, across a dropped connection", async () => {
    const dropping = droppingFetch();
    const streaming = new Client({ baseUrl: platform.url, apiKey: key, fetch: dropping.fetch });
    const events: StreamEvent[] = [];
    let requestId = "";
    for await (const event of streaming.stream("The little dog", { maxLength: 40 }, { onSubmitted: (s) => (requestId = s.requestId) })) {
      events.push(event);
    }
    assert.equal(dropping.drops(), 1, "the first token stream was cut");
    const tokens = events.filter((e): e is Extract<StreamEvent, { type: "token" }> => e.type === "token");
    const final = events.at(-1)!;
    assert.equal(final.type, "final");
    assert.ok(tokens.length > 1, `several tokens: ${tokens.length}`);
    assert.deepEqual(tokens.map((t) => t.seq), tokens.map((_, i) => i + 1), "no gap and no duplicate");
    const stored = await client.status(requestId);
    assert.equal(stored.status, "completed");
    assert.equal(tokens.map((t) => t.text).join(""), stored.result?.outputText);
  });

  it("cancel: a request cancelled right after it was admitted ends cancelled", async () => {
    const submitted = await client.submit("Once upon a time", { maxLength: 500, numReturnSequences: 5 });
    const after = await client.cancel(submitted.requestId);
    assert.equal(after.status, "cancelled", JSON.stringify(after));
    assert.equal((await client.wait(submitted.requestId, { timeoutMs: 30_000 })).status, "cancelled");
  });

  it("quota: a completed request moves the daily count by one and the tokens by its usage", async () => {
    const own = new Client({ baseUrl: platform.url, apiKey: keyOf((await platform.createUser({ dailyRequests: 50 })).authorization) });
    const before = await own.quota();
    assert.equal(before.limits.daily.requests, 50);
    const final = await own.wait((await own.submit("A cat", { maxLength: 16 })).requestId, { timeoutMs: 30_000 });
    const after = await own.quota();
    assert.equal(after.daily.requests, before.daily.requests + 1);
    assert.equal(after.daily.tokensUsed, before.daily.tokensUsed + (final.usage?.totalTokens ?? Number.NaN));
    assert.equal(after.daily.tokensReserved, 0);
  });

  it("an unknown key is ClientError unauthorized (401); the CLI exits 3 with the API's message", async () => {
    const error = await new Client({ baseUrl: platform.url, apiKey: "mli_not_a_key" }).quota().catch((e: unknown) => e);
    assert.ok(error instanceof ClientError, String(error));
    assert.equal(error.code, "unauthorized");
    assert.equal(error.status, 401);
    const run = await cli(["submit", "hello"], { url: platform.url, key: "mli_not_a_key" });
    assert.equal(run.code, 3, show(run));
    assertErrorLine(run, "unauthorized");
    assert.equal(run.stdout, "");
  });

  it("nothing listening: ClientError unreachable; the CLI exits 4", async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const error = await new Client({ baseUrl: closed }).status("00000000-0000-4000-8000-000000000000").catch((e: unknown) => e);
    assert.ok(error instanceof ClientError && error.code === "unreachable" && error.status === 0, String(error));
    const run = await cli(["quota"], { url: closed, key });
    assert.equal(run.code, 4, show(run));
    assertErrorLine(run, "unreachable");
  });

  it("a reached quota (429) exits 4 and prints Retry-After", async () => {
    const none = keyOf((await platform.createUser({ dailyRequests: 0 })).authorization);
    const run = await cli(["submit", "hello", "--wait"], { url: platform.url, key: none });
    assert.equal(run.code, 4, show(run));
    assertErrorLine(run, "quota_exceeded");
    assert.match(run.stderr, /\(retry after \d+ s\)/);
  });

  it("bad flags exit 2 before anything is sent", async () => {
    for (const args of [["submit", "hello", "--max-length", "lots"], ["submit", "hello", "--wait", "--stream"], ["submit"], ["quota", "--bogus"]]) {
      const run = await cli(args, { url: "http://127.0.0.1:9", key });
      assert.equal(run.code, 2, `${args.join(" ")}: ${show(run)}`);
      assertErrorLine(run, "usage");
    }
  });

  it("submit --wait --json prints the final status as one JSON object; status and quota --json too", async () => {
    const run = await cli(["submit", "Once upon a time", "--wait", "--json", "--max-length", "20", "--temperature", "0.5"], { url: platform.url, key });
    assert.equal(run.code, 0, show(run));
    const final = parsed(run);
    assert.equal(final.status, "completed");
    assert.deepEqual(final, await client.status(final.requestId));
    const status = await cli(["status", final.requestId, "--json"], { url: platform.url, key });
    assert.equal(status.code, 0, show(status));
    assert.deepEqual(parsed(status), final);
    const quota = await cli(["quota", "--json"], { url: platform.url, key });
    assert.equal(quota.code, 0, show(quota));
    assert.deepEqual(parsed(quota), await client.quota());
  });

  it("submit --stream --json: one JSON object a line (submitted, tokens, final); plain --stream prints the text", async () => {
    const run = await cli(["submit", "The sun", "--stream", "--json", "--max-length", "30"], { url: platform.url, key });
    assert.equal(run.code, 0, show(run));
    const lines = run.stdout.trimEnd().split("\n").map((text) => JSON.parse(text));
    assert.equal(lines[0].type, "submitted");
    const final = lines.at(-1);
    assert.equal(final.type, "final");
    assert.equal(final.status, "completed");
    const text = lines.filter((l) => l.type === "token").map((l) => l.text).join("");
    assert.equal(text, (await client.status(lines[0].requestId)).result?.outputText);

    // Plain output names no id: a user of its own has that one request, found in the store.
    const user = await platform.createUser();
    const plain = await cli(["submit", "The sun", "--stream", "--max-length", "30"], { url: platform.url, key: keyOf(user.authorization) });
    assert.equal(plain.code, 0, show(plain));
    const { rows } = await platform.database.db.query<{ request_id: string }>("SELECT request_id FROM inference_requests WHERE user_id = $1", [user.userId]);
    assert.equal(rows.length, 1);
    const stored = await new Client({ baseUrl: platform.url, apiKey: keyOf(user.authorization) }).status(rows[0]!.request_id);
    assert.equal(plain.stdout, `${stored.result?.outputText}\n`);
  });

  it("cancel --json prints the status after the cancel; a finished request stays as it was (exit 0)", async () => {
    const done = await client.wait((await client.submit("A bird", { maxLength: 8 })).requestId, { timeoutMs: 30_000 });
    const run = await cli(["cancel", done.requestId, "--json"], { url: platform.url, key });
    assert.equal(run.code, 0, show(run));
    assert.deepEqual(parsed(run), { requestId: done.requestId, status: "completed", usage: done.usage, error: null });
    const missing = await cli(["cancel", "00000000-0000-4000-8000-000000000000"], { url: platform.url, key });
    assert.equal(missing.code, 3, show(missing));
    assertErrorLine(missing, "request_not_found");
  });
});
