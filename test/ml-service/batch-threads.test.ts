/**
 * ML_BATCH_THREADS: the per-batch thread switch hooks into node-llama-cpp's native context, and
 * batched generation with it gives exactly the text it gives without it.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { getLlama, type Llama, type LlamaModel } from "node-llama-cpp";
import { buildMlServiceApp } from "../../src/components/ml-service/index.js";
import { chooseThreadsPerBatch } from "../../src/engines/batch-threads.js";
import { silentLogger } from "../../src/observability/logger.js";
import { requireStoriesModel, STORIES_MODEL_PATH } from "../support/model.js";
import { storiesConfig } from "./helpers.js";

const skip = requireStoriesModel();
/**
 * Four sequences decoded together, from one request (num_return_sequences 4): they are handed to
 * the engine in one synchronous loop, so every decode step batches the same four in both runs.
 * (Four separate requests reach the engine at moments that depend on the machine's load, and
 * llama.cpp's numbers, hence a greedy text, depend on which sequences share a batch.)
 */
async function greedyTexts(batchThreads: number): Promise<string[]> {
  const built = await buildMlServiceApp(storiesConfig({ threads: 1, batchThreads }), { logger: silentLogger });
  try {
    await built.ready;
    const answer = await built.app.inject({
      method: "POST",
      url: "/inference",
      payload: { prompt: "Once upon a time", max_length: 40, temperature: 0, repetition_penalty: 1, num_return_sequences: 4 },
    });
    assert.equal(answer.statusCode, 200, answer.body);
    return answer.json().outputs as string[];
  } finally {
    await built.app.close();
  }
}

describe("threads per batch (ML_BATCH_THREADS)", { skip }, () => {
  let llama: Llama;
  let model: LlamaModel;
  before(async () => {
    llama = await getLlama({ gpu: false, build: "never" });
    model = await llama.loadModel({ modelPath: STORIES_MODEL_PATH });
  });
  after(async () => {
    await model?.dispose();
    await llama?.dispose();
  });

  test("recognises this node-llama-cpp's native context (fails loudly if an upgrade changes it)", async () => {
    const context = await model.createContext({ contextSize: 256, sequences: 2, threads: 2 });
    try {
      assert.equal(chooseThreadsPerBatch(context, { single: 1, batch: 2 }), true);
      const completion = await context.getSequence().evaluateWithoutGeneratingNewTokens(model.tokenize("Once upon a time"));
      assert.equal(completion, undefined);
    } finally {
      await context.dispose();
    }
  });

  test("concurrent greedy requests give the same text with one or two threads for batches", async () => {
    const single = await greedyTexts(1);
    const switched = await greedyTexts(2);
    assert.equal(single.length, 4);
    assert.deepEqual(switched, single);
    assert.match(single[0] ?? "", /Lily/);
  });
});
