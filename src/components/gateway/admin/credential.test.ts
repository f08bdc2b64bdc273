/** The admin credential: only ADMIN_API_KEY itself opens the admin routes, and no key set opens nothing. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "../../../config.js";
import { AppError } from "../../../errors.js";
import { adminGuard } from "./credential.js";

const KEY = "0123456789abcdef0123456789abcdef";
const code = (fn: () => void): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (error) {
    return error instanceof AppError ? error.code : "not an AppError";
  }
};

describe("admin credential", () => {
  it("the admin key passes; no key is unauthorized; any other key, a prefix or a longer one included, is admin_required", () => {
    const guard = adminGuard(KEY);
    assert.equal(code(() => guard(`Bearer ${KEY}`)), undefined);
    assert.equal(code(() => guard(undefined)), "unauthorized");
    assert.equal(code(() => guard("Basic abc")), "unauthorized");
    for (const other of [KEY.slice(0, -1), `${KEY}0`, "mli_a_user_key", KEY.toUpperCase()]) assert.equal(code(() => guard(`Bearer ${other}`)), "admin_required", other);
  });

  it("without ADMIN_API_KEY every key is refused", () => {
    const guard = adminGuard(undefined);
    assert.equal(code(() => guard(`Bearer ${KEY}`)), "admin_required");
  });

  it("ADMIN_API_KEY is read by config.ts, at least 24 characters", () => {
    assert.equal(loadConfig({ ADMIN_API_KEY: KEY }, "all").gateway.adminApiKey, KEY);
    assert.equal(loadConfig({}, "all").gateway.adminApiKey, undefined);
    assert.throws(() => loadConfig({ ADMIN_API_KEY: "short" }, "all"), /ADMIN_API_KEY: at least 24 characters/);
  });
});
