import { test } from "node:test";
import assert from "node:assert/strict";
import { generationRequests } from "./sampling.js";

const params = { maxLength: 8, temperature: 1, topP: 0.9, topK: 40, repetitionPenalty: 1.1, numReturnSequences: 3 };

test("one engine request per sequence, the parameters carried over", () => {
  const requests = generationRequests({ ...params, stop: ["\n"] }, { prompt: "hi" });
  assert.equal(requests.length, 3);
  for (const r of requests) {
    assert.deepEqual(r, { maxLength: 8, temperature: 1, topP: 0.9, topK: 40, repetitionPenalty: 1.1, stop: ["\n"], input: { prompt: "hi" } });
  }
});

test("a seed becomes consecutive seeds, so sequences differ and still reproduce", () => {
  assert.deepEqual(
    generationRequests({ ...params, seed: 7 }, { prompt: "hi" }).map((r) => r.seed),
    [7, 8, 9],
  );
  assert.deepEqual(
    generationRequests({ ...params, seed: 2 ** 32 - 1 }, { prompt: "hi" }).map((r) => r.seed),
    [2 ** 32 - 1, 0, 1],
  );
});

test("penalties are passed only when they do something", () => {
  const [withPenalty] = generationRequests({ ...params, numReturnSequences: 1 }, { prompt: "x" }, { presencePenalty: 0.5, frequencyPenalty: 0 });
  assert.equal(withPenalty?.presencePenalty, 0.5);
  assert.equal("frequencyPenalty" in (withPenalty ?? {}), false);
});
