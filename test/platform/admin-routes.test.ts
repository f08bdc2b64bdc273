/**
 * The admin routes (/api/v1/admin/*) on the assembled platform, on the real servers and embedded:
 * only ADMIN_API_KEY opens them (a user's key is 403 admin_required, none is 401); users and keys
 * made there work at once on the user routes, a revoked key stops; the queue view counts the
 * messages waiting while no worker runs, and the requests finished once one does.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { requireServices } from "../support/services.js";
import { requireStoriesModel } from "../support/model.js";
import { startPlatform, submit, waitForFinal, type Backend, type Platform } from "../support/platform.js";

const skipModel = requireStoriesModel();
const skipServers = skipModel ?? (await requireServices("postgres", "redis", "rabbitmq"));
const ADMIN_KEY = "admin-key-for-the-admin-routes-test-0123456789";

for (const backend of ["servers", "embedded"] as Backend[]) {
  describe(`admin routes on ${backend}`, { skip: backend === "servers" ? skipServers : skipModel, timeout: 120_000 }, () => {
    let platform: Platform;
    const admin = { authorization: `Bearer ${ADMIN_KEY}` };

    async function call(method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; body: any }> {
      const response = await fetch(`${platform.url}${path}`, {
        method,
        headers: { ...headers, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: response.status, body: await response.json() };
    }

    before(async () => {
      // No worker until the queue test starts one: submitted requests wait in the queue.
      platform = await startPlatform({ backend, consumers: false, env: { ADMIN_API_KEY: ADMIN_KEY } });
    });
    after(async () => platform?.stop());

    it("no key is 401; a user's key, or a wrong admin key, is 403 admin_required on every admin route", async () => {
      const user = await platform.createUser();
      const routes: Array<[string, string]> = [
        ["GET", "/api/v1/admin/users"],
        ["POST", "/api/v1/admin/users"],
        ["POST", "/api/v1/admin/users/someone/keys"],
        ["DELETE", "/api/v1/admin/keys/key_000000000000"],
        ["GET", "/api/v1/admin/tiers"],
        ["GET", "/api/v1/admin/queue"],
      ];
      for (const [method, path] of routes) {
        const body = method === "POST" && path.endsWith("/users") ? { user_id: "intruder" } : undefined;
        assert.equal((await call(method, path, {}, body)).body.error.code, "unauthorized", `${method} ${path}`);
        for (const headers of [{ authorization: user.authorization }, { authorization: `Bearer ${ADMIN_KEY}x` }]) {
          const refused = await call(method, path, headers, body);
          assert.equal(refused.status, 403, `${method} ${path}`);
          assert.equal(refused.body.error.code, "admin_required");
        }
      }
      assert.equal(await platform.users.findUser("intruder"), null, "nothing was created by a refused call");
    });

    it("create a user and a key (shown once); the key works on the user routes; revoked, it stops", async () => {
      const created = await call("POST", "/api/v1/admin/users", admin, { user_id: "carol", tier: "free" });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.deepEqual(created.body, { user_id: "carol", tier: "free" });
      const again = await call("POST", "/api/v1/admin/users", admin, { user_id: "carol" });
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, "conflict");
      const badId = await call("POST", "/api/v1/admin/users", admin, { user_id: "bad id;" });
      assert.equal(badId.status, 400);
      assert.equal(badId.body.error.details.field, "user_id");
      const noTier = await call("POST", "/api/v1/admin/users", admin, { user_id: "dave", tier: "platinum" });
      assert.equal(noTier.status, 404);
      assert.equal(noTier.body.error.code, "not_found");

      const key = await call("POST", "/api/v1/admin/users/carol/keys", admin);
      assert.equal(key.status, 201);
      assert.match(key.body.api_key, /^mli_/);
      assert.match(key.body.key_id, /^key_/);
      const listed = await call("GET", "/api/v1/admin/users", admin);
      const carol = listed.body.data.find((u: { user_id: string }) => u.user_id === "carol");
      assert.equal(carol.active_keys, 1);
      assert.ok(!JSON.stringify(listed.body).includes(key.body.api_key), "the key is never shown again");

      const quota = await call("GET", "/api/v1/quota", { authorization: `Bearer ${key.body.api_key}` });
      assert.equal(quota.status, 200);
      assert.equal(quota.body.user_id, "carol");
      assert.equal((await call("POST", "/api/v1/admin/users/nobody/keys", admin)).body.error.code, "not_found");

      const revoked = await call("DELETE", `/api/v1/admin/keys/${key.body.key_id}`, admin);
      assert.deepEqual(revoked.body, { key_id: key.body.key_id, revoked: true });
      assert.equal((await call("GET", "/api/v1/quota", { authorization: `Bearer ${key.body.api_key}` })).status, 401);
      assert.equal((await call("DELETE", `/api/v1/admin/keys/${key.body.key_id}`, admin)).status, 404, "revoked once only");
    });

    it("tiers are listed with their limits (null: unlimited)", async () => {
      const tiers = await call("GET", "/api/v1/admin/tiers", admin);
      assert.equal(tiers.status, 200);
      const free = tiers.body.data.find((t: { name: string }) => t.name === "free");
      assert.ok(free, JSON.stringify(tiers.body));
      assert.deepEqual(Object.keys(free.limits).sort(), ["daily_requests", "daily_tokens", "monthly_requests", "monthly_tokens"]);
    });

    it("the queue: requests waiting with no worker are its depth; once a worker runs them they are the recent throughput", async () => {
      const user = await platform.createUser();
      const before = (await call("GET", "/api/v1/admin/queue", admin)).body;
      assert.equal(before.queue, platform.queues.requests);
      const ids: string[] = [];
      for (const prompt of ["Once upon a time", "The little dog", "A cat"]) {
        const admitted = await submit(platform.url, { prompt, max_length: 8 }, user.authorization);
        assert.equal(admitted.status, 202);
        ids.push(admitted.body.request_id);
      }
      const waiting = (await call("GET", "/api/v1/admin/queue", admin)).body;
      assert.equal(waiting.ready - before.ready, 3, JSON.stringify(waiting));
      assert.equal(waiting.open_requests - before.open_requests, 3);

      await platform.startConsumers();
      for (const id of ids) assert.equal((await waitForFinal(platform.url, id, user.authorization, 60_000)).status, "completed");
      const after = (await call("GET", "/api/v1/admin/queue", admin)).body;
      assert.equal(after.ready, 0);
      assert.equal(after.open_requests, 0);
      assert.ok(after.finished_recently >= 3, JSON.stringify(after));
      assert.equal(after.window_seconds, 60);
      assert.equal(after.throughput_per_second, Math.round((after.finished_recently / 60) * 1000) / 1000);
    });
  });
}
