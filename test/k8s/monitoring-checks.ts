/**
 * Checks for manifests/monitoring/: each returns a list of problems (empty = fine), so the test can
 * run them on the real files and on broken copies alike.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { analyze, expandGrafanaVariables, type MetricCatalog, type Selector } from "./promql.js";
import { isSynthetic, seriesFor, type Exposition } from "./exported-metrics.js";
import { applyK, MANIFESTS, type Json, type K8sObject } from "./support.js";

export const DASHBOARD_FILE = join(MANIFESTS, "monitoring", "grafana", "ml-inference-dashboard.json");
export const readDashboard = (): Json => JSON.parse(readFileSync(DASHBOARD_FILE, "utf8"));
export const monitoringObjects = (): K8sObject[] => applyK("manifests/monitoring/");

const DURATION = /^(?:\d+(?:ms|[smhdwy]))+$/;

export interface Expression {
  where: string;
  expr: string;
  /** Alerting rules must yield an instant vector; Grafana expressions may use $__rate_interval. */
  kind: "panel" | "rule";
}

export function panelsOf(dashboard: Json): Json[] {
  return (dashboard.panels ?? []).flatMap((p: Json) => [p, ...(p.panels ?? [])]);
}

export function dashboardExpressions(dashboard: Json): Expression[] {
  return panelsOf(dashboard).flatMap((p: Json) =>
    (p.targets ?? []).map((t: Json) => ({ where: `panel "${p.title}" ${t.refId}`, expr: String(t.expr ?? ""), kind: "panel" as const })),
  );
}

export function ruleExpressions(rule: K8sObject): Expression[] {
  return (rule.spec?.groups ?? []).flatMap((g: Json) =>
    (g.rules ?? []).map((r: Json) => ({ where: `rule ${r.alert ?? r.record}`, expr: String(r.expr ?? ""), kind: "rule" as const })),
  );
}

/** Importable by Grafana: schemaVersion, a Prometheus data-source variable every query uses, sane panels. */
export function dashboardProblems(d: Json): string[] {
  const problems: string[] = [];
  if (typeof d.schemaVersion !== "number" || d.schemaVersion < 30) problems.push("schemaVersion missing or older than 30");
  for (const field of ["uid", "title"]) if (typeof d[field] !== "string" || d[field] === "") problems.push(`${field} missing`);
  if (d.id !== null && d.id !== undefined) problems.push("id must be null so an import creates the dashboard");
  const variables: Json[] = d.templating?.list ?? [];
  const source = variables.find((v) => v.type === "datasource" && v.query === "prometheus");
  if (!source) problems.push("no Prometheus data-source template variable");
  const ref = source ? `\${${source.name}}` : undefined;
  const ids = new Set<number>();
  for (const p of panelsOf(d)) {
    if (typeof p.id !== "number" || ids.has(p.id)) problems.push(`panel "${p.title}": id missing or repeated`);
    ids.add(p.id);
    const g = p.gridPos;
    if (!g || [g.h, g.w, g.x, g.y].some((n) => typeof n !== "number") || g.x + g.w > 24) problems.push(`panel "${p.title}": gridPos missing or wider than 24`);
    if (p.type === "row") continue;
    if (typeof p.title !== "string" || p.title === "") problems.push(`a ${p.type} panel has no title`);
    const targets: Json[] = p.targets ?? [];
    if (targets.length === 0) problems.push(`panel "${p.title}": no targets`);
    const refIds = targets.map((t) => t.refId);
    if (new Set(refIds).size !== refIds.length) problems.push(`panel "${p.title}": repeated refId`);
    for (const ds of [p.datasource, ...targets.map((t) => t.datasource)]) {
      if (ds?.type !== "prometheus" || ds?.uid !== ref) problems.push(`panel "${p.title}": data source must be {type: prometheus, uid: ${ref}}, got ${JSON.stringify(ds)}`);
    }
    for (const t of targets) if (typeof t.expr !== "string" || t.expr.trim() === "") problems.push(`panel "${p.title}" ${t.refId}: empty expr`);
  }
  return problems;
}

const RULE_KEYS = new Set(["alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"]);
const GROUP_KEYS = new Set(["name", "interval", "rules", "limit", "partial_response_strategy", "query_offset", "labels"]);

/** A PrometheusRule the operator accepts and a rules file Prometheus loads (fields, durations, names). */
export function ruleProblems(rule: K8sObject): string[] {
  const problems: string[] = [];
  if (rule.apiVersion !== "monitoring.coreos.com/v1" || rule.kind !== "PrometheusRule") problems.push(`not a PrometheusRule: ${rule.apiVersion} ${rule.kind}`);
  const groups: Json[] = rule.spec?.groups ?? [];
  if (groups.length === 0) problems.push("no rule groups");
  const groupNames = new Set<string>();
  const alerts = new Set<string>();
  for (const g of groups) {
    for (const k of Object.keys(g)) if (!GROUP_KEYS.has(k)) problems.push(`group ${g.name}: unknown field ${k}`);
    if (typeof g.name !== "string" || groupNames.has(g.name)) problems.push(`group name missing or repeated: ${g.name}`);
    groupNames.add(g.name);
    if (g.interval !== undefined && !DURATION.test(String(g.interval))) problems.push(`group ${g.name}: bad interval ${g.interval}`);
    for (const r of (g.rules ?? []) as Json[]) {
      const name = r.alert ?? r.record;
      for (const k of Object.keys(r)) if (!RULE_KEYS.has(k)) problems.push(`rule ${name}: unknown field ${k}`);
      if (typeof r.alert !== "string" || !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(r.alert)) {
        problems.push(`rule ${name}: only alerting rules with a valid name are expected`);
        continue;
      }
      if (alerts.has(r.alert)) problems.push(`alert ${r.alert} defined twice`);
      alerts.add(r.alert);
      if (typeof r.expr !== "string" || r.expr.trim() === "") problems.push(`alert ${r.alert}: no expr`);
      for (const k of ["for", "keep_firing_for"]) if (r[k] !== undefined && !DURATION.test(String(r[k]))) problems.push(`alert ${r.alert}: bad duration ${k}: ${r[k]}`);
      if (!["warning", "critical", "info"].includes(r.labels?.severity)) problems.push(`alert ${r.alert}: labels.severity must be warning, critical or info`);
      for (const k of ["summary", "description"]) if (typeof r.annotations?.[k] !== "string" || r.annotations[k] === "") problems.push(`alert ${r.alert}: annotations.${k} missing`);
      for (const [k, v] of Object.entries({ ...(r.labels ?? {}), ...(r.annotations ?? {}) })) {
        const text = String(v);
        if ((text.match(/\{\{/g) ?? []).length !== (text.match(/\}\}/g) ?? []).length) problems.push(`alert ${r.alert}: unbalanced template in ${k}`);
      }
    }
  }
  return problems;
}

/**
 * Every expression parses, and every metric, matcher label and grouping label is one the code
 * exports; every selector picks at least one series out of what the components served.
 */
export function expressionProblems(expressions: Expression[], catalog: MetricCatalog, expositions: Exposition[]): string[] {
  const problems: string[] = [];
  for (const e of expressions) {
    const text = e.kind === "panel" ? expandGrafanaVariables(e.expr) : e.expr;
    const result = analyze(text, catalog);
    for (const error of result.errors) problems.push(`${e.where}: ${error}\n    ${e.expr.trim()}`);
    if (result.errors.length > 0) continue;
    if (e.kind === "rule" && result.type !== "vector") problems.push(`${e.where}: an alert must yield an instant vector, not a ${result.type}`);
    for (const s of result.selectors) {
      if (isSynthetic(s.name) || seriesFor(s, expositions).length > 0) continue;
      problems.push(`${e.where}: ${describe(s)} matches no series the components served`);
    }
  }
  return problems;
}

function describe(s: Selector): string {
  return `${s.name}{${s.matchers.map((m) => `${m.label}${m.op}"${m.value}"`).join(", ")}}`;
}

/**
 * `job` is the pod's label named by the PodMonitor's jobLabel: matchers on job must name a
 * component whose pods the PodMonitor selects (and that have the port it scrapes).
 */
export function scrapedJobs(podMonitor: K8sObject, workloads: K8sObject[]): Set<string> {
  const selector: Record<string, string> = podMonitor.spec.selector.matchLabels;
  const ports = new Set<string>(podMonitor.spec.podMetricsEndpoints.map((e: Json) => e.port));
  const jobs = new Set<string>();
  for (const w of workloads) {
    const template = w.spec?.template;
    const labels: Record<string, string> = template?.metadata?.labels ?? {};
    if (!Object.entries(selector).every(([k, v]) => labels[k] === v)) continue;
    const hasPort = (template.spec?.containers ?? []).some((c: Json) => (c.ports ?? []).some((p: Json) => ports.has(p.name)));
    const job = labels[podMonitor.spec.jobLabel];
    if (hasPort && job) jobs.add(job);
  }
  return jobs;
}

export function jobProblems(expressions: Expression[], catalog: MetricCatalog, jobs: Set<string>): string[] {
  const problems: string[] = [];
  for (const e of expressions) {
    const text = e.kind === "panel" ? expandGrafanaVariables(e.expr) : e.expr;
    for (const s of analyze(text, catalog).selectors) {
      for (const m of s.matchers.filter((x) => x.label === "job")) {
        const names = m.op === "=" || m.op === "!=" ? [m.value] : m.value.split("|");
        for (const name of names) if (!jobs.has(name)) problems.push(`${e.where}: job "${name}" is not a component the PodMonitor scrapes (${[...jobs].sort().join(", ")})`);
      }
    }
  }
  return problems;
}

/** What issue 10 asks the dashboard to show (as the metrics it must use) and the alerts it asks for. */
export const DASHBOARD_TOPICS: Record<string, string[]> = {
  "queue depth (per queue)": ["messages_published_total", "messages_consumed_total", "quota_reservations_open"],
  "admission rate and result codes": ["gateway_admissions_total"],
  "admission latency percentiles": ["gateway_admission_seconds_bucket"],
  "model call latency": ["worker_model_call_seconds_bucket", "ml_processing_seconds_bucket"],
  "tokens/s": ["ml_tokens_processed_total"],
  "quota rejections": ["gateway_admissions_total"],
  "tokens settled (usage by tier is not exported)": ["tokens_settled_total"],
  errors: ["worker_outcomes_total", "http_requests_total", "ml_request_errors_total"],
  "dead letters": ["messages_dead_lettered_total"],
};
export const REQUIRED_ALERTS = [
  "MlInferenceQueueGrowing",
  "MlInferenceDeadLetters",
  "MlInferenceRequestFailures",
  "MlInferenceHttp5xx",
  "MlServiceNotReady",
  "MlServiceDown",
  "MlInferenceQuotaStoreDown",
];

export function coverageProblems(dashboard: Json, rule: K8sObject, catalog: MetricCatalog): string[] {
  const used = new Set(
    dashboardExpressions(dashboard).flatMap((e) => analyze(expandGrafanaVariables(e.expr), catalog).selectors.map((s) => s.name)),
  );
  const problems = Object.entries(DASHBOARD_TOPICS).flatMap(([topic, metrics]) =>
    metrics.filter((m) => !used.has(m)).map((m) => `dashboard: "${topic}" needs a panel on ${m}`),
  );
  const quotaRejections = dashboardExpressions(dashboard).some((e) => /gateway_admissions_total\{[^}]*result="quota_exceeded"/.test(e.expr));
  if (!quotaRejections) problems.push(`dashboard: "quota rejections" needs a panel on gateway_admissions_total{result="quota_exceeded"}`);
  const alerts = new Set(ruleExpressions(rule).map((e) => e.where.replace(/^rule /, "")));
  for (const a of REQUIRED_ALERTS) if (!alerts.has(a)) problems.push(`rules: alert ${a} missing`);
  return problems;
}
