/**
 * Failures are charged by cause: a request that fails on its own input (a prompt too long for the
 * model's context) counts against the request limits with no tokens; the ledger says so, and the
 * counters equal the ledger. The model is real: the ML Service itself refuses the prompt.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startPlatform, submit, waitForFinal, type Backend, type Platform } from "../support/platform.js";
import { requireServices } from "../support/services.js";
import { requireStoriesModel } from "../support/model.js";

const skipModel = requireStoriesModel();
const skipServers = skipModel ?? (await requireServices("postgres", "redis", "rabbitmq"));
// Far more tokens than the model's context, though under the gateway's MAX_PROMPT_CHARS.
const TOO_LONG = "word ".repeat(3_000);

for (const backend of ["embedded", "servers"] as Backend[]) {
  describe(`failures charged by cause on ${backend}`, { skip: backend === "servers" ? skipServers : skipModel }, () => {
    let platform: Platform;
    before(async () => {
      platform = await startPlatform({ backend });
    });
    after(async () => {
      await platform?.stop();
    });

    it("prompts the model refuses as too long count against a 10-a-day limit; the 11th is 429", async () => {
      const user = await platform.createUser({ dailyRequests: 10 });
      const answers = await Promise.all(Array.from({ length: 10 }, () => submit(platform.url, { prompt: TOO_LONG, max_length: 5 }, user.authorization)));
      assert.deepEqual(answers.map((a) => a.status), Array(10).fill(202));
      for (const a of answers) {
        const final = await waitForFinal(platform.url, a.body.request_id, user.authorization, 60_000);
        assert.equal(final.status, "failed");
        assert.equal(final.error?.code, "prompt_too_long");
      }
      const usage = await platform.quota.usage(user.userId, new Date());
      assert.deepEqual(usage.daily, { requests: 10, tokensUsed: 0, tokensReserved: 0 });
      const eleventh = await submit(platform.url, { prompt: "Once upon a time", max_length: 5 }, user.authorization);
      assert.equal(eleventh.status, 429);
      assert.equal(eleventh.body.error.code, "quota_exceeded");
      // The durable record agrees: ten ledger rows with no tokens, so a rebuilt quota says the same.
      const ledger = await platform.database.db.query<{ n: number; tokens: string }>(
        "SELECT COUNT(*)::int AS n, COALESCE(SUM(total_tokens), 0)::bigint AS tokens FROM usage_ledger WHERE user_id = $1",
        [user.userId],
      );
      assert.deepEqual({ n: ledger.rows[0]!.n, tokens: Number(ledger.rows[0]!.tokens) }, { n: 10, tokens: 0 });
    });
  });
}
