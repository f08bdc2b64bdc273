import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MemoryRequestStreams } from "../adapters/memory/request-streams.js";
import { MemoryEventBus } from "../adapters/memory/event-bus.js";
import { followOrRecover } from "./follow-or-recover.js";
import type { RequestView, StreamEvent } from "./ports.js";

const ID = "7d0e6f7e-58a4-4a43-9a43-2a2c5a0c9f11";

function view(overrides: Partial<RequestView>): RequestView {
  return {
    requestId: ID, userId: "u", model: "m", estimatedTokens: 10, window: { day: "2026-12-02", month: "2026-12" },
    createdAt: new Date(), status: "queued", published: true, startedAt: null, completedAt: null, outputText: null, outputs: null,
    usage: null, error: null, finishReason: null, streamTokens: true, ...overrides,
  };
}

async function collect(events: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

const usage = { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 };

describe("following a request's stream, with the store as the fallback", () => {
  it("serves the stream as it is when it is whole", async () => {
    const streams = new MemoryRequestStreams();
    const deps = { streams, events: new MemoryEventBus(), requests: { view: async () => view({}) }, recheckMs: 50 };
    await streams.append(ID, [
      { seq: 1, type: "delta", text: "Once" },
      { seq: 2, type: "delta", text: " upon" },
      { seq: 3, type: "final", status: "completed", usage, finishReason: "stop", error: null },
    ]);
    const events = await collect(followOrRecover(deps, ID, 0, new AbortController().signal));
    assert.deepEqual(events.map((e) => e.seq), [1, 2, 3]);
  });

  it("a final event that never reached the stream comes from the store, with the text not yet sent", async () => {
    const streams = new MemoryRequestStreams();
    let stored = view({});
    const deps = { streams, events: new MemoryEventBus(), requests: { view: async () => stored }, recheckMs: 20 };
    await streams.append(ID, [{ seq: 1, type: "delta", text: "Once" }]);
    const following = collect(followOrRecover(deps, ID, 0, new AbortController().signal, 50));
    stored = view({ status: "completed", outputText: "Once upon a time", usage, finishReason: "length" });
    const events = await following;
    assert.deepEqual(events, [
      { seq: 1, type: "delta", text: "Once" },
      { seq: 2, type: "delta", text: " upon a time" },
      { seq: 3, type: "final", status: "completed", usage, finishReason: "length", error: null },
    ]);
  });

  it("events trimmed from the stream: the store completes it", async () => {
    const streams = new MemoryRequestStreams({ bound: 2 });
    const stored = view({ status: "completed", outputText: "abcd", usage, finishReason: "stop" });
    const deps = { streams, events: new MemoryEventBus(), requests: { view: async () => stored }, recheckMs: 20 };
    await streams.append(ID, [1, 2, 3, 4].map((seq) => ({ seq, type: "delta" as const, text: "abcd"[seq - 1] as string })));
    const events = await collect(followOrRecover(deps, ID, 0, new AbortController().signal, 50));
    assert.deepEqual(events.at(-1), { seq: 2, type: "final", status: "completed", usage, finishReason: "stop", error: null });
    assert.equal(events.filter((e) => e.type === "delta").map((e) => (e as { text: string }).text).join(""), "abcd");
  });

  it("ends when the client leaves, and does not wait on the store", async () => {
    const streams = new MemoryRequestStreams();
    const deps = { streams, events: new MemoryEventBus(), requests: { view: async () => view({}) }, recheckMs: 20 };
    const leave = new AbortController();
    const following = collect(followOrRecover(deps, ID, 0, leave.signal, 50));
    await streams.append(ID, [{ seq: 1, type: "delta", text: "x" }]);
    leave.abort();
    const events = await following;
    assert.ok(events.length <= 1);
  });
});
