/**
 * SharedSubscriptions on a real Redis connection: channels (un)subscribed at the same moment share
 * one command, and a channel subscribed again before its UNSUBSCRIBE went out stays subscribed.
 * The connection's subscribe and unsubscribe are counted, not replaced: every command still reaches Redis.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { SharedSubscriptions } from "../../src/adapters/redis/shared-subscriptions.js";
import { requireServices, TEST_URLS } from "../support/services.js";
import { waitFor } from "../support/wait.js";

const skip = await requireServices("redis");

describe("shared Redis subscriptions", { skip }, () => {
  let sub: Redis;
  let raw: Redis;
  const commands: Array<{ command: "subscribe" | "unsubscribe"; channels: string[] }> = [];
  const received: Array<[string, string]> = [];
  let shared: SharedSubscriptions<() => void>;

  before(async () => {
    sub = new Redis(TEST_URLS.redis);
    raw = new Redis(TEST_URLS.redis);
    for (const command of ["subscribe", "unsubscribe"] as const) {
      const real = sub[command].bind(sub) as (...channels: string[]) => Promise<unknown>;
      (sub as unknown as Record<string, unknown>)[command] = (...channels: string[]) => {
        commands.push({ command, channels });
        return real(...channels);
      };
    }
    sub.on("message", (channel: string, message: string) => received.push([channel, message]));
    shared = new SharedSubscriptions(sub, () => false);
  });
  after(() => {
    sub?.disconnect();
    raw?.disconnect();
  });

  const subscribers = async (channel: string) => Number(((await raw.call("PUBSUB", "NUMSUB", channel)) as [string, number])[1]);

  it("twenty channels subscribed at once are one SUBSCRIBE, and unsubscribed at once one UNSUBSCRIBE", async () => {
    commands.length = 0;
    const channels = Array.from({ length: 20 }, () => `t:${randomUUID()}`);
    const offs = await Promise.all(channels.map((c) => shared.add(c, () => undefined)));
    assert.deepEqual(commands, [{ command: "subscribe", channels }]);
    for (const c of channels) assert.equal(await subscribers(c), 1, `${c} is live once add() resolved`);
    await Promise.all(offs.map((off) => off()));
    assert.equal(commands.length, 2);
    assert.deepEqual(commands[1], { command: "unsubscribe", channels });
    for (const c of channels) assert.equal(await subscribers(c), 0, `${c} is gone once its remover resolved`);
  });

  it("a channel subscribed again before its UNSUBSCRIBE went out keeps its subscription and its messages", async () => {
    commands.length = 0;
    const channel = `t:${randomUUID()}`;
    const off = await shared.add(channel, () => undefined);
    const leaving = off();
    const again = await shared.add(channel, () => undefined);
    await leaving;
    assert.deepEqual(commands.map((c) => c.command), ["subscribe"], "no UNSUBSCRIBE went out, no second SUBSCRIBE either");
    assert.equal(await subscribers(channel), 1);
    await raw.publish(channel, "still here");
    await waitFor("the message", () => received.some(([c, m]) => c === channel && m === "still here"), 5_000);
    await again();
    assert.equal(await subscribers(channel), 0);
  });
});
