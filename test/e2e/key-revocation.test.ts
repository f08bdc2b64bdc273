/**
 * Key revocation across replicas: two gateway processes on the real servers admit with one key; once
 * `keys revoke` has returned, both refuse it within a second.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { deleteQueues, deleteRedisKeys } from "../support/cleanup.js";
import { requireServices, serverEnv, uniqueName } from "../support/services.js";
import { freshPostgres, type TestDatabase } from "../support/databases.js";
import { freePort, runCommand, startProcess, waitForHttp, type Proc } from "../support/processes.js";
import { submit } from "../support/platform.js";

const skip = await requireServices("postgres", "redis", "rabbitmq");

describe("API key revocation reaches every gateway replica within 1 s", { skip }, () => {
  let database: TestDatabase;
  const gateways: Array<{ proc: Proc; url: string }> = [];
  const prefix = `${uniqueName("rev")}:`;
  const queues = { requests: uniqueName("rev_req"), results: uniqueName("rev_res") };
  let env: Record<string, string>;

  before(async () => {
    database = await freshPostgres();
    env = {
      ...serverEnv(database.url!, queues, prefix),
    };
    assert.equal((await runCommand(["migrate"], env)).code, 0);
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const proc = startProcess(`gateway-${i}`, ["gateway"], { ...env, PORT: String(port) });
      gateways.push({ proc, url: `http://127.0.0.1:${port}` });
    }
    await Promise.all(gateways.map((g) => waitForHttp(`${g.url}/health`, g.proc)));
  });

  after(async () => {
    for (const g of gateways) await g.proc.stop();
    await database?.drop();
    await deleteRedisKeys(prefix);
    await deleteQueues(Object.values(queues));
  });

  it("both replicas admit the key, then refuse it within 1 s of the revoke", async () => {
    await runCommand(["users", "create", "rev-user"], env);
    const created = await runCommand(["keys", "create", "rev-user"], env);
    const { api_key: apiKey, key_id: keyId } = JSON.parse(created.stdout) as { api_key: string; key_id: string };
    const authorization = `Bearer ${apiKey}`;
    for (const g of gateways) {
      // Twice each, so the second answer comes from the replica's cache.
      for (let i = 0; i < 2; i++) assert.equal((await submit(g.url, { prompt: "before the revoke", max_length: 1 }, authorization)).status, 202);
    }
    const revoked = await runCommand(["keys", "revoke", keyId], env);
    assert.equal(revoked.code, 0, revoked.stderr);
    const since = performance.now();
    const refusedAfter = await Promise.all(
      gateways.map(async (g) => {
        for (;;) {
          const answer = await submit(g.url, { prompt: "after the revoke", max_length: 1 }, authorization);
          if (answer.status === 401) {
            assert.equal(answer.body.error.code, "unauthorized");
            return performance.now() - since;
          }
          assert.equal(answer.status, 202);
          if (performance.now() - since > 5_000) return Infinity;
        }
      }),
    );
    for (const ms of refusedAfter) assert.ok(ms <= 1_000, `a replica still admitted the revoked key ${Math.round(ms)} ms after the revoke`);
  });
});
