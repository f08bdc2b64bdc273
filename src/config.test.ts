import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "./config.js";
import { AppError } from "./errors.js";

describe("config: the ML Service is never an open door to the model", () => {
  it("run alone, the ML Service refuses to start without ML_SERVICE_TOKEN", () => {
    assert.throws(
      () => loadConfig({}, "ml-service"),
      (error: unknown) => error instanceof AppError && error.code === "config_invalid" && /ML_SERVICE_TOKEN/.test(error.message),
    );
  });

  it("starts with a token, or open only when that is asked for explicitly", () => {
    assert.equal(loadConfig({ ML_SERVICE_TOKEN: "0123456789abcdef" }, "ml-service").mlService.token, "0123456789abcdef");
    assert.equal(loadConfig({ ML_SERVICE_ALLOW_UNAUTHENTICATED: "true" }, "ml-service").mlService.token, undefined);
    assert.throws(() => loadConfig({ ML_SERVICE_TOKEN: "short" }, "ml-service"), /at least 16 characters/);
  });

  it("in `all` the in-process ML Service listens on loopback only, whatever HOST says", () => {
    const config = loadConfig({ HOST: "0.0.0.0" }, "all");
    assert.equal(config.mlService.host, "127.0.0.1");
    assert.equal(config.common.host, "0.0.0.0");
    assert.equal(loadConfig({ HOST: "0.0.0.0", ML_SERVICE_TOKEN: "0123456789abcdef" }, "ml-service").mlService.host, "0.0.0.0");
  });

  it("the worker sends the same token", () => {
    const config = loadConfig({ ML_SERVICE_TOKEN: "0123456789abcdef", AMQP_URL: "amqp://x" }, "worker");
    assert.equal(config.worker.mlServiceToken, "0123456789abcdef");
  });
});

describe("config: time bounds on the backing services", () => {
  it("default to the admission path's bounds and refuse values out of range, naming the variable", () => {
    assert.deepEqual(loadConfig({}, "all").common.bounds, {
      pgQueryTimeoutMs: 250,
      pgBulkQueryTimeoutMs: 60_000,
      pgConnectTimeoutMs: 1_000,
      redisCommandTimeoutMs: 250,
      amqpConfirmTimeoutMs: 250,
      amqpConnectTimeoutMs: 1_000,
    });
    assert.equal(loadConfig({ PG_QUERY_TIMEOUT_MS: "400", AMQP_CONFIRM_TIMEOUT_MS: "300" }, "all").common.bounds.pgQueryTimeoutMs, 400);
    for (const variable of ["PG_QUERY_TIMEOUT_MS", "REDIS_COMMAND_TIMEOUT_MS", "AMQP_CONFIRM_TIMEOUT_MS"]) {
      assert.throws(() => loadConfig({ [variable]: "0" }, "all"), new RegExp(variable));
      assert.throws(() => loadConfig({ [variable]: "soon" }, "all"), new RegExp(variable));
    }
  });
});

describe("config: batch files expire", () => {
  for (const [variable, field] of [["BATCH_OUTPUT_FILE_TTL_S", "outputFileTtlSeconds"], ["BATCH_INPUT_FILE_TTL_S", "inputFileTtlSeconds"]] as const) {
    it(`${variable}: after 30 days by default, never with 0, and a value out of range names the variable`, () => {
      assert.equal(loadConfig({}, "all").gateway.batches[field], 30 * 86_400);
      assert.equal(loadConfig({ [variable]: "0" }, "all").gateway.batches[field], null);
      assert.equal(loadConfig({ [variable]: "3600" }, "all").gateway.batches[field], 3_600);
      assert.throws(() => loadConfig({ [variable]: "-1" }, "all"), new RegExp(variable));
      assert.throws(() => loadConfig({ [variable]: "1e9" }, "all"), new RegExp(variable));
    });
  }
  it("the one does not set the other", () => {
    const batches = loadConfig({ BATCH_INPUT_FILE_TTL_S: "7200" }, "all").gateway.batches;
    assert.deepEqual([batches.inputFileTtlSeconds, batches.outputFileTtlSeconds], [7_200, 30 * 86_400]);
  });
});
