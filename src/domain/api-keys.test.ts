import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { bearerToken, generateApiKey, hashApiKey } from "./api-keys.js";

describe("API keys", () => {
  it("generates a prefixed random key, a key id, and stores only the key's SHA-256", () => {
    const a = generateApiKey();
    const b = generateApiKey();
    assert.match(a.key, /^mli_[A-Za-z0-9_-]{32}$/);
    assert.match(a.keyId, /^key_[0-9a-f]{12}$/);
    assert.equal(a.keyHash, createHash("sha256").update(a.key, "utf8").digest("hex"));
    assert.notEqual(a.key, b.key);
    assert.notEqual(a.keyId, b.keyId);
  });

  it("hashes as hex SHA-256 of the UTF-8 key", () => {
    assert.equal(hashApiKey("mli_abc"), createHash("sha256").update("mli_abc").digest("hex"));
    assert.equal(hashApiKey("é"), createHash("sha256").update(Buffer.from([0xc3, 0xa9])).digest("hex"));
  });

  it("reads a bearer token: absent is undefined, malformed is null", () => {
    assert.equal(bearerToken(undefined), undefined);
    assert.equal(bearerToken(""), undefined);
    assert.equal(bearerToken("Bearer mli_abc"), "mli_abc");
    assert.equal(bearerToken("bearer mli_abc"), "mli_abc", "the scheme is case-insensitive");
    assert.equal(bearerToken("  Bearer \t mli_abc  "), "mli_abc", "surrounding and separating spaces are allowed");
    assert.equal(bearerToken("Bearer " + "k".repeat(256)), "k".repeat(256));
    for (const bad of ["Bearer", "Bearer ", "Bearermli_abc", "Basic mli_abc", "x Bearer mli_abc", "Bearer a b", "Bearer é", "Bearer " + "k".repeat(257)]) {
      assert.equal(bearerToken(bad), null, bad);
    }
  });
});
