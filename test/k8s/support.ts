/**
 * Offline Kubernetes checks: what the guide's commands would send to a cluster, rendered with the
 * real kubectl/kustomize and helm (scripts/k8s-tools.mjs), parsed, and checked against schemas,
 * KEDA's CRDs and the project's facts (queue names, ports, secrets) read from the code.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import { parse, parseAllDocuments } from "yaml";
// @ts-expect-error: plain ESM script without type declarations
import { isolatedEnv, k8sTools } from "../../scripts/k8s-tools.mjs";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const MANIFESTS = join(ROOT, "manifests");
/** KEDA CRDs, read from the shared folder (never copied into the project). */
export const KEDA_CRDS = resolve(ROOT, "..", "shared", "k8s-crds", "keda-2.20.2");

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: Json;
  /** Where it came from (not part of the object): the guide command that applies it. */
  source?: string;
}

const tools = k8sTools() as { kubectl: string; helm: string };
const toolHome = mkdtempSync(join(tmpdir(), "k8s-tools-home-"));
export const TOOL_ENV = isolatedEnv(toolHome) as NodeJS.ProcessEnv;

export function kubectl(args: string[]): string {
  return execFileSync(tools.kubectl, args, { cwd: ROOT, env: TOOL_ENV, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}
export function helm(args: string[]): string {
  return execFileSync(tools.helm, args, { cwd: ROOT, env: TOOL_ENV, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Parse a multi-document YAML stream; fails on YAML errors and on non-object documents. */
export function parseObjects(text: string, source: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join("; ")}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue; // empty document
    if (typeof value !== "object" || Array.isArray(value)) throw new Error(`${source}: a document is not an object`);
    const obj = value as K8sObject;
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string" || typeof obj.metadata?.name !== "string") {
      throw new Error(`${source}: a document lacks apiVersion, kind or metadata.name (kubectl would reject it)`);
    }
    Object.defineProperty(obj, "source", { value: source, enumerable: false, writable: true });
    out.push(obj);
  }
  return out;
}

/** The files `kubectl apply -f PATH` reads: the file itself, or a folder's .json/.yaml/.yml files (not recursive). */
export function filesForApplyF(path: string): string[] {
  const full = join(ROOT, path);
  if (!statSync(full).isDirectory()) return [full];
  return readdirSync(full)
    .filter((name) => [".json", ".yaml", ".yml"].includes(extname(name)))
    .sort()
    .map((name) => join(full, name));
}

export function applyF(path: string): K8sObject[] {
  const command = `kubectl apply -f ${path}`;
  return filesForApplyF(path).flatMap((file) => parseObjects(readFileSync(file, "utf8"), command));
}

export function applyK(path: string): K8sObject[] {
  return parseObjects(kubectl(["kustomize", path]), `kubectl apply -k ${path}`);
}

/** Every command of the guide that sends objects to the cluster, in the guide's order. */
export const GUIDE_COMMANDS = [
  { cmd: "kubectl apply -f manifests/migrations/init-schema.yaml", load: () => applyF("manifests/migrations/init-schema.yaml") },
  { cmd: "kubectl apply -k manifests/benthos/", load: () => applyK("manifests/benthos/") },
  { cmd: "kubectl apply -f manifests/ml-service/", load: () => applyF("manifests/ml-service/") },
  { cmd: "kubectl apply -f manifests/api-service/", load: () => applyF("manifests/api-service/") },
  { cmd: "kubectl apply -f manifests/ingress.yaml", load: () => applyF("manifests/ingress.yaml") },
] as const;

let cachedGuide: K8sObject[] | undefined;
/** All objects the guide's commands apply (cached; callers must clone before mutating). */
export function guideObjects(): K8sObject[] {
  cachedGuide ??= GUIDE_COMMANDS.flatMap((c) => c.load());
  return cachedGuide;
}

let cachedOverlay: K8sObject[] | undefined;
export function overlayObjects(): K8sObject[] {
  cachedOverlay ??= applyK("manifests/");
  return cachedOverlay;
}

export function clone(objects: K8sObject[]): K8sObject[] {
  return objects.map((o) => {
    const copy = structuredClone(o);
    Object.defineProperty(copy, "source", { value: o.source, enumerable: false, writable: true });
    return copy;
  });
}

export const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;

export function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`${kind}/${name} not found`);
  return found;
}

// ------------------------------------------------------------------ workloads

export interface PodTemplateRef {
  owner: K8sObject;
  spec: Json;
  labels: Record<string, string>;
}
const WORKLOAD_KINDS = ["Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"];
export function podTemplates(objects: K8sObject[]): PodTemplateRef[] {
  return objects
    .filter((o) => WORKLOAD_KINDS.includes(o.kind))
    .map((o) => ({ owner: o, spec: o.spec?.template?.spec ?? {}, labels: o.spec?.template?.metadata?.labels ?? {} }));
}
export function containersOf(podSpec: Json): Json[] {
  return [...(podSpec.initContainers ?? []), ...(podSpec.containers ?? [])];
}
export function envOf(container: Json): Map<string, Json> {
  return new Map((container.env ?? []).map((e: Json) => [e.name as string, e]));
}
export function envValue(container: Json, name: string): string | undefined {
  const e = envOf(container).get(name);
  return e && typeof e.value === "string" ? e.value : undefined;
}
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

// ------------------------------------------------------------------ schemas

/** kubernetes-models class for an apiVersion/kind, or undefined when that package has none. */
export async function modelClass(apiVersion: string, kind: string): Promise<(new (data: Json) => { validate(): void }) | undefined> {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const candidates =
    group === "keda.sh" || group === "eventing.keda.sh"
      ? [`@kubernetes-models/keda/${group}/${version}`]
      : [group === "" ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`];
  for (const spec of candidates) {
    try {
      const mod = (await import(spec)) as Record<string, unknown>;
      const cls = mod[kind];
      if (typeof cls === "function") return cls as new (data: Json) => { validate(): void };
    } catch {
      /* not a known group/version */
    }
  }
  return undefined;
}

/** Turn a CRD's openAPIV3Schema into a strict JSON schema: unknown fields rejected. */
function strictify(schema: Json, celRules: string[]): Json {
  if (Array.isArray(schema)) return schema.map((s) => strictify(s, celRules));
  if (!schema || typeof schema !== "object") return schema;
  const out: Json = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === "x-kubernetes-validations") {
      for (const rule of v as Json[]) celRules.push(rule.rule as string);
      continue;
    }
    if (k.startsWith("x-kubernetes-")) continue;
    if (k === "properties") out[k] = Object.fromEntries(Object.entries(v as Json).map(([p, s]) => [p, strictify(s, celRules)]));
    else if (k === "items" || k === "additionalProperties") out[k] = typeof v === "object" ? strictify(v, celRules) : v;
    else out[k] = v;
  }
  if (schema["x-kubernetes-int-or-string"]) {
    delete out.type;
    out.anyOf = [{ type: "integer" }, { type: "string" }];
  }
  const preserve = schema["x-kubernetes-preserve-unknown-fields"] === true;
  if (out.type === "object" && out.properties && out.additionalProperties === undefined && !preserve) out.additionalProperties = false;
  return out;
}

/** The CEL rules of KEDA 2.20.2's CRDs, evaluated by hand (there is no CEL evaluator here). */
const CEL_RULES: Record<string, (self: Json) => boolean> = {
  "!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount) ? self.maxReplicaCount : 100)": (self) =>
    self.minReplicaCount === undefined || self.minReplicaCount <= (self.maxReplicaCount ?? 100),
};
export function normalizeCel(rule: string): string {
  return rule.replace(/\s+/g, " ").replace(/\( /g, "(").trim();
}

export interface CrdValidator {
  kind: string;
  apiVersion: string;
  validate(obj: Json): string[];
  celRules: string[];
}
export function kedaCrdValidators(): Map<string, CrdValidator> {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  const validators = new Map<string, CrdValidator>();
  for (const file of readdirSync(KEDA_CRDS).filter((f) => f.endsWith(".yaml"))) {
    const crd = parse(readFileSync(join(KEDA_CRDS, file), "utf8")) as Json;
    for (const version of crd.spec.versions as Json[]) {
      const celRules: string[] = [];
      const schema = strictify(version.schema.openAPIV3Schema, celRules);
      const check = ajv.compile(schema);
      const apiVersion = `${crd.spec.group}/${version.name}`;
      const kind = crd.spec.names.kind as string;
      validators.set(`${apiVersion}/${kind}`, {
        kind,
        apiVersion,
        celRules,
        validate(obj) {
          const errors = check(obj) ? [] : (check.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}${e.params && "additionalProperty" in e.params ? `: ${String(e.params.additionalProperty)}` : ""}`);
          for (const rule of celRules) {
            const evaluate = CEL_RULES[normalizeCel(rule)];
            if (!evaluate) errors.push(`unhandled CEL rule in the CRD (add it to CEL_RULES): ${rule}`);
            else if (!evaluate(obj.spec ?? {})) errors.push(`CEL rule failed: ${rule}`);
          }
          return errors;
        },
      });
    }
  }
  return validators;
}

// ------------------------------------------------------------------ Helm probe charts

/**
 * The Bitnami and KEDA charts cannot be downloaded here. test/k8s/helm-probes/<chart> are tiny
 * stand-ins: a values.schema.json listing the keys our values files may use (typos fail helm lint)
 * and templates that render the parts the real chart renders verbatim from our values (Bitnami's
 * extraSecrets go through `tpl`, exactly like common.tplvalues.render).
 */
export const HELM_PROBES = join(ROOT, "test", "k8s", "helm-probes");
export function helmTemplate(chart: string, valuesFile: string, set: string[] = [], setLiteral: string[] = []): K8sObject[] {
  const args = [
    "template",
    "probe",
    join(HELM_PROBES, chart),
    "-f",
    join(ROOT, valuesFile),
    ...set.flatMap((s) => ["--set", s]),
    ...setLiteral.flatMap((s) => ["--set-literal", s]),
  ];
  return parseObjects(helm(args), `helm template ${chart} -f ${valuesFile}`);
}
