/**
 * Policy and cross-reference rules (test/k8s/policy.ts) over what the guide's commands apply and
 * what the Helm values render; each rule must pass on the shipped manifests and catch its fixtures.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ISOLATION_FIXTURES, ISOLATION_RULES } from "./policy-isolation.js";
import { FIXTURES as BASE_FIXTURES, RULES as BASE_RULES, type Bundle } from "./policy.js";
import { clone, guideObjects, helmTemplate } from "./support.js";

const good: Bundle = {
  objects: guideObjects(),
  rabbitmq: helmTemplate("rabbitmq", "manifests/helm/rabbitmq-values.yaml", ["auth.password=test-only-password"]),
  keda: helmTemplate("keda", "manifests/helm/keda-values.yaml"),
};
const RULES = [...BASE_RULES, ...ISOLATION_RULES];
const FIXTURES = [...BASE_FIXTURES, ...ISOLATION_FIXTURES];
const fresh = (): Bundle => ({ objects: clone(good.objects), rabbitmq: clone(good.rabbitmq), keda: clone(good.keda) });

describe("k8s policy rules", () => {
  it("every rule has a unique id and at least one broken fixture; every fixture names a rule", () => {
    const ids = RULES.map((r) => r.id);
    assert.equal(new Set(ids).size, ids.length, "duplicate rule ids");
    for (const id of ids) assert.ok(FIXTURES.some((f) => f.rule === id), `rule ${id} has no fixture`);
    for (const f of FIXTURES) assert.ok(ids.includes(f.rule), `fixture "${f.what}" names unknown rule ${f.rule}`);
  });

  for (const rule of RULES) {
    describe(`${rule.id} (${rule.mirrors})`, () => {
      it("holds for the shipped manifests", () => {
        assert.deepEqual(rule.check(fresh()), []);
      });
      for (const fixture of FIXTURES.filter((f) => f.rule === rule.id)) {
        it(`catches: ${fixture.what}`, () => {
          const broken = fresh();
          fixture.breakIt(broken);
          const violations = rule.check(broken);
          assert.ok(violations.length > 0, `rule ${rule.id} did not catch "${fixture.what}"`);
        });
      }
    });
  }
});
