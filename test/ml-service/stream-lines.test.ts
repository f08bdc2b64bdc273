/**
 * `/inference` with `stream: true` and ML_STREAM_FLUSH_MS: the first line at once (the prompt's
 * tokens), then the text of a few tokens per line, with cumulative counts; nothing lost, the last
 * line's counts equal the usage. Real model, real HTTP.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMlService } from "../../src/components/ml-service/index.js";
import { requireStoriesModel } from "../support/model.js";
import { silentLogger } from "../../src/observability/logger.js";
import { storiesConfig } from "./helpers.js";

const skip = requireStoriesModel();

describe("streamed /inference lines gather the tokens of an interval", { skip }, () => {
  let ml: Awaited<ReturnType<typeof startMlService>>;
  before(async () => {
    ml = await startMlService(storiesConfig({ streamFlushMs: 40, contextSize: 1024 }), { logger: silentLogger });
    await ml.ready;
  });
  after(async () => ml?.stop());

  it("fewer lines than tokens, the text whole, the counts cumulative and exact at the end", async () => {
    const body = { prompt: "Once upon a time", max_length: 200, temperature: 0, stream: true };
    const whole = (await (await fetch(`${ml.url}/inference`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, stream: false }) })).json()) as { output_text: string; token_usage: { completion_tokens: number } };
    const text = await (await fetch(`${ml.url}/inference`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).text();
    const lines = text.trim().split("\n").map((l) => JSON.parse(l) as { token: string; is_finished: boolean; prompt_tokens: number; completion_tokens: number; token_usage?: { completion_tokens: number } });
    const last = lines.at(-1)!;
    assert.equal(last.is_finished, true);
    assert.equal(lines[0]!.completion_tokens, 0, "the first line comes before any token");
    assert.ok(lines[0]!.prompt_tokens > 0);
    assert.equal(lines.map((l) => l.token).join(""), whole.output_text, "the text of every line, the last included, is the whole text");
    for (let i = 1; i < lines.length; i++) assert.ok(lines[i]!.completion_tokens >= lines[i - 1]!.completion_tokens, "counts only grow");
    assert.equal(last.completion_tokens, last.token_usage!.completion_tokens);
    assert.ok(lines.length - 2 < last.token_usage!.completion_tokens, `${lines.length - 2} text lines for ${last.token_usage!.completion_tokens} tokens`);
  });

  it("with stream_interval_ms longer than the generation, the answer is its last line alone, sent whole", async () => {
    const body = { prompt: "Once upon a time", max_length: 40, temperature: 0 };
    const whole = (await (await fetch(`${ml.url}/inference`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).json()) as { output_text: string; token_usage: { prompt_tokens: number; completion_tokens: number } };
    const answer = await fetch(`${ml.url}/inference`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, stream: true, stream_interval_ms: 30_000 }) });
    assert.ok(answer.headers.get("content-length"), "one piece with its length, not a chunked stream");
    const lines = (await answer.text()).trim().split("\n").map((l) => JSON.parse(l) as { token: string; is_finished: boolean; completion_tokens: number; token_usage: { completion_tokens: number } });
    assert.equal(lines.length, 1, "no progress line before the last");
    assert.equal(lines[0]!.is_finished, true);
    assert.equal(lines[0]!.token, whole.output_text);
    assert.deepEqual(lines[0]!.token_usage, { ...whole.token_usage, total_tokens: whole.token_usage.prompt_tokens + whole.token_usage.completion_tokens });
  });

  it("with stream_interval_ms 0, a line for about every token", async () => {
    const body = { prompt: "Once upon a time", max_length: 200, temperature: 0, stream: true, stream_interval_ms: 0 };
    const text = await (await fetch(`${ml.url}/inference`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).text();
    const lines = text.trim().split("\n").map((l) => JSON.parse(l) as { completion_tokens: number; is_finished: boolean });
    assert.ok(lines.length > 10, `a line per token or so (${lines.length})`);
  });

  it("stream_interval_ms out of range is refused", async () => {
    const answer = await fetch(`${ml.url}/inference`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: "x", stream: true, stream_interval_ms: -1 }) });
    assert.equal(answer.status, 400);
  });
});
