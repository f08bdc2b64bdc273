/** `batch create --wait`'s progress: a bar redrawn in place on a terminal, plain lines in a pipe. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Batch } from "../client/index.js";
import { batchLine, progressWriter } from "./batch.js";

const batch = (status: Batch["status"], completed: number, failed = 0): Batch => ({
  id: "batch_1",
  status,
  endpoint: "/v1/chat/completions",
  inputFileId: "file-1",
  outputFileId: null,
  errorFileId: null,
  requestCounts: { total: 4, completed, failed },
  errors: null,
  metadata: null,
  createdAt: "2026-01-01T00:00:00.000Z",
  completedAt: null,
});

function sink(isTTY: boolean) {
  const writes: string[] = [];
  return { out: { isTTY, write: (text: string) => writes.push(text) }, writes };
}

describe("batch progress", () => {
  it("in a pipe: one plain line per change, nothing to clear", () => {
    const { out, writes } = sink(false);
    const progress = progressWriter(out);
    progress.update(batch("in_progress", 1));
    progress.update(batch("completed", 3, 1));
    progress.stop();
    assert.deepEqual(writes, ["batch_1 in_progress 1/4 done (1 completed, 0 failed)\n", "batch_1 completed 4/4 done (3 completed, 1 failed)\n"]);
  });

  it("on a terminal: a bar filled by the lines done, redrawn in place and cleared at the end", () => {
    const { out, writes } = sink(true);
    const progress = progressWriter(out);
    progress.update(batch("in_progress", 2));
    progress.update(batch("completed", 3, 1));
    progress.stop();
    assert.equal(writes[0], `\r\x1b[2K[${"#".repeat(12)}${".".repeat(12)}] 2/4 in_progress`);
    assert.equal(writes[1], `\r\x1b[2K[${"#".repeat(24)}] 4/4 completed (1 failed)`);
    assert.equal(writes[2], "\r\x1b[2K");
    assert.equal(batchLine(batch("in_progress", 0)), "batch_1 in_progress 0/4 done (0 completed, 0 failed)");
  });
});
