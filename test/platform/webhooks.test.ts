/**
 * Signed webhooks end to end, on the real servers and embedded, with the trained model: endpoints
 * registered through the gateway, events written by the database triggers when a native request, a
 * background response or a batch ends, delivered by the gateway's loop to a real HTTP receiver on
 * loopback, and verified with the official `openai` client's `webhooks.unwrap`. Retries keep the
 * webhook-id; an endpoint failing past the max age is disabled and says why; private addresses
 * are refused without WEBHOOK_ALLOW_PRIVATE; one user never sees another's endpoints.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";
import { requireServices } from "../support/services.js";
import { requireStoriesModel } from "../support/model.js";
import { startPlatform, submit, waitForFinal, type Backend, type Platform } from "../support/platform.js";
import { startReceiver, type Receiver } from "../support/webhook-receiver.js";
import { waitFor } from "../support/wait.js";
import { createHttpApp } from "../../src/http/server.js";
import { Authenticator } from "../../src/http/authenticator.js";
import { silentLogger } from "../../src/observability/logger.js";
import { registerWebhookRoutes } from "../../src/components/webhooks/index.js";
import { sendWebhook } from "../../src/components/webhooks/send.js";
import { SqlWebhookStore } from "../../src/adapters/postgres/webhook-store.js";

const skipModel = requireStoriesModel();
const skipServers = skipModel ?? (await requireServices("postgres", "redis", "rabbitmq"));

/** Short enough that giving up is seen in a test; retries 30 → 60 → 100 ms apart. */
const MAX_AGE_MS = 2_500;

/** Polls an asynchronous read until it answers something (waitFor's conditions are synchronous). */
async function until<T>(what: string, read: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  let found: T | undefined;
  let reading = false;
  await waitFor(what, () => {
    if (!reading && found === undefined) {
      reading = true;
      void read().then((value) => ((found = value), (reading = false)), () => (reading = false));
    }
    return found !== undefined;
  }, timeoutMs);
  return found as T;
}
type Event = { id: string; type: string; created_at: number; object: string; data: { id: string } };

for (const backend of ["servers", "embedded"] as Backend[]) {
  describe(`webhooks on ${backend}`, { skip: backend === "servers" ? skipServers : skipModel }, () => {
    let platform: Platform;
    let receiver: Receiver;
    const openai = new OpenAI({ apiKey: "unused", baseURL: "http://127.0.0.1:1/v1" });
    const clientFor = (authorization: string) => new OpenAI({ baseURL: `${platform.url}/v1`, apiKey: authorization.replace(/^Bearer /, ""), maxRetries: 0 });

    before(async () => {
      receiver = await startReceiver();
      platform = await startPlatform({
        backend,
        env: {
          WEBHOOK_ALLOW_PRIVATE: "true",
          WEBHOOK_POLL_INTERVAL_MS: "20",
          WEBHOOK_RETRY_BASE_MS: "30",
          WEBHOOK_RETRY_MAX_MS: "100",
          WEBHOOK_MAX_ATTEMPT_AGE_MS: String(MAX_AGE_MS),
          WEBHOOK_TIMEOUT_MS: "20000",
          BATCH_DISPATCH_INTERVAL_MS: "100",
        },
      });
    });
    after(async () => {
      await receiver?.close();
      await platform?.stop();
    });

    const api = async (method: string, path: string, authorization: string, body?: unknown) => {
      const response = await fetch(`${platform.url}${path}`, {
        method,
        headers: { authorization, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: response.status, body: (await response.json()) as Record<string, any> };
    };
    const register = async (authorization: string, url: string, events?: string[]) => {
      const created = await api("POST", "/api/v1/webhooks", authorization, { url, ...(events ? { events } : {}) });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return created.body as { id: string; secret: string };
    };
    const eventsAt = (name: string, at = receiver) => at.at(name).map((r) => JSON.parse(r.body) as Event);
    const eventFor = async (name: string, subject: string, timeoutMs = 30_000, at = receiver) => {
      await waitFor(`an event about ${subject} at /${name}`, () => eventsAt(name, at).some((e) => e.data.id === subject), timeoutMs);
      const index = eventsAt(name, at).findIndex((e) => e.data.id === subject);
      return { event: eventsAt(name, at)[index] as Event, delivery: at.at(name)[index]! };
    };
    const endpoints = async (authorization: string) => (await api("GET", "/api/v1/webhooks", authorization)).body.data as Array<Record<string, any>>;

    it("a native request's completion is POSTed signed; the openai client's unwrap verifies it, and refuses a changed body", async () => {
      const user = await platform.createUser();
      const hook = await register(user.authorization, receiver.path(`native-${backend}`));
      assert.match(hook.secret, /^whsec_/);
      const admitted = await submit(platform.url, { prompt: "Once upon a time", max_length: 8 }, user.authorization);
      assert.equal(admitted.status, 202);
      const { event, delivery } = await eventFor(`native-${backend}`, admitted.body.request_id);
      const unwrapped = (await openai.webhooks.unwrap(delivery.body, delivery.headers, hook.secret)) as unknown as Event;
      assert.deepEqual(unwrapped, event);
      assert.equal(event.type, "inference.completed");
      assert.equal(event.object, "event");
      assert.match(event.id, /^evt_[0-9a-f]{32}$/);
      assert.equal(delivery.headers["webhook-id"], event.id);
      assert.ok(Math.abs(event.created_at - Date.now() / 1000) < 120, "created_at is Unix seconds of the event");
      await assert.rejects(openai.webhooks.unwrap(delivery.body.replace("inference.completed", "inference.failed"), delivery.headers, hook.secret));
      await assert.rejects(openai.webhooks.unwrap(delivery.body, delivery.headers, `whsec_${Buffer.alloc(32, 1).toString("base64")}`));
    });

    it("a background response sends response.<its status>; a response held open sends nothing", async () => {
      const user = await platform.createUser();
      await register(user.authorization, receiver.path(`responses-${backend}`));
      const client = clientFor(user.authorization);
      const held = await client.responses.create({ model: "default", input: "Tom had a ball.", max_output_tokens: 8, temperature: 0 });
      const background = await client.responses.create({ model: "default", input: "Tom had a ball.", max_output_tokens: 8, temperature: 0, background: true });
      const { event } = await eventFor(`responses-${backend}`, background.id);
      const final = await client.responses.retrieve(background.id);
      assert.equal(event.type, `response.${final.status}`);
      // The trigger writes in the finishing transaction: the held response has no outbox row at all.
      const rows = await platform.database.db.query("SELECT 1 FROM webhook_deliveries WHERE subject_id = $1", [held.id]);
      assert.equal(rows.rows.length, 0);
    });

    it("a batch sends batch.completed, and one whose file fails validation batch.failed", async () => {
      const user = await platform.createUser();
      await register(user.authorization, receiver.path(`batches-${backend}`), ["batch.completed", "batch.failed"]);
      const client = clientFor(user.authorization);
      const line = { custom_id: "a", method: "POST", url: "/v1/chat/completions", body: { model: "default", messages: [{ role: "user", content: "Hi" }], max_tokens: 6 } };
      const good = await client.files.create({ file: await toFile(Buffer.from(JSON.stringify(line)), "in.jsonl"), purpose: "batch" });
      const bad = await client.files.create({ file: await toFile(Buffer.from("not json"), "bad.jsonl"), purpose: "batch" });
      // Validated by the gateway's dispatcher after it answered validating: the event comes then.
      const failed = await client.batches.create({ input_file_id: bad.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      assert.equal(failed.status, "validating");
      assert.equal((await eventFor(`batches-${backend}`, failed.id)).event.type, "batch.failed");
      assert.equal((await client.batches.retrieve(failed.id)).status, "failed");
      const batch = await client.batches.create({ input_file_id: good.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      assert.equal((await eventFor(`batches-${backend}`, batch.id, 60_000)).event.type, "batch.completed");
      // Only the types asked for: the line's own chat request sent nothing.
      assert.deepEqual(eventsAt(`batches-${backend}`).map((e) => e.type).sort(), ["batch.completed", "batch.failed"]);
    });

    it("a receiver answering 500 for a while gets the event once it recovers, every attempt with the same webhook-id", async () => {
      const user = await platform.createUser();
      const hook = await register(user.authorization, receiver.path(`flaky-${backend}`, { kind: "fail", times: 3 }));
      const admitted = await submit(platform.url, { prompt: "Lily saw a bird", max_length: 6 }, user.authorization);
      await waitFor("the fourth attempt", () => receiver.at(`flaky-${backend}`).some((r) => r.status === 200), 30_000);
      const attempts = receiver.at(`flaky-${backend}`);
      assert.deepEqual(attempts.map((a) => a.status), [500, 500, 500, 200]);
      assert.equal(new Set(attempts.map((a) => a.headers["webhook-id"])).size, 1, "one webhook-id for every attempt");
      assert.equal(new Set(attempts.map((a) => a.body)).size, 1, "the same body every time");
      const event = (await openai.webhooks.unwrap(attempts[3]!.body, attempts[3]!.headers, hook.secret)) as unknown as Event;
      assert.equal(event.data.id, admitted.body.request_id);
      const shown = await until("the endpoint to show the delivery", async () => (await endpoints(user.authorization)).find((e) => e.last_delivered_at));
      assert.equal(shown!.status, "enabled");
      assert.match(String(shown!.last_error), /answered 500/);
      assert.ok(shown!.last_delivered_at, "last_delivered_at is set");
      assert.equal(shown!.pending_deliveries, 0);
    });

    it("a receiver that is down (nothing listening) gets the event, with the id the outbox gave it, once it comes up", async () => {
      const user = await platform.createUser();
      const probe = await startReceiver();
      const port = new URL(probe.url).port;
      await probe.close();
      await register(user.authorization, `http://127.0.0.1:${port}/down`);
      const admitted = await submit(platform.url, { prompt: "Ben ran", max_length: 6 }, user.authorization);
      await until("a refused connection to show", async () => (await endpoints(user.authorization)).find((e) => /could not connect/.test(String(e.last_error))));
      const up = await startReceiver(Number(port));
      try {
        const { delivery } = await eventFor("down", admitted.body.request_id, 30_000, up);
        const stored = await platform.database.db.query<{ event_id: string; attempts: number }>("SELECT event_id, attempts FROM webhook_deliveries WHERE subject_id = $1", [admitted.body.request_id]);
        assert.equal(delivery.headers["webhook-id"], stored.rows[0]!.event_id);
        assert.ok(Number(stored.rows[0]!.attempts) >= 2, "it was tried while down");
      } finally {
        await up.close();
      }
    });

    it("an endpoint whose deliveries fail past the max age is disabled, shows why, and gets no new events", async () => {
      const user = await platform.createUser();
      const hook = await register(user.authorization, receiver.path(`dead-${backend}`, { kind: "always-fail" }));
      // Two events: when the first is given up the second (younger) is given up with it.
      for (const prompt of ["The sun was", "The sky was"]) {
        const admitted = await submit(platform.url, { prompt, max_length: 6 }, user.authorization);
        await waitForFinal(platform.url, admitted.body.request_id, user.authorization);
      }
      const shown = await until("the endpoint to be disabled", async () => (await endpoints(user.authorization)).find((e) => e.status === "disabled"), MAX_AGE_MS + 15_000);
      assert.match(String(shown!.disabled_reason), /could not be delivered in \d+ attempts .*answered 500/);
      assert.equal(shown!.pending_deliveries, 0, "nothing waits for a disabled endpoint");
      assert.ok(receiver.at(`dead-${backend}`).length >= 3, "it was tried several times first");
      const again = await submit(platform.url, { prompt: "The moon was", max_length: 6 }, user.authorization);
      await waitForFinal(platform.url, again.body.request_id, user.authorization);
      const rows = await platform.database.db.query("SELECT 1 FROM webhook_deliveries WHERE endpoint_id = $1 AND subject_id = $2", [hook.id, again.body.request_id]);
      assert.equal(rows.rows.length, 0, "a disabled endpoint is not written to");
      const metrics = await (await fetch(`${platform.metricsUrl ?? platform.url}/metrics`)).text();
      assert.match(metrics, /webhook_deliveries_total\{result="given_up"\} [1-9]/);
      assert.match(metrics, /webhook_deliveries_total\{result="retried"\} [1-9]/);
    });

    it("a receiver that hangs holds up neither the requests nor another user's deliveries", async () => {
      const slow = await platform.createUser();
      const other = await platform.createUser();
      await register(slow.authorization, receiver.path(`hang-${backend}`, { kind: "hold" }));
      await register(other.authorization, receiver.path(`other-${backend}`));
      const first = await submit(platform.url, { prompt: "A cat", max_length: 6 }, slow.authorization);
      await waitFor("the hanging delivery", () => receiver.held(`hang-${backend}`) === 1, 30_000);
      // While it hangs, the same user's next request finishes and another user's event arrives.
      const second = await submit(platform.url, { prompt: "A dog", max_length: 6 }, slow.authorization);
      assert.equal((await waitForFinal(platform.url, second.body.request_id, slow.authorization)).status, "completed");
      const theirs = await submit(platform.url, { prompt: "A fox", max_length: 6 }, other.authorization);
      await eventFor(`other-${backend}`, theirs.body.request_id);
      assert.ok(receiver.held(`hang-${backend}`) >= 1, "the first delivery is still hanging");
      receiver.release(`hang-${backend}`);
      await waitFor("both of the slow user's events", () => {
        receiver.release(`hang-${backend}`);
        return new Set(eventsAt(`hang-${backend}`).map((e) => e.data.id)).size === 2;
      }, 30_000);
      assert.ok(eventsAt(`hang-${backend}`).some((e) => e.data.id === first.body.request_id));
    });

    it("someone else's endpoint is neither listed nor deletable (404); the owner deletes it", async () => {
      const owner = await platform.createUser();
      const stranger = await platform.createUser();
      const hook = await register(owner.authorization, receiver.path(`mine-${backend}`, { kind: "hold" }), ["inference.completed"]);
      const admitted = await submit(platform.url, { prompt: "Sam", max_length: 4 }, owner.authorization);
      // Held open, so it is still undelivered when the endpoint is deleted (however slow this machine is).
      await waitFor("the delivery to be under way", () => receiver.held(`mine-${backend}`) === 1, 30_000);
      const outbox = () => platform.database.db.query("SELECT 1 FROM webhook_deliveries WHERE endpoint_id = $1", [hook.id]);
      assert.deepEqual(await endpoints(stranger.authorization), []);
      const theirs = await api("DELETE", `/api/v1/webhooks/${hook.id}`, stranger.authorization);
      assert.equal(theirs.status, 404);
      assert.equal(theirs.body.error.code, "webhook_not_found");
      const listed = await endpoints(owner.authorization);
      assert.deepEqual(listed.map((e) => [e.id, e.events, e.status]), [[hook.id, ["inference.completed"], "enabled"]]);
      assert.equal((await outbox()).rows.length, 1, `the event about ${admitted.body.request_id} waits`);
      assert.equal("secret" in listed[0]!, false, "the secret is never shown again");
      assert.equal((await api("DELETE", `/api/v1/webhooks/${hook.id}`, owner.authorization)).status, 200);
      assert.deepEqual(await endpoints(owner.authorization), []);
      assert.equal((await outbox()).rows.length, 0, "its undelivered events went with it");
      receiver.release(`mine-${backend}`);
      assert.equal((await api("DELETE", `/api/v1/webhooks/${hook.id}`, owner.authorization)).status, 404);
    });

    it("without WEBHOOK_ALLOW_PRIVATE, private and loopback targets are refused at registration and at delivery; anonymous callers get none", async () => {
      const user = await platform.createUser();
      const settings = { ...platform.config.gateway.webhooks, allowPrivate: false };
      const app = createHttpApp({ logger: silentLogger, registries: [], bodyLimitBytes: 65_536 });
      registerWebhookRoutes(app, { config: settings, log: silentLogger, auth: new Authenticator({ users: platform.users, anonymous: { ...platform.config.gateway.anonymous, enabled: true }, cacheTtlMs: 0 }), store: new SqlWebhookStore(platform.database.db) });
      try {
        // Anonymous callers (allowed on this app) share one user id: no endpoints for them.
        const anonymous = await app.inject({ method: "POST", url: "/api/v1/webhooks", payload: { url: "https://example.com/x" } });
        assert.equal(anonymous.statusCode, 401);
        assert.equal(anonymous.json().error.code, "unauthorized");
        for (const url of [receiver.path("private"), "http://localhost:9/x", "http://[::1]/x", "http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[fe80::1]/x", "http://0.0.0.0/x", "http://[::ffff:127.0.0.1]/x"]) {
          const answer = await app.inject({ method: "POST", url: "/api/v1/webhooks", headers: { authorization: user.authorization }, payload: { url } });
          assert.equal(answer.statusCode, 400, url);
          assert.equal(answer.json().error.code, "webhook_address_refused", url);
        }
      } finally {
        await app.close();
      }
      // An endpoint stored while allowed is still refused when sent to without the setting, by address and by name.
      for (const url of [receiver.path("private"), receiver.path("private").replace("127.0.0.1", "localhost")]) {
        const sent = await sendWebhook(url, "{}", {}, { timeoutMs: 2_000, allowPrivate: false });
        assert.equal(sent.ok, false, url);
        assert.match(sent.ok ? "" : sent.error, /^refused: /, url);
      }
      assert.equal(receiver.at("private").length, 0, "nothing reached the receiver");
      assert.deepEqual(await sendWebhook(receiver.path("private"), "{}", {}, { timeoutMs: 2_000, allowPrivate: true }), { ok: true, status: 200 });
    });

    it("bad registrations get 400s with stable codes", async () => {
      const user = await platform.createUser();
      const cases: Array<[unknown, string]> = [
        [{ url: "not a url" }, "invalid_webhook_url"],
        [{ url: "ftp://example.com/x" }, "invalid_webhook_url"],
        [{ url: "http://user:pw@example.com/x" }, "invalid_webhook_url"],
        [{ url: `http://example.com/${"x".repeat(2_100)}` }, "invalid_webhook_url"],
        [{ url: receiver.path("x"), events: ["chat.completed"] }, "unknown_webhook_event"],
        [{ url: receiver.path("x"), events: [] }, "invalid_parameter"],
        [{ url: receiver.path("x"), secret: "mine" }, "unknown_field"],
        [{}, "invalid_parameter"],
      ];
      for (const [body, code] of cases) {
        const answer = await api("POST", "/api/v1/webhooks", user.authorization, body);
        assert.equal(answer.status, 400, JSON.stringify(body));
        assert.equal(answer.body.error.code, code, JSON.stringify(body));
      }
    });
  });
}
