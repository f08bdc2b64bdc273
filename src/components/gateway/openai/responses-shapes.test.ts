/**
 * The Responses shapes and events: typed as the `openai` package's types (with the `output_text`
 * the SDK adds itself), numbered so that any resume sees every event exactly once, and read back by
 * the real SDK (its accumulator validates every event) through a fetch that answers with our SSE.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import OpenAI from "openai";
import type { Response, ResponseStreamEvent } from "openai/resources/responses/responses";
import type { StreamEvent } from "../../../domain/ports.js";
import {
  after,
  eventsFor,
  initialStreamState,
  preludeEvents,
  replayEvents,
  requestIdOfResponse,
  responseId,
  responseObject,
  responseStatus,
  sseEvent,
  type EmittedEvent,
  type ResponseFacts,
  type WireResponse,
} from "./responses-shapes.js";

const requestId = "0b6f4a1e-5c2d-4e8f-9a7b-3c1d2e4f5a6b";
const hex = "0b6f4a1e5c2d4e8f9a7b3c1d2e4f5a6b";
const usage = { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 };
const facts: ResponseFacts = {
  requestId,
  createdAt: new Date("2026-12-01T10:00:00Z"),
  model: "demo",
  instructions: "Be brief.",
  metadata: { app: "test" },
  maxOutputTokens: 64,
  temperature: 0.5,
  topP: 1,
  background: false,
};

// ---- compile-time (no casts): with the `output_text` the SDK adds itself, every response and event
// we send is the SDK's own type; a field missing or mistyped in a builder fails `tsc` here.
const asSdkResponse = (r: WireResponse): Response => ({ ...r, output_text: "" });
const asSdkEvent = (e: EmittedEvent): ResponseStreamEvent => ("response" in e ? { ...e, response: asSdkResponse(e.response) } : e);

type Final = Extract<StreamEvent, { type: "final" }>;
const final = (seq: number, extra: Partial<Final> = {}): Final => ({ seq, type: "final", status: "completed", usage, finishReason: "stop", error: null, ...extra });
const deltas = (...texts: string[]): StreamEvent[] => texts.map((text, i) => ({ seq: i + 1, type: "delta", text }));

function clientAnswering(body: string, sse: boolean): OpenAI {
  return new OpenAI({
    apiKey: "test",
    baseURL: "http://gateway.invalid/v1",
    maxRetries: 0,
    fetch: async () => new globalThis.Response(body, { status: 200, headers: { "content-type": sse ? "text/event-stream" : "application/json" } }),
  });
}

describe("ids", () => {
  it("resp_ and msg_ carry the request id's hex digits, and resp_ leads back to it", () => {
    assert.equal(responseId(requestId), `resp_${hex}`);
    assert.equal(requestIdOfResponse(`resp_${hex}`), requestId);
    assert.equal(requestIdOfResponse(`resp_${hex.toUpperCase()}`), requestId);
    for (const junk of ["", "resp_", `resp_${hex}0`, `resp_${requestId}`, `msg_${hex}`, `chatcmpl-${requestId}`, `resp_${"g".repeat(32)}`]) {
      assert.equal(requestIdOfResponse(junk), null, junk);
    }
  });
});

describe("the response object", () => {
  it("a completed response is OpenAI's shape, and the SDK reads it with output_text", async () => {
    const r = responseObject(facts, { status: "completed", text: "Hi!", usage, error: null, completedAt: new Date("2026-12-01T10:00:02Z") });
    assert.deepEqual(r, {
      id: `resp_${hex}`,
      object: "response",
      created_at: 1796119200,
      completed_at: 1796119202,
      status: "completed",
      background: false,
      model: "demo",
      output: [
        {
          id: `msg_${hex}`,
          type: "message",
          role: "assistant",
          status: "completed",
          content: [{ type: "output_text", text: "Hi!", annotations: [], logprobs: [] }],
        },
      ],
      error: null,
      incomplete_details: null,
      instructions: "Be brief.",
      metadata: { app: "test" },
      max_output_tokens: 64,
      temperature: 0.5,
      top_p: 1,
      parallel_tool_calls: false,
      tool_choice: "none",
      tools: [],
      text: { format: { type: "text" } },
      truncation: "disabled",
      access_programs: null,
      usage: {
        input_tokens: 5,
        input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
        output_tokens: 3,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: 8,
      },
    });
    assert.equal("output_text" in r, false, "output_text is the SDK's to add");
    const read = await clientAnswering(JSON.stringify(r), false).responses.retrieve(`resp_${hex}`);
    assert.equal(read.output_text, "Hi!");
    assert.deepEqual({ ...read, output_text: undefined }, { ...r, output_text: undefined });
  });

  it("length is incomplete for max_output_tokens; failed carries the error; no text is no output", () => {
    assert.equal(responseStatus("completed", "length"), "incomplete");
    assert.equal(responseStatus("completed", "stop"), "completed");
    assert.equal(responseStatus("processing", null), "in_progress");
    assert.equal(responseStatus("cancelled", "cancelled"), "cancelled");
    const incomplete = responseObject(facts, { status: "incomplete", text: "Hi", usage, error: null, completedAt: new Date() });
    assert.deepEqual(incomplete.incomplete_details, { reason: "max_output_tokens" });
    assert.equal(incomplete.output[0]?.type === "message" && incomplete.output[0].status, "incomplete");
    assert.equal("completed_at" in incomplete, false, "completed_at only when completed");
    const failed = responseObject(facts, { status: "failed", text: null, usage: null, error: { code: "timeout", message: "too slow" } });
    assert.deepEqual(failed.error, { code: "server_error", message: "too slow", type: "timeout" });
    assert.deepEqual(failed.output, []);
    assert.equal("usage" in failed, false);
    const charged = responseObject(facts, { status: "failed", text: null, usage: null, error: { code: "prompt_too_long", message: "m" } });
    assert.equal(charged.error?.code, "invalid_prompt");
    assert.deepEqual(responseObject({ ...facts, metadata: null }, { status: "queued", text: null, usage: null, error: null }).metadata, {}, "OpenAI's empty metadata");
  });

  it("an extension's fields come last: the same JSON as the response with them spread after it", () => {
    const outcome = fc.record({
      status: fc.constantFrom("queued", "in_progress", "completed", "failed", "cancelled", "incomplete" as const),
      text: fc.option(fc.string(), { nil: null }),
      usage: fc.option(fc.record({ prompt_tokens: fc.nat(), completion_tokens: fc.nat(), total_tokens: fc.nat() }), { nil: null }),
      error: fc.option(fc.record({ code: fc.constantFrom("timeout", "prompt_too_long", "quota_exceeded"), message: fc.string() }), { nil: null }),
      completedAt: fc.option(fc.date({ noInvalidDate: true }), { nil: null }),
    });
    const eta = fc.oneof(
      fc.constant({ estimated_start_at: null, estimated_finish_at: null }),
      fc.record({ estimated_start_at: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), estimated_finish_at: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()) }),
    );
    const generatedFacts = fc.record({
      requestId: fc.uuid(),
      createdAt: fc.date({ noInvalidDate: true }),
      model: fc.string(),
      instructions: fc.option(fc.string(), { nil: null }),
      metadata: fc.option(fc.dictionary(fc.string(), fc.string()).map((m) => ({ ...m })), { nil: null }),
      maxOutputTokens: fc.option(fc.nat(), { nil: null }),
      temperature: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: null }),
      topP: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: null }),
      background: fc.boolean(),
    });
    fc.assert(
      fc.property(generatedFacts, outcome, eta, (f, o, e) => {
        const extended = responseObject(f, o, e);
        assert.equal(JSON.stringify(extended), JSON.stringify({ ...responseObject(f, o), ...e }));
        assert.deepEqual(Object.keys(extended).slice(-2), ["estimated_start_at", "estimated_finish_at"]);
        assert.equal(JSON.stringify(responseObject(f, o, undefined)), JSON.stringify(responseObject(f, o)));
      }),
    );
  });
});

describe("streamed events", () => {
  const stream = [...deltas("Hel", "", "lo"), final(4)];
  const { events: full } = replayEvents(facts, stream);

  it("are numbered 0.. with no gap, in OpenAI's order", () => {
    assert.deepEqual(
      full.map((e) => e.sequence_number),
      full.map((_, i) => i),
    );
    assert.deepEqual(
      full.map((e) => e.type),
      [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
      ],
    );
    const delta = full[4];
    assert.deepEqual(delta, { type: "response.output_text.delta", sequence_number: 4, item_id: `msg_${hex}`, output_index: 0, content_index: 0, delta: "Hel", logprobs: [] });
    const done = full.at(-1);
    assert.ok(done && "response" in done);
    assert.deepEqual(done.response, responseObject(facts, { status: "completed", text: "Hello", usage, error: null }));
  });

  it("any resume after N, from any partial first run, joins into the full list exactly once", () => {
    const last = full.length - 1;
    // The first connection saw only the stream's first `seen` events (it dropped, or the rest was not written yet).
    for (let seen = 0; seen <= stream.length; seen++) {
      const firstRun = replayEvents(facts, stream.slice(0, seen)).events;
      for (let n = -1; n <= firstRun.at(-1)!.sequence_number; n++) {
        const kept = firstRun.filter((e) => e.sequence_number <= n);
        const resumed = after(replayEvents(facts, stream).events, n);
        assert.deepEqual([...kept, ...resumed], full, `seen ${seen}, starting_after ${n}`);
      }
    }
    assert.deepEqual(after(full, last), []);
    assert.deepEqual(after(full, null), full);
  });

  it("a redelivered stream event adds nothing; a gap or an event after the final throws", () => {
    let state = initialStreamState();
    const out: EmittedEvent[] = preludeEvents(facts);
    for (const e of [stream[0]!, stream[0]!, stream[1]!, stream[0]!, stream[2]!, stream[3]!, stream[3]!]) {
      const next = eventsFor(facts, state, e);
      state = next.state;
      out.push(...next.events);
    }
    assert.deepEqual(out, full);
    assert.throws(() => eventsFor(facts, initialStreamState(), stream[1]!), /a gap/);
    assert.throws(() => eventsFor(facts, state, { seq: 5, type: "delta", text: "x" }), /after the final/);
  });

  it("the prelude depends on the facts only; background is created queued", () => {
    assert.deepEqual(preludeEvents(facts), full.slice(0, 4));
    const bg = preludeEvents({ ...facts, background: true });
    assert.deepEqual(
      bg.map((e) => ("response" in e ? e.response.status : e.type)),
      ["queued", "in_progress", "response.output_item.added", "response.content_part.added"],
    );
  });

  it("each final maps to its terminal event; cancelled is response.incomplete with status cancelled", () => {
    const terminal = (f: Final) => replayEvents(facts, [...deltas("ab"), f]).events.at(-1)!;
    const cases: Array<[Final, string, string, string]> = [
      [final(2, { finishReason: "length" }), "response.incomplete", "incomplete", "incomplete"],
      [final(2, { status: "failed", finishReason: null, error: { code: "ml_unreachable", message: "down" } }), "response.failed", "failed", "incomplete"],
      [final(2, { status: "cancelled", finishReason: "cancelled", usage: null }), "response.incomplete", "cancelled", "incomplete"],
      [final(2), "response.completed", "completed", "completed"],
    ];
    for (const [f, type, status, itemStatus] of cases) {
      const e = terminal(f);
      assert.equal(e.type, type);
      assert.ok("response" in e);
      assert.equal(e.response.status, status);
      const item = e.response.output[0];
      assert.equal(item?.type === "message" && item.status, itemStatus);
      assert.equal(e.sequence_number, 3 + 2 + 3);
    }
    const cancelled = terminal(cases[2]![0]);
    assert.ok("response" in cancelled);
    assert.equal(cancelled.response.incomplete_details, null, "a cancel is not a token limit");
  });

  it("SSE frames name the event and hold one JSON line", () => {
    assert.equal(sseEvent(full[4]!), `event: response.output_text.delta\ndata: ${JSON.stringify(full[4])}\n\n`);
  });

  it("the SDK's raw stream yields exactly our events, and its helper builds the final response", async () => {
    const sse = full.map(sseEvent).join("");
    const raw = await clientAnswering(sse, true).responses.create({ model: "demo", input: "x", stream: true });
    const seen: ResponseStreamEvent[] = [];
    for await (const e of raw) seen.push(e);
    assert.deepEqual(seen, full);
    assert.deepEqual(full.map(asSdkEvent).map((e) => e.type), seen.map((e) => e.type));
    for (const [f, status] of [
      [final(4), "completed"],
      [final(4, { finishReason: "length" }), "incomplete"],
      [final(4, { status: "cancelled", finishReason: "cancelled", usage: null }), "cancelled"],
      [final(4, { status: "failed", finishReason: null, usage: null, error: { code: "timeout", message: "t" } }), "failed"],
    ] as const) {
      const body = replayEvents(facts, [...deltas("Hel", "", "lo"), f]).events.map(sseEvent).join("");
      const helper = clientAnswering(body, true).responses.stream({ model: "demo", input: "x" });
      const response = await helper.finalResponse();
      assert.equal(response.status, status);
      assert.equal(response.output_text, "Hello", status);
    }
  });

  it("the SDK's resume helper (full replay, filtered at starting_after) emits only what follows N", async () => {
    const body = full.map(sseEvent).join("");
    for (const n of [0, 3, 5, full.length - 2]) {
      const helper = clientAnswering(body, true).responses.stream({ response_id: responseId(requestId), starting_after: n });
      const seen: number[] = [];
      helper.on("event", (e) => seen.push(e.sequence_number));
      assert.equal((await helper.finalResponse()).output_text, "Hello");
      assert.deepEqual(seen, after(full, n).map((e) => e.sequence_number), `starting_after ${n}`);
    }
  });
});
