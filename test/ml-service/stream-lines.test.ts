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
    const pieces = lines.slice(0, -1);
    assert.equal(pieces.map((l) => l.token).join(""), whole.output_text);
    for (let i = 1; i < pieces.length; i++) assert.ok(pieces[i]!.completion_tokens >= pieces[i - 1]!.completion_tokens, "counts only grow");
    assert.equal(pieces.at(-1)!.completion_tokens, last.token_usage!.completion_tokens);
    assert.ok(pieces.length - 1 < last.token_usage!.completion_tokens, `${pieces.length - 1} text lines for ${last.token_usage!.completion_tokens} tokens`);
  });
});
