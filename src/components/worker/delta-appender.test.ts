import { describe, it } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { MemoryRequestStreams } from "../../adapters/memory/request-streams.js";
import { DeltaAppender } from "./delta-appender.js";

const ID = "5f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f";
const texts = async (streams: MemoryRequestStreams) => (await streams.read(ID, 0, 100)).map((e) => (e.type === "delta" ? e.text : "?"));

describe("token deltas on their way to the stream", () => {
  it("the first goes out at once; later ones within the interval become one delta; nothing is lost or reordered", async () => {
    const streams = new MemoryRequestStreams();
    const deltas = new DeltaAppender(streams, ID, pino({ level: "silent" }), 10_000);
    deltas.add("Once");
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(await texts(streams), ["Once"], "the first delta does not wait");
    for (const t of [" upon", " a", " time"]) deltas.add(t);
    assert.deepEqual(await texts(streams), ["Once"], "the rest waits for the interval");
    assert.equal(await deltas.flush(), 2);
    const events = await streams.read(ID, 0, 100);
    assert.deepEqual(events.map((e) => e.seq), [1, 2]);
    assert.deepEqual(await texts(streams), ["Once", " upon a time"]);
  });

  it("with no interval, every delta goes out as soon as the one before is stored", async () => {
    const streams = new MemoryRequestStreams();
    const deltas = new DeltaAppender(streams, ID, pino({ level: "silent" }), 0);
    for (const t of ["a", "b", "c", "d"]) deltas.add(t);
    const last = await deltas.flush();
    assert.equal((await texts(streams)).join(""), "abcd");
    assert.equal(last, (await streams.read(ID, 0, 100)).length);
  });
});
