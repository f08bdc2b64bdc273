import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ClaimAhead } from "./claim-ahead.js";

/** A claim function that records each round of claims sent in one tick. */
function recorder() {
  const sent: string[] = [];
  return { sent, claim: (id: string) => (sent.push(id), Promise.resolve(`run ${id}`)) };
}

describe("claims sent ahead, together", () => {
  it("a short line claims each message as it arrives", async () => {
    const r = recorder();
    const claims = new ClaimAhead(r.claim, 2);
    const a = claims.enter("a");
    assert.deepEqual(r.sent, ["a"]);
    assert.equal(await claims.start(a), "run a");
    const b = claims.enter("b");
    const c = claims.enter("c");
    assert.deepEqual(r.sent, ["a", "b", "c"], "two claimed messages ahead at most");
    assert.equal(await claims.start(b), "run b");
    assert.equal(await claims.start(c), "run c");
  });

  it("the back of a long line waits, then goes out in one round when it nears the front", async () => {
    const r = recorder();
    const claims = new ClaimAhead(r.claim, 2);
    const tickets = ["a", "b", "c", "d", "e", "f"].map((id) => claims.enter(id));
    assert.deepEqual(r.sent, ["a", "b"], "c to f wait: two claimed messages are before them");
    assert.equal(claims.waiting, 6);
    await claims.start(tickets[0]!);
    assert.deepEqual(r.sent, ["a", "b", "c", "d", "e", "f"], "one claimed message left before c: all four go together");
    for (const ticket of tickets.slice(1)) assert.equal(await claims.start(ticket), `run ${ticket.requestId}`);
    assert.equal(claims.waiting, 0);
  });

  it("a message that starts unclaimed claims itself and every one behind it", async () => {
    const r = recorder();
    const claims = new ClaimAhead(r.claim, 1);
    const tickets = ["a", "b", "c"].map((id) => claims.enter(id));
    assert.deepEqual(r.sent, ["a"]);
    // c starts first (out of order): it and b are claimed at once, c's first.
    assert.equal(await claims.start(tickets[2]!), "run c");
    assert.deepEqual(r.sent, ["a", "c", "b"]);
  });

  it("a failed claim fails its own start only, and is not an unhandled rejection before it", async () => {
    const claims = new ClaimAhead((id) => (id === "bad" ? Promise.reject(new Error("redis down")) : Promise.resolve(id)), 4);
    const bad = claims.enter("bad");
    const good = claims.enter("good");
    await new Promise((resolve) => setImmediate(resolve));
    await assert.rejects(claims.start(bad), /redis down/);
    assert.equal(await claims.start(good), "good");
  });

  it("refuses a bound that is not a whole number ≥ 1", () => {
    assert.throws(() => new ClaimAhead(() => Promise.resolve(1), 0), /whole number/);
    assert.throws(() => new ClaimAhead(() => Promise.resolve(1), 1.5), /whole number/);
  });
});
