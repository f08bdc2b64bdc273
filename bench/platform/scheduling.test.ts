import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { cpuQuantity, cpuRequest, niceFor, niceForShare, schedulingFromEnv } from "./scheduling.js";

describe("bench scheduling weights from the manifests' CPU requests", () => {
  it("reads Kubernetes CPU quantities", () => {
    assert.equal(cpuQuantity("100m"), 0.1);
    assert.equal(cpuQuantity("1"), 1);
    assert.equal(cpuQuantity(2), 2);
    assert.equal(cpuQuantity("1.5"), 1.5);
    assert.throws(() => cpuQuantity("1Gi"), /unreadable CPU quantity/);
  });

  it("picks the nice value whose CFS weight is nearest the share", () => {
    assert.equal(niceForShare(1), 0);
    assert.equal(niceForShare(2), 0);
    assert.equal(niceForShare(0.1), 10); // weight 110 of 1024
    assert.equal(niceForShare(0.25), 6); // weight 272
    assert.equal(niceForShare(0.001), 19);
  });

  it("gives the worker the ML Service's weight under equal, a tenth of it under requests (100m against 1 CPU)", () => {
    assert.equal(cpuRequest("worker"), 0.1);
    assert.equal(cpuRequest("ml-service"), 1);
    assert.equal(niceFor("worker", "equal"), 0);
    assert.equal(niceFor("worker", "requests"), 10);
    assert.equal(niceFor("ml-service", "requests"), 0);
  });

  it("refuses an unknown BENCH_SCHEDULING", () => {
    assert.equal(schedulingFromEnv(undefined), "equal");
    assert.equal(schedulingFromEnv("requests"), "requests");
    assert.throws(() => schedulingFromEnv("fair"), /BENCH_SCHEDULING/);
  });
});
