/** A batch straight in the store from its JSONL lines, validated and started as the dispatcher's validator does. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { GatewayConfig } from "../../src/config.js";
import type { BatchEndpoint, BatchStore } from "../../src/domain/batches.js";
import { validateBatchFile } from "../../src/components/gateway/batches/lines.js";

/** Returns the new batch's id; it runs for an hour. */
export async function insertTestBatch(store: BatchStore, gateway: GatewayConfig, userId: string, lines: string[], endpoint: BatchEndpoint = "/v1/chat/completions"): Promise<string> {
  const checked = validateBatchFile(Buffer.from(lines.join("\n")), endpoint, {
    maxBytes: gateway.batches.fileMaxBytes,
    maxLines: gateway.batches.maxLines,
    body: { maxLength: gateway.maxLengthLimit, maxPromptChars: gateway.maxPromptChars, models: ["default", gateway.defaultModel], defaultModel: gateway.defaultModel },
  });
  assert.ok(checked.ok, "the test batch's lines are valid");
  const batchId = `batch_${randomBytes(8).toString("hex")}`;
  const createdAt = new Date();
  await store.insertBatch({
    batchId, userId, endpoint, inputFileId: "file-test", completionWindow: "24h", metadata: null,
    createdAt, expiresAt: new Date(createdAt.getTime() + 3_600_000),
  });
  assert.ok(await store.startBatch(batchId, checked.lines, createdAt), "the test batch started");
  return batchId;
}
