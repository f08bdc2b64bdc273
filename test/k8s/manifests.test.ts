/**
 * Renders what the guide's commands apply with the real kubectl/kustomize and helm, parses every
 * object and validates it: kubernetes-models / @kubernetes-models/keda schemas, KEDA 2.20.2's CRDs
 * strictly (unknown fields rejected), helm lint of the values files. Also the image's Dockerfile.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  applyK,
  clone,
  filesForApplyF,
  find,
  GUIDE_COMMANDS,
  guideObjects,
  helm,
  HELM_PROBES,
  helmTemplate,
  kedaCrdValidators,
  key,
  KEDA_CRDS,
  kubectl,
  MANIFESTS,
  modelClass,
  overlayObjects,
  ROOT,
  type Json,
  type K8sObject,
} from "./support.js";
import { WORKER_BATCH_BACKLOG_QUERY } from "./policy.js";

async function schemaErrors(obj: K8sObject): Promise<string | undefined> {
  const Model = await modelClass(obj.apiVersion, obj.kind);
  if (!Model) return `no kubernetes-models schema for ${obj.apiVersion} ${obj.kind}`;
  try {
    new Model(obj).validate();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

describe("k8s manifests render with the guide's commands", () => {
  it("kubectl and kustomize are the real binaries", () => {
    assert.match(kubectl(["version", "--client"]), /Client Version: v1\.32\.\d+[\s\S]*Kustomize Version: v5\./);
    assert.match(helm(["version", "--short"]), /^v3\.17\./);
  });

  for (const { cmd, load } of GUIDE_COMMANDS) {
    it(`${cmd} yields parseable objects`, () => {
      const objects = load();
      assert.ok(objects.length > 0, `${cmd} applies nothing`);
    });
  }

  it("folders applied with -f hold only Kubernetes objects (no kustomization file kubectl would send)", () => {
    for (const dir of ["manifests/ml-service/", "manifests/api-service/"]) {
      for (const file of filesForApplyF(dir)) assert.doesNotMatch(file, /kustomization\.ya?ml$/i, `${file} would be sent to the API server`);
      const all = readdirSync(join(ROOT, dir));
      assert.ok(!all.some((f) => /^kustomization(\.ya?ml)?$/i.test(f)), `${dir} holds a kustomization file`);
    }
  });

  it("the guide applies each object once", () => {
    const keys = guideObjects().map(key);
    assert.deepEqual(keys.filter((k, i) => keys.indexOf(k) !== i), []);
  });

  it("the single-namespace overlay (kubectl apply -k manifests/) holds the same objects, all in ml-inference", () => {
    const overlay = overlayObjects();
    const ns = overlay.filter((o) => o.kind === "Namespace");
    assert.deepEqual(ns.map((o) => o.metadata.name), ["ml-inference"]);
    assert.equal(ns[0]!.metadata.labels?.["pod-security.kubernetes.io/enforce"], "restricted");
    for (const o of overlay.filter((x) => x.kind !== "Namespace")) assert.equal(o.metadata.namespace, "ml-inference", `${key(o)} is not in ml-inference`);
    const strip = (objs: K8sObject[]) =>
      objs
        .filter((o) => o.kind !== "Namespace")
        .map((o) => {
          const c = structuredClone(o) as Json;
          delete c.metadata.namespace;
          return JSON.stringify(c, Object.keys(flatten(c)).sort());
        })
        .sort();
    assert.deepEqual(strip(overlay), strip(guideObjects()));
  });

  it("each guide command applies the NetworkPolicies of what it deploys (the default deny with the first component step)", () => {
    const policiesOf = (cmd: string) =>
      GUIDE_COMMANDS.find((c) => c.cmd === cmd)!
        .load()
        .filter((o) => o.kind === "NetworkPolicy")
        .map((o) => o.metadata.name)
        .sort();
    assert.deepEqual(policiesOf("kubectl apply -k manifests/benthos/"), ["api-gateway", "ml-inference-default-deny-ingress", "ml-worker", "results-collector"]);
    assert.deepEqual(policiesOf("kubectl apply -f manifests/ml-service/"), ["ml-service"]);
    assert.deepEqual(policiesOf("kubectl apply -f manifests/api-service/"), ["api-service"]);
  });

  it("kustomize rejects a broken kustomization (the render step is real)", () => {
    assert.throws(() => applyK("test/k8s/helm-probes/"), /kustomization/i);
  });
});

describe("k8s objects validate against the Kubernetes and KEDA schemas", () => {
  it("every object validates with kubernetes-models / @kubernetes-models/keda", async () => {
    for (const obj of [...guideObjects(), ...overlayObjects()]) assert.equal(await schemaErrors(obj), undefined, key(obj));
  });

  it("the schema check catches a wrong type and a missing required field", async () => {
    const [dep] = clone([find(guideObjects(), "Deployment", "api-gateway")]);
    dep!.spec.template.spec.containers[0].ports[0].containerPort = "eighty";
    assert.ok(await schemaErrors(dep!), "containerPort as a string passed");
    const [so] = clone([find(guideObjects(), "ScaledObject", "ml-worker")]);
    delete so!.spec.scaleTargetRef;
    assert.ok(await schemaErrors(so!), "ScaledObject without scaleTargetRef passed");
    const [np] = clone([find(guideObjects(), "NetworkPolicy", "ml-service")]);
    np!.spec.policyTypes = "Ingress";
    assert.ok(await schemaErrors(np!), "NetworkPolicy with policyTypes as a string passed");
    const [labels] = clone([find(guideObjects(), "NetworkPolicy", "api-gateway")]);
    labels!.spec.ingress[0].from[0].namespaceSelector.matchLabels = ["ingress-nginx"];
    assert.ok(await schemaErrors(labels!), "NetworkPolicy with matchLabels as a list passed");
  });

  const validators = kedaCrdValidators();
  it(`KEDA objects validate strictly against ${KEDA_CRDS.split("/").slice(-2).join("/")}`, () => {
    assert.ok(validators.has("keda.sh/v1alpha1/ScaledObject") && validators.has("keda.sh/v1alpha1/TriggerAuthentication"));
    const keda = guideObjects().filter((o) => o.apiVersion.startsWith("keda.sh/"));
    assert.deepEqual(keda.map(key).sort(), ["ScaledObject/ml-service", "ScaledObject/ml-worker", "ScaledObject/results-collector", "TriggerAuthentication/rabbitmq-trigger-auth"]);
    for (const obj of keda) {
      const v = validators.get(`${obj.apiVersion}/${obj.kind}`);
      assert.ok(v, `no CRD for ${obj.apiVersion} ${obj.kind}`);
      assert.deepEqual(v.validate(obj), [], key(obj));
    }
  });

  it("the worker also scales on the batch backlog: a prometheus trigger the CRD takes, string-valued as KEDA's metadata must be", () => {
    const so = find(guideObjects(), "ScaledObject", "ml-worker");
    const v = validators.get("keda.sh/v1alpha1/ScaledObject")!;
    const trigger = (so.spec.triggers as Json[]).find((t) => t.type === "prometheus");
    assert.ok(trigger, "no prometheus trigger on ml-worker");
    assert.equal(trigger.metadata.query, WORKER_BATCH_BACKLOG_QUERY);
    assert.match(trigger.metadata.serverAddress, /^http:\/\/prometheus-operated\.monitoring\.svc:9090$/, "the Prometheus the ml-service trigger reads");
    assert.ok(Number(trigger.metadata.threshold) > 0);
    assert.deepEqual(v.validate(so), []);
    const [numeric] = clone([so]);
    (numeric!.spec.triggers as Json[]).find((t) => t.type === "prometheus").metadata.threshold = 250;
    assert.ok(v.validate(numeric).length > 0, "a numeric threshold passed (KEDA's metadata values are strings)");
    const [typo] = clone([so]);
    (typo!.spec.triggers as Json[]).find((t) => t.type === "prometheus").metricsType = "AverageValue";
    assert.ok(v.validate(typo).some((e) => e.includes("metricsType")), "an unknown trigger field passed");
  });

  it("the strict KEDA check catches an unknown field, a wrong enum and the CRD's CEL rule", () => {
    const so = find(guideObjects(), "ScaledObject", "ml-worker");
    const v = validators.get("keda.sh/v1alpha1/ScaledObject")!;
    const [typo] = clone([so]);
    typo!.spec.minReplicas = 1; // HPA's name, not KEDA's
    assert.ok(v.validate(typo).some((e) => e.includes("minReplicas")), "unknown field minReplicas passed");
    const [authTypo] = clone([so]);
    authTypo!.spec.triggers[0].authenticationRef.kind = "SecretAuthentication";
    assert.ok(v.validate(authTypo).length > 0, "bad authenticationRef.kind passed");
    const [cel] = clone([so]);
    cel!.spec.minReplicaCount = 20;
    cel!.spec.maxReplicaCount = 5;
    assert.ok(v.validate(cel).some((e) => e.includes("CEL")), "min > max passed");
    const ta = find(guideObjects(), "TriggerAuthentication", "rabbitmq-trigger-auth");
    const [taTypo] = clone([ta]);
    taTypo!.spec.secretTargetRef[0].secret = "rabbitmq-credentials";
    assert.ok(validators.get("keda.sh/v1alpha1/TriggerAuthentication")!.validate(taTypo).length > 0, "unknown field in secretTargetRef passed");
  });
});

describe("k8s Helm values lint and render offline", () => {
  it("helm lint --strict passes for the RabbitMQ and KEDA values", () => {
    helm(["lint", "--strict", join(HELM_PROBES, "rabbitmq"), "-f", "manifests/helm/rabbitmq-values.yaml", "--set", "auth.password=x"]);
    helm(["lint", "--strict", join(HELM_PROBES, "keda"), "-f", "manifests/helm/keda-values.yaml"]);
  });

  it("helm lint catches a misspelt key (values.schema.json of the keys the charts have)", () => {
    assert.throws(
      () => helm(["lint", "--strict", join(HELM_PROBES, "rabbitmq"), "-f", "manifests/helm/rabbitmq-values.yaml", "--set", "auth.password=x", "--set", "loadDefinitions.enabled=true"]),
      /loadDefinitions/,
    );
    assert.throws(() => helm(["lint", "--strict", join(HELM_PROBES, "keda"), "-f", "manifests/helm/keda-values.yaml", "--set", "resources.operator.limits.ephemeral-storage=null"]), /ephemeral-storage/);
  });

  it("the RabbitMQ definitions render as valid JSON (--set-literal password kept verbatim) and refuse to render without a password", () => {
    const password = 'pa"ss\\wo,rd{{x}}';
    const rendered = helmTemplate("rabbitmq", "manifests/helm/rabbitmq-values.yaml", [], [`auth.password=${password}`]);
    const defs = JSON.parse(find(rendered, "Secret", "rabbitmq-load-definition").stringData["load_definition.json"]);
    assert.equal(defs.users[0].password, password);
    assert.throws(() => helmTemplate("rabbitmq", "manifests/helm/rabbitmq-values.yaml"), /set the RabbitMQ password/);
  });

  it("the values files write no password", () => {
    const raw = readFileSync(join(MANIFESTS, "helm", "rabbitmq-values.yaml"), "utf8");
    assert.doesNotMatch(raw, /^\s*password:\s*\S/m);
    assert.doesNotMatch(raw, /"password":\s*"[^{]/);
  });
});

describe("k8s docs/deployment.md agrees with the manifests", () => {
  const docs = readFileSync(join(ROOT, "docs", "deployment.md"), "utf8");
  /** name → keys of every `kubectl create secret generic NAME --from-literal=KEY=...` in the docs. */
  const created = new Map<string, Set<string>>();
  for (const line of docs.replace(/\\\n\s*/g, " ").split("\n")) {
    const m = /create secret generic (\S+)((?:\s+--from-literal=[\w.-]+=\S*)+)/.exec(line);
    if (!m) continue;
    const keys = created.get(m[1]!) ?? new Set<string>();
    for (const k of m[2]!.matchAll(/--from-literal=([\w.-]+)=/g)) keys.add(k[1]!);
    created.set(m[1]!, keys);
  }

  it("creates every Secret and key the manifests reference", () => {
    const refs: Array<{ name: string; key: string; by: string }> = [];
    for (const o of guideObjects()) {
      for (const c of [...(o.spec?.template?.spec?.initContainers ?? []), ...(o.spec?.template?.spec?.containers ?? [])] as Json[]) {
        for (const e of (c.env ?? []) as Json[]) if (e.valueFrom?.secretKeyRef) refs.push({ ...e.valueFrom.secretKeyRef, by: `${key(o)} ${e.name}` });
      }
      for (const r of (o.kind === "TriggerAuthentication" ? o.spec?.secretTargetRef ?? [] : []) as Json[]) refs.push({ name: r.name, key: r.key, by: key(o) });
    }
    assert.ok(refs.some((r) => r.name === "ml-service-token"), "no manifest references ml-service-token");
    for (const r of refs) assert.ok(created.get(r.name)?.has(r.key), `${r.by} reads Secret ${r.name} key ${r.key}, which docs/deployment.md does not create`);
  });

  it("names the namespaces the NetworkPolicies let in", () => {
    const namespaces = guideObjects()
      .filter((o) => o.kind === "NetworkPolicy")
      .flatMap((o) => (o.spec?.ingress ?? []) as Json[])
      .flatMap((r) => (r.from ?? []) as Json[])
      .map((p) => p.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"] as string | undefined)
      .filter((n): n is string => n !== undefined);
    assert.deepEqual([...new Set(namespaces)].sort(), ["ingress-nginx", "monitoring"]);
    for (const n of namespaces) assert.match(docs, new RegExp(`namespace \`${n}\``), `docs/deployment.md does not name namespace ${n}`);
  });
});

const ADMIN_SECRET = { name: "admin-api-key", key: "key" };

/**
 * What is wrong with how these objects give the gateway its admin key: it must read ADMIN_API_KEY
 * from Secret admin-api-key key `key` with `optional: true` (a cluster without an admin key still
 * starts; the admin routes then refuse everyone), never as a literal, and no other pod may read it.
 */
function adminKeyProblems(objects: K8sObject[]): string[] {
  const out: string[] = [];
  for (const o of objects) {
    for (const c of (o.spec?.template?.spec?.containers ?? []) as Json[]) {
      const where = `${key(o)} container ${c.name}`;
      const env = ((c.env ?? []) as Json[]).filter((e) => e.name === "ADMIN_API_KEY");
      const readsSecret = ((c.env ?? []) as Json[]).some((e) => e.valueFrom?.secretKeyRef?.name === ADMIN_SECRET.name);
      if (key(o) !== "Deployment/api-gateway") {
        if (env.length > 0 || readsSecret) out.push(`${where}: only the gateway serves the admin routes, yet this reads the admin key`);
        continue;
      }
      const ref = env[0]?.valueFrom?.secretKeyRef;
      if (env.length !== 1) out.push(`${where}: ADMIN_API_KEY is set ${env.length} times`);
      else if (env[0].value !== undefined) out.push(`${where}: ADMIN_API_KEY is written literally`);
      else if (!ref || ref.name !== ADMIN_SECRET.name || ref.key !== ADMIN_SECRET.key) out.push(`${where}: ADMIN_API_KEY must come from Secret ${ADMIN_SECRET.name} key ${ADMIN_SECRET.key}`);
      else if (ref.optional !== true) out.push(`${where}: ADMIN_API_KEY's secretKeyRef must be optional (a cluster without an admin key must start)`);
    }
  }
  return out;
}

describe("k8s the gateway's admin key comes from an optional Secret", () => {
  it("the gateway reads ADMIN_API_KEY from Secret admin-api-key (key key, optional), and nothing else reads it", () => {
    assert.deepEqual(adminKeyProblems(guideObjects()), []);
    assert.deepEqual(adminKeyProblems(overlayObjects()), []);
    const gateway = find(guideObjects(), "Deployment", "api-gateway").spec.template.spec.containers[0];
    assert.deepEqual(gateway.env.find((e: Json) => e.name === "ADMIN_API_KEY"), { name: "ADMIN_API_KEY", valueFrom: { secretKeyRef: { ...ADMIN_SECRET, optional: true } } });
  });

  it("the check catches the key required, written literally, from another Secret, missing, or given to another pod", () => {
    const broken: Array<[string, (objects: K8sObject[]) => void]> = [
      ["required", (objects) => delete adminEnv(objects, "api-gateway").valueFrom.secretKeyRef.optional],
      ["literal", (objects) => Object.assign(adminEnv(objects, "api-gateway"), { value: "x".repeat(32), valueFrom: undefined })],
      ["another Secret", (objects) => (adminEnv(objects, "api-gateway").valueFrom.secretKeyRef.name = "postgres-credentials")],
      ["another key", (objects) => (adminEnv(objects, "api-gateway").valueFrom.secretKeyRef.key = "token")],
      ["missing", (objects) => { const c = find(objects, "Deployment", "api-gateway").spec.template.spec.containers[0]; c.env = c.env.filter((e: Json) => e.name !== "ADMIN_API_KEY"); }],
      ["given to the API service", (objects) => find(objects, "Deployment", "api-service").spec.template.spec.containers[0].env.push(structuredClone(adminEnv(objects, "api-gateway")))],
    ];
    for (const [what, breakIt] of broken) {
      const objects = clone(guideObjects());
      breakIt(objects);
      assert.notDeepEqual(adminKeyProblems(objects), [], `the admin key ${what} passed`);
    }
  });
});

function adminEnv(objects: K8sObject[], deployment: string): Json {
  return find(objects, "Deployment", deployment).spec.template.spec.containers[0].env.find((e: Json) => e.name === "ADMIN_API_KEY");
}

describe("k8s image: Dockerfile and .dockerignore", () => {
  const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
  const lines = dockerfile.split("\n").filter((l) => !/^\s*#/.test(l));
  const text = lines.join("\n");

  it("is multi-stage on a base pinned by version tag, matching package.json engines", () => {
    const arg = /^ARG NODE_IMAGE=(\S+)/m.exec(text)?.[1];
    assert.ok(arg, "no NODE_IMAGE build arg");
    assert.match(arg, /^node:20\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?$/, "base image not pinned to a full Node 20 version");
    const froms = [...text.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)].map((m) => ({ image: m[1], stage: m[2] }));
    assert.ok(froms.length >= 2, "not multi-stage");
    for (const f of froms) assert.equal(f.image, "${NODE_IMAGE}", `stage ${String(f.stage)} does not use the pinned base`);
    const engines = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { engines?: { node?: string } }).engines?.node ?? "";
    assert.match(engines, /20/, "package.json engines.node does not allow Node 20");
  });

  it("runs production dependencies only, as a non-root numeric user, with one entrypoint for every component", () => {
    assert.match(text, /npm ci --omit=dev/);
    assert.match(text, /npm run build/);
    const runtime = text.slice(text.lastIndexOf("FROM "));
    assert.match(runtime, /COPY --from=deps\b.*node_modules/);
    assert.doesNotMatch(runtime, /COPY --from=build\b.*node_modules/, "dev dependencies copied into the runtime stage");
    assert.match(runtime, /^USER 10001:10001$/m);
    assert.match(runtime, /^ENTRYPOINT \["node", "dist\/main\.js"\]$/m);
    for (const copied of [...text.matchAll(/^COPY (?!--from)(?:--\S+ )*(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/))) {
      assert.ok(existsSync(join(ROOT, copied)), `Dockerfile copies ${copied}, which does not exist`);
    }
  });

  it(".dockerignore keeps node_modules, dist, data, .git and the tests out of the build context", () => {
    const ignore = readFileSync(join(ROOT, ".dockerignore"), "utf8").split("\n").map((l) => l.trim());
    for (const entry of ["**/node_modules", "dist", "data", ".git", "test", "*.gguf"]) assert.ok(ignore.includes(entry), `.dockerignore lacks ${entry}`);
    for (const needed of ["src", "package.json", "package-lock.json", ".npmrc", "tsconfig.json", "tsconfig.build.json"]) assert.ok(!ignore.includes(needed), `.dockerignore drops ${needed}`);
    // Every local file `npm run build` runs must be in the build context and copied into the build stage.
    const build = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts.build ?? "";
    for (const script of build.match(/scripts\/[\w.-]+\.m?js/g) ?? []) {
      assert.ok(ignore.includes(`!${script}`) || !ignore.includes("scripts"), `.dockerignore drops ${script}, which npm run build runs`);
      assert.match(text, new RegExp(`COPY ${script.replace(".", "\\.")} `), `the build stage does not copy ${script}`);
    }
  });
});

function flatten(obj: Json, prefix = "", out: Record<string, true> = {}): Record<string, true> {
  if (obj && typeof obj === "object") {
    for (const [k, v] of Object.entries(obj)) {
      out[k] = true;
      flatten(v, `${prefix}${k}.`, out);
    }
  }
  return out;
}
