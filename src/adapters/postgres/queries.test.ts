import { test } from "node:test";
import assert from "node:assert/strict";
import { sql } from "./queries.js";

test("statements marked `-- bound: bulk` in queries.sql carry the bulk bound; the others do not", () => {
  for (const name of ["replaySettled", "replayOpen", "usersQuotaSnapshot", "insertBatchFile", "getBatchFileContent", "countOpen", "unpublishOpen"]) {
    assert.equal(sql(name).bulk, true, name);
  }
  for (const name of ["insertRequests", "deleteUnpublishedRequest", "findUserByKeyHash", "markPublished"]) {
    assert.equal(sql(name).bulk, undefined, name);
  }
  // The marker is not part of the statement's text.
  assert.doesNotMatch(sql("replayOpen").text, /bound/);
});
