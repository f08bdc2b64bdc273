import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CallSlots } from "./call-slots.js";

describe("CallSlots", () => {
  it("grants at most its slots at once, the next in arrival order as each is released", async () => {
    const slots = new CallSlots(2);
    const order: number[] = [];
    const releases = await Promise.all([slots.acquire(), slots.acquire()]);
    const later = [3, 4].map((n) => slots.acquire().then((release) => (order.push(n), release)));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, [], "no third call while two run");
    assert.equal(slots.queued, 2);
    releases[0]!();
    releases[0]!(); // twice frees one slot only
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, [3]);
    releases[1]!();
    const [r3, r4] = await Promise.all(later);
    assert.deepEqual(order, [3, 4]);
    r3!();
    r4!();
    const again = await Promise.all([slots.acquire(), slots.acquire()]);
    assert.equal(again.length, 2, "every slot is free again");
  });

  it("refuses a bound that is not a whole number ≥ 1", () => {
    assert.throws(() => new CallSlots(0));
    assert.throws(() => new CallSlots(1.5));
  });
});
