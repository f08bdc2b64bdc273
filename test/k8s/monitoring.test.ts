/**
 * manifests/monitoring/: the Grafana dashboard and the Prometheus alert rules use only metrics and
 * labels the code exports (scraped from the components running in-process, driven through the
 * situations the panels and alerts watch), every expression parses as PromQL, the dashboard is
 * importable, the rules are well-formed, and each check fails on a broken copy.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { analyze } from "./promql.js";
import { catalogOf, exportedMetrics, parseExposition, type Exposition } from "./exported-metrics.js";
import {
  coverageProblems,
  dashboardExpressions,
  dashboardProblems,
  DASHBOARD_FILE,
  expressionProblems,
  jobProblems,
  monitoringObjects,
  readDashboard,
  ruleExpressions,
  ruleProblems,
  scrapedJobs,
} from "./monitoring-checks.js";
import { find, guideObjects, type Json, type K8sObject } from "./support.js";

const dashboard = readDashboard();
const objects = monitoringObjects();
const rule = find(objects, "PrometheusRule", "ml-inference");
const podMonitor = find(objects, "PodMonitor", "ml-inference");
/** The autoscalers' Prometheus queries (KEDA prometheus triggers) are held to the same checks. */
const scalerExpressions = () =>
  guideObjects()
    .filter((o) => o.kind === "ScaledObject")
    .flatMap((so) => ((so.spec?.triggers ?? []) as Json[]).filter((t) => t.type === "prometheus").map((t) => ({ where: `ScaledObject ${so.metadata.name}`, expr: String(t.metadata.query), kind: "rule" as const })));
const allExpressions = () => [...dashboardExpressions(dashboard), ...ruleExpressions(rule), ...scalerExpressions()];

const withRule = (mutate: (r: Json) => void): K8sObject => {
  const copy = structuredClone(rule) as Json;
  mutate(copy);
  return copy;
};
const withDashboard = (mutate: (d: Json) => void): Json => {
  const copy = structuredClone(dashboard);
  mutate(copy);
  return copy;
};

describe("monitoring manifests render with kubectl apply -k manifests/monitoring/", () => {
  it("a PodMonitor, a PrometheusRule and the dashboard as a ConfigMap for Grafana's sidecar, in namespace monitoring", () => {
    assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort(), ["ConfigMap/ml-inference-dashboard", "PodMonitor/ml-inference", "PrometheusRule/ml-inference"]);
    for (const o of objects) assert.equal(o.metadata.namespace, "monitoring", `${o.kind} is not in monitoring`);
    const cm = find(objects, "ConfigMap", "ml-inference-dashboard");
    assert.equal(cm.metadata.labels?.grafana_dashboard, "1");
    assert.deepEqual(JSON.parse(cm.data["ml-inference-dashboard.json"]), dashboard, "the ConfigMap holds the dashboard file");
    // kubectl apply (client side) copies the object into an annotation, limited to 256 KiB in all.
    assert.ok(JSON.stringify(cm).length < 200 * 1024, "the dashboard ConfigMap is too large for kubectl apply");
  });

  it("the PodMonitor scrapes every component of the guide, in namespace ml-inference, on its http port", () => {
    assert.equal(podMonitor.apiVersion, "monitoring.coreos.com/v1");
    assert.deepEqual(podMonitor.spec.namespaceSelector, { matchNames: ["ml-inference"] });
    for (const e of podMonitor.spec.podMetricsEndpoints as Json[]) {
      assert.deepEqual(Object.keys(e).sort(), ["interval", "path", "port"]);
      assert.equal(e.path, "/metrics", "the path every component serves its metrics on");
      assert.match(e.interval, /^\d+[smh]$/);
    }
    assert.equal(podMonitor.metadata.labels?.release, rule.metadata.labels?.release, "the PodMonitor and the rules are picked up by the same Prometheus");
    const jobs = scrapedJobs(podMonitor, guideObjects());
    assert.deepEqual([...jobs].sort(), ["api-gateway", "api-service", "ml-service", "ml-worker", "results-collector"]);
  });
});

describe("the dashboard is importable and the rules are well-formed", () => {
  it("dashboard: schemaVersion, a Prometheus data-source variable every panel uses, targets, layout", () => {
    assert.deepEqual(dashboardProblems(dashboard), []);
  });
  it("rules: groups, alert names, durations, severity, annotations", () => {
    assert.deepEqual(ruleProblems(rule), []);
  });
  it("both show what issue 10 asks for", () => {
    assert.deepEqual(coverageProblems(dashboard, rule, { labelsOf: () => new Set(), targetLabels: new Set() }), []);
  });
});

describe("every metric and label a panel or rule uses is one the code exports", () => {
  let expositions: Exposition[] = [];
  before(async () => {
    expositions = await exportedMetrics();
  }, { timeout: 240_000 });

  it("the components served the metrics the checks compare against", () => {
    const names = catalogOf(expositions).names();
    for (const n of ["gateway_admissions_total", "worker_outcomes_total", "ml_model_loaded", "gateway_admission_seconds_bucket", "batch_lines_total", "batches_finished_total", "batch_lines_pending"]) assert.ok(names.includes(n), `${n} was not served`);
    assert.deepEqual(scalerExpressions().map((e) => e.where).sort(), ["ScaledObject ml-service", "ScaledObject ml-worker"], "both Prometheus triggers are checked");
  });

  it("every expression parses; its metrics, matcher labels and by/on labels exist; every selector matches a served series", () => {
    const problems = expressionProblems(allExpressions(), catalogOf(expositions), expositions);
    assert.deepEqual(problems, [], problems.join("\n"));
  });

  it("job matchers name components the PodMonitor scrapes", () => {
    assert.deepEqual(jobProblems(allExpressions(), catalogOf(expositions), scrapedJobs(podMonitor, guideObjects())), []);
  });

  describe("each check fails on a broken copy", () => {
    const fails = (exprs: string[], pattern: RegExp, kind: "panel" | "rule" = "rule") => {
      for (const expr of exprs) {
        const problems = expressionProblems([{ where: "fixture", expr, kind }], catalogOf(expositions), expositions);
        assert.ok(problems.length > 0, `no problem found in: ${expr}`);
        assert.match(problems.join("\n"), pattern, expr);
      }
    };

    it("the fixtures' good forms pass (so the failures below are about the break)", () => {
      const good = [
        `sum by (queue) (rate(messages_dead_lettered_total[5m])) > 0`,
        `histogram_quantile(0.99, sum by (le) (rate(gateway_admission_seconds_bucket[5m])))`,
        `sum(rate(worker_outcomes_total{status="failed"}[5m])) / on () sum(rate(worker_outcomes_total[5m]))`,
        `max_over_time(quota_reservations_open[1h:5m]) offset 5m`,
        `up{job="ml-service"} == 0 or absent(up{job="ml-service"})`,
      ];
      assert.deepEqual(expressionProblems(good.map((expr) => ({ where: "good", expr, kind: "rule" })), catalogOf(expositions), expositions), []);
      assert.deepEqual(expressionProblems([{ where: "good", expr: `rate(tokens_settled_total[$__rate_interval])`, kind: "panel" }], catalogOf(expositions), expositions), []);
    });

    it("a misspelled or unexported metric", () => {
      fails([`sum(rate(gateway_admision_total[5m]))`, `ml_time_to_first_token_seconds_bucket`, `gateway_admission_seconds`], /unknown metric/);
    });
    it("an unknown label: in a matcher, a by (...), an on (...), or le missing under histogram_quantile", () => {
      fails(
        [
          `worker_outcomes_total{stauts="failed"}`,
          `sum by (queeu) (rate(messages_consumed_total[5m]))`,
          `sum without (tier) (rate(tokens_settled_total[5m]))`,
          `sum(rate(messages_consumed_total[5m])) / on (queue) sum(rate(messages_published_total[5m]))`,
          `histogram_quantile(0.9, sum(rate(gateway_admission_seconds_bucket[5m])))`,
          `sum by (result) (sum by (queue) (rate(messages_consumed_total[5m])))`,
        ],
        /unknown label|without the "le" label/,
      );
    });
    it("an expression that does not parse: unbalanced brackets, unknown function, bad duration, wrong argument type", () => {
      fails(
        [
          `sum(rate(messages_consumed_total[5m])`,
          `sum(rate(messages_consumed_total[5m])))`,
          `rate(messages_consumed_total[5m)`,
          `messages_consumed_total{queue="a"`,
          `rat(messages_consumed_total[5m])`,
          `rate(messages_consumed_total[5 minutes])`,
          `rate(messages_consumed_total[5mm])`,
          `rate(messages_consumed_total)`,
          `sum(messages_consumed_total[5m])`,
          `messages_consumed_total >`,
          `sum by queue (messages_consumed_total)`,
          `worker_outcomes_total{status=~"(failed"}`,
        ],
        /does not parse/,
      );
    });
    it("a Grafana variable in an alert rule, or an alert that yields a scalar", () => {
      fails([`rate(tokens_settled_total[$__rate_interval])`], /does not parse/, "rule");
      fails([`scalar(sum(worker_requests_in_flight)) > bool 1`], /instant vector/, "rule");
    });
    it("a selector whose label value matches nothing the code served", () => {
      fails([`worker_outcomes_total{status="faild"}`, `gateway_admissions_total{result="quota_exceded"}`], /matches no series/);
    });
    it("a job the PodMonitor does not scrape", () => {
      const jobs = scrapedJobs(podMonitor, guideObjects());
      const catalog = catalogOf(expositions);
      assert.notDeepEqual(jobProblems([{ where: "fixture", expr: `up{job="ml-servce"} == 0`, kind: "rule" }], catalog, jobs), []);
      assert.notDeepEqual(jobProblems([{ where: "fixture", expr: `sum by (job) (up{job=~"api-gateway|ml-wroker"})`, kind: "panel" }], catalog, jobs), []);
      const renamed = structuredClone(podMonitor) as Json;
      renamed.spec.jobLabel = "app.kubernetes.io/component";
      assert.notDeepEqual([...scrapedJobs(renamed, guideObjects())].sort(), ["api-gateway", "api-service", "ml-service", "ml-worker", "results-collector"]);
    });
  });
});

describe("the dashboard and rule checks fail on broken copies", () => {
  it("dashboard: no data-source variable, a hard-wired data source, no schemaVersion, a panel without targets, an overflowing panel", () => {
    const broken: Array<[string, Json]> = [
      ["variable", withDashboard((d) => (d.templating.list = []))],
      ["hard-wired", withDashboard((d) => (d.panels[1].datasource = { type: "prometheus", uid: "my-prometheus" }))],
      ["schemaVersion", withDashboard((d) => delete d.schemaVersion)],
      ["targets", withDashboard((d) => (d.panels[1].targets = []))],
      ["gridPos", withDashboard((d) => (d.panels[1].gridPos.x = 20))],
      ["id", withDashboard((d) => (d.id = 7))],
    ];
    for (const [what, d] of broken) assert.notDeepEqual(dashboardProblems(d), [], what);
  });
  it("rules: a bad for, an unknown field, no severity, no summary, a duplicated alert, an unbalanced template", () => {
    const broken: Array<[string, K8sObject]> = [
      ["for", withRule((r) => (r.spec.groups[0].rules[0].for = "15 minutes"))],
      ["field", withRule((r) => (r.spec.groups[0].rules[0].expression = "up"))],
      ["severity", withRule((r) => delete r.spec.groups[0].rules[0].labels.severity)],
      ["summary", withRule((r) => delete r.spec.groups[0].rules[0].annotations.summary)],
      ["duplicate", withRule((r) => r.spec.groups[0].rules.push(structuredClone(r.spec.groups[0].rules[0])))],
      ["template", withRule((r) => (r.spec.groups[0].rules[0].annotations.summary = "Queue {{ $labels.queue is growing"))],
      ["kind", withRule((r) => (r.apiVersion = "monitoring.coreos.com/v1alpha1"))],
    ];
    for (const [what, r] of broken) assert.notDeepEqual(ruleProblems(r), [], what);
  });
  it("coverage: a topic without a panel, a required alert missing", () => {
    const noDeadLetters = withDashboard((d) => {
      for (const p of d.panels) p.targets = (p.targets ?? []).filter((t: Json) => !String(t.expr).includes("messages_dead_lettered_total"));
    });
    const catalog = { labelsOf: () => new Set<string>(), targetLabels: new Set<string>() };
    assert.match(coverageProblems(noDeadLetters, rule, catalog).join("\n"), /dead letters/);
    const noQuotaAlert = withRule((r) => {
      for (const g of r.spec.groups) g.rules = g.rules.filter((x: Json) => x.alert !== "MlInferenceQuotaStoreDown");
    });
    assert.match(coverageProblems(dashboard, noQuotaAlert, catalog).join("\n"), /MlInferenceQuotaStoreDown/);
  });
  it("the exposition parser refuses a line it cannot read, and the PromQL analysis refuses garbage", () => {
    assert.throws(() => parseExposition(`gateway_admissions_total{result="accepted" 1`));
    assert.equal(parseExposition(`# TYPE x counter\nx{a="b\\"c"} 1`).samples[0]!.labels.a, 'b"c');
    assert.notDeepEqual(analyze("}{", { labelsOf: () => undefined, targetLabels: new Set() }).errors, []);
  });
  it("reads the dashboard from the file the README names", () => {
    assert.match(DASHBOARD_FILE, /manifests\/monitoring\/grafana\/ml-inference-dashboard\.json$/);
  });
});
