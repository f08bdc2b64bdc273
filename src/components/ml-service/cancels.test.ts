import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CancellableCalls } from "./cancels.js";

describe("whole calls cancellable by id", () => {
  it("a cancel aborts the call with that id only, and a disconnect aborts it too", () => {
    const calls = new CancellableCalls();
    const a = calls.track("a", new AbortController().signal);
    const b = calls.track("b", new AbortController().signal);
    assert.equal(calls.cancel("a"), true);
    assert.equal(a.signal.aborted, true);
    assert.equal(b.signal.aborted, false);
    const hangUp = new AbortController();
    const c = calls.track("c", hangUp.signal);
    hangUp.abort();
    assert.equal(c.signal.aborted, true);
    for (const call of [a, b, c]) call.done();
    assert.equal(calls.size, 0);
  });

  it("a cancel that comes before its call stops the call as it starts, once, within a minute", () => {
    let now = 0;
    const calls = new CancellableCalls(() => now);
    assert.equal(calls.cancel("early"), false);
    assert.equal(calls.track("early", new AbortController().signal).signal.aborted, true);
    assert.equal(calls.track("early", new AbortController().signal).signal.aborted, false, "remembered for one call");
    calls.cancel("late");
    now = 60_001;
    assert.equal(calls.track("late", new AbortController().signal).signal.aborted, false, "forgotten after a minute");
  });

  it("a call without a usable id is not tracked", () => {
    const calls = new CancellableCalls();
    for (const id of [undefined, "", "x".repeat(129)]) calls.track(id, new AbortController().signal);
    assert.equal(calls.size, 0);
    assert.equal(calls.cancel(""), false);
  });
});
