/**
 * Policy rules for the manifests: one per practice the guide and issue promise, each named after the
 * kube-linter / kube-score / Polaris check it mirrors (those tools are not installable here), plus
 * cross-reference rules that tie the manifests to the code (queue names, ports, secrets, metrics).
 * Every rule comes with at least one fixture: a good object broken on purpose that the rule must catch.
 * Network isolation and Secret scope: policy-isolation.ts.
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_PORTS } from "../../src/config.js";
import { QUEUE_NAMES } from "../../src/domain/contracts.js";
import { deadLetterQueueName, mainQueueArguments } from "../../src/adapters/rabbitmq/message-queue.js";
import { COMMAND_NEEDS, GUIDE_SECRETS, GUIDE_WORKLOADS } from "./facts.js";
import { analyze } from "./promql.js";
import { containersOf, envOf, envValue, find, type Json, type K8sObject, podTemplates, ROOT, selects } from "./support.js";

export interface Bundle {
  /** Everything the guide's kubectl commands apply. */
  objects: K8sObject[];
  /** helm template of the RabbitMQ values (probe chart), with a password set. */
  rabbitmq: K8sObject[];
  /** helm template of the KEDA values (probe chart). */
  keda: K8sObject[];
}

export interface Rule {
  id: string;
  mirrors: string;
  check(b: Bundle): string[];
}
export interface Fixture {
  rule: string;
  what: string;
  breakIt(b: Bundle): void;
}

const PKG = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
export const IMAGE = `ghcr.io/devops-360-online/ml-inference:${PKG.version}`;

const COMMAND_PORT: Record<string, number> = {
  gateway: DEFAULT_PORTS.gateway,
  "ml-service": DEFAULT_PORTS.mlService,
  "api-service": DEFAULT_PORTS.apiService,
  worker: DEFAULT_PORTS.worker,
  collector: DEFAULT_PORTS.collector,
};
const SHUTDOWN_DEFAULT_MS = 25_000;

const name = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
const deployments = (b: Bundle) => b.objects.filter((o) => o.kind === "Deployment");
function eachContainer(b: Bundle, fn: (c: Json, where: string, pod: Json, owner: K8sObject) => string | string[] | undefined): string[] {
  const out: string[] = [];
  for (const { owner, spec } of podTemplates(b.objects)) {
    for (const c of containersOf(spec)) {
      const r = fn(c, `${name(owner)} container ${c.name}`, spec, owner);
      if (r) out.push(...(Array.isArray(r) ? r : [r]));
    }
  }
  return out;
}
function effective(c: Json, pod: Json, field: string): unknown {
  return c.securityContext?.[field] ?? pod.securityContext?.[field];
}
function resourceRule(resource: string) {
  return (b: Bundle) =>
    eachContainer(b, (c, where) => {
      const missing = ["requests", "limits"].filter((k) => c.resources?.[k]?.[resource] === undefined);
      return missing.length ? `${where}: no ${resource} ${missing.join(" and ")}` : undefined;
    });
}
function probeRule(probe: "livenessProbe" | "readinessProbe") {
  return (b: Bundle) =>
    deployments(b).flatMap((d) =>
      containersOf(d.spec.template.spec)
        .filter((c: Json) => !c[probe])
        .map((c: Json) => `${name(d)} container ${c.name}: no ${probe}`),
    );
}
function probePortRule(probe: "livenessProbe" | "readinessProbe") {
  return (b: Bundle) =>
    eachContainer(b, (c, where) => {
      const port = c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port;
      if (port === undefined) return undefined;
      const ports = (c.ports ?? []) as Json[];
      const ok = typeof port === "number" ? ports.some((p) => p.containerPort === port) : ports.some((p) => p.name === port);
      return ok ? undefined : `${where}: ${probe} port ${String(port)} is not a container port`;
    });
}
function preStopSeconds(c: Json): number {
  const cmd = c.lifecycle?.preStop?.exec?.command as string[] | undefined;
  if (cmd && cmd[0] === "sleep") return Number(cmd[1] ?? 0);
  return Number(c.lifecycle?.preStop?.sleep?.seconds ?? 0);
}
function componentOf(o: K8sObject): string | undefined {
  return GUIDE_WORKLOADS[name(o)];
}
function isMounted(pod: Json, c: Json, path: string, kinds: string[]): boolean {
  return (c.volumeMounts ?? []).some((m: Json) => {
    if (!(path === m.mountPath || path.startsWith(`${m.mountPath}/`)) || m.readOnly) return false;
    const vol = (pod.volumes ?? []).find((v: Json) => v.name === m.name);
    return vol && kinds.some((k) => vol[k] !== undefined);
  });
}
function definitions(b: Bundle): Json {
  const secret = b.rabbitmq.find((o) => o.kind === "Secret" && o.metadata.name === "rabbitmq-load-definition");
  const raw = secret?.stringData?.["load_definition.json"];
  if (typeof raw !== "string") return undefined;
  return JSON.parse(raw);
}

export const RULES: Rule[] = [
  // ---- security context ------------------------------------------------------------------
  {
    id: "run-as-non-root",
    mirrors: "kube-linter run-as-non-root",
    check: (b) =>
      eachContainer(b, (c, where, pod) =>
        effective(c, pod, "runAsNonRoot") === true && effective(c, pod, "runAsUser") !== 0 ? undefined : `${where}: not forced to run as non-root`,
      ),
  },
  {
    id: "container-security-context-user-group-id",
    mirrors: "kube-score container-security-context-user-group-id",
    check: (b) =>
      eachContainer(b, (c, where, pod) => {
        const uid = Number(effective(c, pod, "runAsUser"));
        const gid = Number(effective(c, pod, "runAsGroup"));
        return uid > 10000 && gid > 10000 ? undefined : `${where}: runAsUser/runAsGroup must be set above 10000 (image user is 10001)`;
      }),
  },
  {
    id: "privilege-escalation-container",
    mirrors: "kube-linter privilege-escalation-container",
    check: (b) => eachContainer(b, (c, where) => (c.securityContext?.allowPrivilegeEscalation === false ? undefined : `${where}: allowPrivilegeEscalation is not false`)),
  },
  {
    id: "privileged-container",
    mirrors: "kube-linter privileged-container",
    check: (b) => eachContainer(b, (c, where) => (c.securityContext?.privileged === true ? `${where}: privileged` : undefined)),
  },
  {
    id: "no-read-only-root-fs",
    mirrors: "kube-linter no-read-only-root-fs",
    check: (b) => eachContainer(b, (c, where) => (c.securityContext?.readOnlyRootFilesystem === true ? undefined : `${where}: root filesystem is writable`)),
  },
  {
    id: "drop-net-raw-capability",
    mirrors: "kube-linter drop-net-raw-capability (stricter: drop ALL, add nothing)",
    check: (b) =>
      eachContainer(b, (c, where) => {
        const caps = c.securityContext?.capabilities ?? {};
        if (!(caps.drop ?? []).includes("ALL")) return `${where}: capabilities.drop lacks ALL`;
        if ((caps.add ?? []).length > 0) return `${where}: adds capabilities ${String(caps.add)}`;
        return undefined;
      }),
  },
  {
    id: "container-seccomp-profile",
    mirrors: "kube-score container-seccomp-profile",
    check: (b) =>
      eachContainer(b, (c, where, pod) => {
        const type = (c.securityContext?.seccompProfile ?? pod.securityContext?.seccompProfile)?.type;
        return type === "RuntimeDefault" ? undefined : `${where}: seccompProfile is ${String(type)}, not RuntimeDefault`;
      }),
  },
  {
    id: "writable-volume-for-writes",
    mirrors: "project rule (companion of no-read-only-root-fs)",
    check: (b) =>
      eachContainer(b, (c, where, pod) => {
        const out: string[] = [];
        for (const v of ["DATA_DIR", "HOME"]) {
          const path = envValue(c, v);
          if (!path || !isMounted(pod, c, path, ["emptyDir", "persistentVolumeClaim"])) out.push(`${where}: ${v}=${String(path)} is not a writable volume`);
        }
        if (!isMounted(pod, c, "/tmp", ["emptyDir"])) out.push(`${where}: /tmp is not an emptyDir`);
        return out;
      }),
  },
  // ---- resources ---------------------------------------------------------------------------
  { id: "unset-cpu-requirements", mirrors: "kube-linter unset-cpu-requirements", check: resourceRule("cpu") },
  { id: "unset-memory-requirements", mirrors: "kube-linter unset-memory-requirements", check: resourceRule("memory") },
  {
    id: "container-ephemeral-storage-request-and-limit",
    mirrors: "kube-score container-ephemeral-storage-request-and-limit",
    check: resourceRule("ephemeral-storage"),
  },
  // ---- images ------------------------------------------------------------------------------
  {
    id: "latest-tag",
    mirrors: "kube-linter latest-tag / kube-score container-image-tag",
    check: (b) =>
      eachContainer(b, (c, where) => {
        const image = String(c.image ?? "");
        const tag = image.includes("@") ? "digest" : image.slice(image.lastIndexOf("/") + 1).split(":")[1];
        return tag && tag !== "latest" ? undefined : `${where}: image ${image} has no pinned tag`;
      }),
  },
  {
    id: "image-is-this-release",
    mirrors: "project rule (the one image of this package version)",
    check: (b) => eachContainer(b, (c, where) => (c.image === IMAGE ? undefined : `${where}: image ${String(c.image)} is not ${IMAGE}`)),
  },
  // ---- probes ------------------------------------------------------------------------------
  { id: "no-liveness-probe", mirrors: "kube-linter no-liveness-probe", check: probeRule("livenessProbe") },
  { id: "no-readiness-probe", mirrors: "kube-linter no-readiness-probe", check: probeRule("readinessProbe") },
  { id: "liveness-port", mirrors: "kube-linter liveness-port", check: probePortRule("livenessProbe") },
  { id: "readiness-port", mirrors: "kube-linter readiness-port", check: probePortRule("readinessProbe") },
  {
    id: "pod-probes",
    mirrors: "kube-score pod-probes (liveness must not be the readiness check)",
    check: (b) =>
      deployments(b).flatMap((d) =>
        containersOf(d.spec.template.spec).flatMap((c: Json) => {
          const out: string[] = [];
          if (c.livenessProbe?.httpGet?.path !== "/livez") out.push(`${name(d)}: liveness probe is not GET /livez`);
          if (c.readinessProbe?.httpGet?.path !== "/health") out.push(`${name(d)}: readiness probe is not GET /health`);
          return out;
        }),
      ),
  },
  // ---- service accounts --------------------------------------------------------------------
  {
    id: "default-service-account",
    mirrors: "kube-linter default-service-account",
    check: (b) =>
      podTemplates(b.objects)
        .filter(({ spec }) => !spec.serviceAccountName || spec.serviceAccountName === "default")
        .map(({ owner }) => `${name(owner)}: uses the default ServiceAccount`),
  },
  {
    id: "dedicated-service-account",
    mirrors: "project rule (one ServiceAccount per component)",
    check: (b) => {
      const seen = new Map<string, string>();
      const out: string[] = [];
      for (const { owner, spec } of podTemplates(b.objects)) {
        const other = seen.get(spec.serviceAccountName);
        if (other) out.push(`${name(owner)} shares ServiceAccount ${String(spec.serviceAccountName)} with ${other}`);
        seen.set(spec.serviceAccountName, name(owner));
      }
      return out;
    },
  },
  {
    id: "non-existent-service-account",
    mirrors: "kube-linter non-existent-service-account",
    check: (b) =>
      podTemplates(b.objects)
        .filter(({ spec }) => !b.objects.some((o) => o.kind === "ServiceAccount" && o.metadata.name === spec.serviceAccountName))
        .map(({ owner, spec }) => `${name(owner)}: ServiceAccount ${String(spec.serviceAccountName)} is not applied by the guide`),
  },
  {
    id: "automount-service-account-token",
    mirrors: "Polaris automountServiceAccountToken",
    check: (b) => [
      ...b.objects
        .filter((o) => o.kind === "ServiceAccount" && o.automountServiceAccountToken !== false)
        .map((o) => `${name(o)}: automountServiceAccountToken is not false`),
      ...podTemplates(b.objects)
        .filter(({ spec }) => spec.automountServiceAccountToken !== false)
        .map(({ owner }) => `${name(owner)}: pod automountServiceAccountToken is not false`),
    ],
  },
  // ---- secrets -----------------------------------------------------------------------------
  {
    id: "env-var-secret",
    mirrors: "kube-linter env-var-secret",
    check: (b) =>
      eachContainer(b, (c, where) =>
        (c.env ?? [])
          .filter((e: Json) => typeof e.value === "string")
          .filter((e: Json) => /(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|DSN|_URL)$/i.test(e.name) && /:\/\/[^/\s]*:[^@/\s]*@|^[A-Za-z0-9+/=_-]{24,}$/.test(e.value))
          .map((e: Json) => `${where}: ${e.name} carries a credential literally`),
      ),
  },
  {
    id: "no-secret-objects",
    mirrors: "project rule (Secrets are referenced, never written with values)",
    check: (b) => b.objects.filter((o) => o.kind === "Secret").map((o) => `${name(o)}: a Secret is written into the manifests`),
  },
  {
    id: "env-value-from-secrets",
    mirrors: "project rule (env refers to the Secrets and keys the guide creates)",
    check: (b) =>
      eachContainer(b, (c, where) => {
        const out: string[] = [];
        for (const [variable, ref] of Object.entries(GUIDE_SECRETS)) {
          const e = envOf(c).get(variable);
          if (!e) continue;
          const s = e.valueFrom?.secretKeyRef;
          if (!s || s.name !== ref.secret || s.key !== ref.key) out.push(`${where}: ${variable} must come from Secret ${ref.secret} key ${ref.key}`);
          if (s && !s.optional !== !ref.optional) out.push(`${where}: ${variable} secretKeyRef must ${ref.optional ? "" : "not "}be optional`);
        }
        for (const e of c.env ?? []) {
          const s = e.valueFrom?.secretKeyRef;
          if (s && !Object.values(GUIDE_SECRETS).some((r) => r.secret === s.name && r.key === s.key)) out.push(`${where}: ${e.name} reads unknown Secret ${s.name}/${s.key}`);
        }
        for (const from of c.envFrom ?? []) if (from.secretRef) out.push(`${where}: envFrom a whole Secret (${from.secretRef.name})`);
        return out;
      }),
  },
  {
    id: "component-secret-scope",
    mirrors: "project rule (each component gets exactly the Secret-backed variables it reads: its servers, the ML Service token)",
    check: (b) =>
      eachContainer(b, (c, where, _pod, owner) => {
        const command = componentOf(owner);
        if (!command) return `${where}: not one of the guide's workloads`;
        const want = COMMAND_NEEDS[command] ?? [];
        const have = Object.keys(GUIDE_SECRETS).filter((v) => envOf(c).has(v));
        const missing = want.filter((v) => !have.includes(v));
        const extra = have.filter((v) => !want.includes(v));
        return [...missing.map((v) => `${where}: ${command} needs ${v}`), ...extra.map((v) => `${where}: ${command} does not need ${v}`)];
      }),
  },
  {
    id: "duplicate-env-var",
    mirrors: "kube-linter duplicate-env-var",
    check: (b) =>
      eachContainer(b, (c, where) => {
        const names = (c.env ?? []).map((e: Json) => e.name as string);
        return names.filter((n: string, i: number) => names.indexOf(n) !== i).map((n: string) => `${where}: ${n} set twice`);
      }),
  },
  // ---- storage and shutdown ----------------------------------------------------------------
  {
    id: "model-cache-pvc",
    mirrors: "project rule (PVC for the ML Service's model cache; claims exist)",
    check: (b) => {
      const out: string[] = [];
      for (const { owner, spec } of podTemplates(b.objects)) {
        for (const v of spec.volumes ?? []) {
          const claim = v.persistentVolumeClaim?.claimName;
          if (claim && !b.objects.some((o) => o.kind === "PersistentVolumeClaim" && o.metadata.name === claim)) out.push(`${name(owner)}: PVC ${claim} does not exist`);
        }
      }
      const ml = b.objects.find((o) => o.kind === "Deployment" && o.metadata.name === "ml-service");
      const c = ml && containersOf(ml.spec.template.spec)[0];
      const cache = c && envValue(c, "MODEL_CACHE_DIR");
      if (!ml || !c || !cache || !isMounted(ml.spec.template.spec, c, cache, ["persistentVolumeClaim"])) out.push("ml-service: MODEL_CACHE_DIR is not on a PersistentVolumeClaim");
      const model = c && envValue(c, "MODEL");
      if (model && !model.startsWith("hf:") && cache && !model.startsWith(`${cache}/`)) out.push(`ml-service: MODEL ${model} is outside the model cache ${cache}`);
      return out;
    },
  },
  {
    id: "termination-grace-period",
    mirrors: "project rule (grace period outlasts preStop + SHUTDOWN_TIMEOUT_MS)",
    check: (b) =>
      eachContainer(b, (c, where, pod) => {
        const grace = Number(pod.terminationGracePeriodSeconds ?? 30);
        const drainMs = Number(envValue(c, "SHUTDOWN_TIMEOUT_MS") ?? SHUTDOWN_DEFAULT_MS);
        const needed = preStopSeconds(c) + drainMs / 1000;
        return grace > needed ? undefined : `${where}: terminationGracePeriodSeconds ${grace} ≤ preStop + drain ${needed}s`;
      }),
  },
  {
    id: "deployment-targeted-by-hpa-does-not-have-replicas",
    mirrors: "kube-score deployment-targeted-by-hpa-does-not-have-replicas",
    check: (b) =>
      b.objects
        .filter((o) => o.kind === "ScaledObject")
        .map((so) => b.objects.find((o) => o.kind === "Deployment" && o.metadata.name === so.spec?.scaleTargetRef?.name))
        .filter((d): d is K8sObject => d !== undefined && d.spec?.replicas !== undefined)
        .map((d) => `${name(d)}: sets replicas although KEDA scales it`),
  },
  // ---- cross references --------------------------------------------------------------------
  {
    id: "mismatching-selector",
    mirrors: "kube-linter mismatching-selector",
    check: (b) =>
      b.objects
        .filter((o) => ["Deployment", "StatefulSet", "DaemonSet"].includes(o.kind))
        .filter((o) => !selects(o.spec?.selector?.matchLabels, o.spec?.template?.metadata?.labels ?? {}))
        .map((o) => `${name(o)}: selector does not match its pod labels`),
  },
  {
    id: "dangling-service",
    mirrors: "kube-linter dangling-service / kube-score service-targets-pod",
    check: (b) =>
      b.objects
        .filter((o) => o.kind === "Service")
        .filter((s) => podTemplates(b.objects).filter((p) => selects(s.spec?.selector, p.labels)).length !== 1)
        .map((s) => `${name(s)}: selects no workload (or several)`),
  },
  {
    id: "invalid-target-ports",
    mirrors: "kube-linter invalid-target-ports",
    check: (b) =>
      b.objects
        .filter((o) => o.kind === "Service")
        .flatMap((s) => {
          const pods = podTemplates(b.objects).filter((p) => selects(s.spec?.selector, p.labels));
          return (s.spec?.ports ?? [])
            .filter((port: Json) =>
              !pods.some((p) =>
                containersOf(p.spec).some((c: Json) =>
                  (c.ports ?? []).some((cp: Json) => (typeof port.targetPort === "string" ? cp.name === port.targetPort : cp.containerPort === (port.targetPort ?? port.port))),
                ),
              ),
            )
            .map((port: Json) => `${name(s)}: targetPort ${String(port.targetPort)} is no container port`);
        }),
  },
  {
    id: "dangling-ingress",
    mirrors: "kube-linter dangling-ingress / kube-score ingress-targets-service",
    check: (b) =>
      b.objects
        .filter((o) => o.kind === "Ingress")
        .flatMap((ing) =>
          (ing.spec?.rules ?? []).flatMap((r: Json) =>
            (r.http?.paths ?? []).flatMap((p: Json) => {
              const svc = b.objects.find((o) => o.kind === "Service" && o.metadata.name === p.backend?.service?.name);
              if (!svc) return [`${name(ing)} ${p.path}: Service ${String(p.backend?.service?.name)} does not exist`];
              const port = p.backend.service.port;
              const ok = (svc.spec?.ports ?? []).some((sp: Json) => (port.name ? sp.name === port.name : sp.port === port.number));
              return ok ? [] : [`${name(ing)} ${p.path}: Service ${svc.metadata.name} has no port ${JSON.stringify(port)}`];
            }),
          ),
        ),
  },
  {
    id: "ingress-routes",
    mirrors: "project rule (the Ingress routes by prefix as DESIGN.md splits the paths)",
    check: (b) => {
      const want: Record<string, string> = {
        "/api/v1/inference": "api-gateway",
        "/v1": "api-gateway",
        "/api/v1/queue": "api-gateway",
        "/api/v1/webhooks": "api-gateway",
        "/api/v1/admin": "api-gateway",
        "/console": "api-gateway",
        "/api/v1/status": "api-service",
        "/api/v1/requests": "api-service",
        "/api/v1/quota": "api-service",
        "/events": "api-service",
      };
      const ing = b.objects.find((o) => o.kind === "Ingress");
      if (!ing) return ["no Ingress"];
      const paths = (ing.spec?.rules ?? []).flatMap((r: Json) => r.http?.paths ?? []) as Json[];
      return Object.entries(want)
        .filter(([path, svc]) => !paths.some((p) => p.path === path && p.pathType === "Prefix" && p.backend?.service?.name === svc))
        .map(([path, svc]) => `Ingress: ${path} (Prefix) does not route to ${svc}`);
    },
  },
  {
    id: "dangling-scaledobject",
    mirrors: "kube-linter dangling-horizontalpodautoscaler (KEDA creates the HPA)",
    check: (b) =>
      b.objects
        .filter((o) => o.kind === "ScaledObject")
        .filter((so) => {
          const ref = so.spec?.scaleTargetRef ?? {};
          return (ref.kind ?? "Deployment") !== "Deployment" || !b.objects.some((o) => o.kind === "Deployment" && o.metadata.name === ref.name);
        })
        .map((so) => `${name(so)}: scales no existing Deployment`),
  },
  {
    id: "dangling-trigger-authentication",
    mirrors: "project rule (ScaledObjects' authenticationRef resolves to the rabbitmq-credentials Secret)",
    check: (b) => {
      const out: string[] = [];
      for (const so of b.objects.filter((o) => o.kind === "ScaledObject")) {
        for (const t of so.spec?.triggers ?? []) {
          if (t.type !== "rabbitmq") continue;
          const ta = b.objects.find((o) => o.kind === "TriggerAuthentication" && o.metadata.name === t.authenticationRef?.name);
          if (!ta) {
            out.push(`${name(so)}: TriggerAuthentication ${String(t.authenticationRef?.name)} does not exist`);
            continue;
          }
          const host = (ta.spec?.secretTargetRef ?? []).find((r: Json) => r.parameter === "host");
          if (!host || host.name !== GUIDE_SECRETS.AMQP_URL!.secret || host.key !== GUIDE_SECRETS.AMQP_URL!.key) out.push(`${name(ta)}: host must come from Secret rabbitmq-credentials key url`);
          if (t.metadata?.host || t.metadata?.hostFromEnv) out.push(`${name(so)}: the AMQP host is given in the trigger instead of the Secret`);
        }
      }
      return out;
    },
  },
  {
    id: "keda-triggers-match-code",
    mirrors: "project rule (queue names and metric equal the code's)",
    check: (b) => {
      const out: string[] = [];
      const want: Record<string, string[]> = {
        // The batch backlog waits in PostgreSQL, where the queue length cannot see it.
        "ml-worker": [`rabbitmq:${QUEUE_NAMES.requests}`, `prometheus:${WORKER_BATCH_BACKLOG_QUERY}`],
        "results-collector": [`rabbitmq:${QUEUE_NAMES.results}`],
        "ml-service": ["cpu", "prometheus:sum(rate(ml_tokens_processed_total[1m]))"],
      };
      for (const [target, triggers] of Object.entries(want)) {
        const so = b.objects.find((o) => o.kind === "ScaledObject" && o.spec?.scaleTargetRef?.name === target);
        const have = ((so?.spec?.triggers ?? []) as Json[]).map((t) =>
          t.type === "rabbitmq" ? `rabbitmq:${String(t.metadata?.queueName)}` : t.type === "prometheus" ? `prometheus:${String(t.metadata?.query)}` : String(t.type),
        );
        if (JSON.stringify([...have].sort()) !== JSON.stringify([...triggers].sort())) out.push(`ScaledObject for ${target}: triggers ${have.join(", ")} ≠ ${triggers.join(", ")}`);
      }
      // The queue-name env of the components must agree with the code's defaults too.
      eachContainer(b, (c, where) => {
        if (envValue(c, "QUEUE_REQUESTS") !== undefined && envValue(c, "QUEUE_REQUESTS") !== QUEUE_NAMES.requests) out.push(`${where}: QUEUE_REQUESTS ≠ ${QUEUE_NAMES.requests}`);
        if (envValue(c, "QUEUE_RESULTS") !== undefined && envValue(c, "QUEUE_RESULTS") !== QUEUE_NAMES.results) out.push(`${where}: QUEUE_RESULTS ≠ ${QUEUE_NAMES.results}`);
        return undefined;
      });
      for (const so of b.objects.filter((o) => o.kind === "ScaledObject")) {
        for (const t of so.spec?.triggers ?? []) {
          if (t.type !== "prometheus") continue;
          // Every metric the query selects, range vector or instant (a gauge needs no rate()).
          const { selectors } = analyze(String(t.metadata?.query), { labelsOf: () => new Set(), targetLabels: new Set() });
          if (selectors.length === 0) out.push(`${name(so)}: the query ${String(t.metadata?.query)} selects no metric`);
          for (const metric of selectors.map((sel) => sel.name)) {
            if (!metric || !metricDefinedInCode(metric)) out.push(`${name(so)}: metric ${String(metric)} is not defined in src/`);
          }
        }
      }
      return out;
    },
  },
  {
    id: "component-ports-and-commands",
    mirrors: "project rule (args, PORT and containerPort agree with the CLI)",
    check: (b) =>
      eachContainer(b, (c, where, _pod, owner) => {
        const command = componentOf(owner);
        const out: string[] = [];
        if (!command || c.args?.[0] !== command || c.command !== undefined) out.push(`${where}: args ${JSON.stringify(c.args)} do not run ${String(command)} (ENTRYPOINT is node dist/main.js)`);
        const port = command ? COMMAND_PORT[command] : undefined;
        if (port !== undefined) {
          if (!(c.ports ?? []).some((p: Json) => p.name === "http" && p.containerPort === port)) out.push(`${where}: no container port http=${port}`);
          if (envValue(c, "PORT") !== String(port)) out.push(`${where}: PORT is not ${port}`);
        }
        return out;
      }),
  },
  {
    id: "ml-service-url",
    mirrors: "project rule (the worker's ML_SERVICE_URL names the ml-service Service and port)",
    check: (b) =>
      eachContainer(b, (c, where) => {
        const raw = envValue(c, "ML_SERVICE_URL");
        if (raw === undefined) return componentOfContainer(b, c) === "worker" ? `${where}: ML_SERVICE_URL unset` : undefined;
        const url = new URL(raw);
        const svc = b.objects.find((o) => o.kind === "Service" && o.metadata.name === url.hostname);
        const ok = svc && (svc.spec?.ports ?? []).some((p: Json) => String(p.port) === (url.port || "80"));
        return ok ? undefined : `${where}: ML_SERVICE_URL ${raw} names no Service port`;
      }),
  },
  {
    id: "guide-layout",
    mirrors: "project rule (the names the guide's commands use)",
    check: (b) => {
      const out: string[] = [];
      for (const k of Object.keys(GUIDE_WORKLOADS)) {
        const [kind, n] = k.split("/") as [string, string];
        if (!b.objects.some((o) => o.kind === kind && o.metadata.name === n)) out.push(`${k} missing`);
      }
      const gw = b.objects.find((o) => o.kind === "Service" && o.metadata.name === "api-gateway");
      if (!gw || !(gw.spec?.ports ?? []).some((p: Json) => p.port === 80)) out.push("Service api-gateway has no port 80 (kubectl port-forward svc/api-gateway 8080:80)");
      for (const o of b.objects) if (o.metadata.namespace) out.push(`${name(o)}: hard-codes namespace ${o.metadata.namespace} (the overlay sets it)`);
      return out;
    },
  },
  // ---- Helm values -------------------------------------------------------------------------
  {
    id: "rabbitmq-definitions-match-code",
    mirrors: "project rule (queues loaded at boot = queues the adapter declares)",
    check: (b) => {
      const defs = definitions(b);
      if (!defs) return ["rabbitmq values: no load_definition.json rendered"];
      const want = Object.values(QUEUE_NAMES).flatMap((q) => [
        { name: q, arguments: mainQueueArguments(q) },
        { name: deadLetterQueueName(q), arguments: {} },
      ]);
      const out: string[] = [];
      const queues = (defs.queues ?? []) as Json[];
      for (const w of want) {
        const q = queues.find((x) => x.name === w.name);
        if (!q) out.push(`definitions lack queue ${w.name}`);
        else {
          if (q.durable !== true || q.auto_delete !== false || q.vhost !== "/") out.push(`queue ${w.name}: must be durable, not auto-delete, on vhost /`);
          if (JSON.stringify(sortKeys(q.arguments ?? {})) !== JSON.stringify(sortKeys(w.arguments))) out.push(`queue ${w.name}: arguments ${JSON.stringify(q.arguments)} ≠ code ${JSON.stringify(w.arguments)}`);
        }
      }
      for (const q of queues) if (!want.some((w) => w.name === q.name)) out.push(`definitions declare ${String(q.name)}, which the code does not`);
      const users = (defs.users ?? []) as Json[];
      if (!(defs.vhosts ?? []).some((v: Json) => v.name === "/")) out.push("definitions lack vhost /");
      for (const u of users) if (!(defs.permissions ?? []).some((p: Json) => p.user === u.name && p.vhost === "/")) out.push(`user ${String(u.name)} has no permissions on /`);
      if (users.length === 0) out.push("definitions create no user (RabbitMQ skips its default user when definitions load at boot)");
      return out;
    },
  },
  {
    id: "rabbitmq-image-pinned",
    mirrors: "kube-linter latest-tag (for the RabbitMQ chart's image)",
    check: (b) => {
      const cfg = b.rabbitmq.find((o) => o.kind === "ConfigMap")?.data ?? {};
      const out: string[] = [];
      const image = String(cfg.image ?? "");
      if (!/:[0-9][^:]*$/.test(image)) out.push(`rabbitmq image ${image} is not pinned to a version`);
      if (image.includes("/bitnamilegacy/") && cfg.allowInsecureImages !== "true") out.push("bitnamilegacy image without global.security.allowInsecureImages=true (the chart refuses it)");
      if (!String(cfg.extraConfiguration).includes(`load_definitions = ${String(cfg.loadDefinitionFile)}`)) out.push("extraConfiguration does not load the mounted definitions file");
      if (cfg.loadDefinitionEnabled !== "true" || cfg.loadDefinitionSecret !== "rabbitmq-load-definition") out.push("loadDefinition is not enabled on the rendered Secret");
      return out;
    },
  },
  {
    id: "keda-chart-resources",
    mirrors: "kube-linter unset-cpu-requirements / unset-memory-requirements (for KEDA's containers)",
    check: (b) =>
      b.keda
        .filter((o) => o.kind === "ConfigMap")
        .flatMap((o) => {
          const r = JSON.parse(String(o.data?.resources ?? "null")) as Json;
          return ["cpu", "memory", "ephemeral-storage"].flatMap((res) =>
            ["requests", "limits"].filter((k) => r?.[k]?.[res] === undefined).map((k) => `${o.metadata.name}: no ${res} ${k}`),
          );
        }),
  },
];

function componentOfContainer(b: Bundle, c: Json): string | undefined {
  for (const { owner, spec } of podTemplates(b.objects)) if (containersOf(spec).includes(c)) return componentOf(owner);
  return undefined;
}
function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}
/** The worker's batch-backlog trigger: waiting lines per model, max over the gateway replicas (each reports the database's count). */
export const WORKER_BATCH_BACKLOG_QUERY = "sum(max by (model) (batch_lines_pending))";

let srcText: string | undefined;
function metricDefinedInCode(metric: string): boolean {
  if (srcText === undefined) {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const f of readdirSync(dir)) {
        const p = join(dir, f);
        if (statSync(p).isDirectory()) walk(p);
        else if (f.endsWith(".ts") && !f.endsWith(".test.ts")) files.push(p);
      }
    };
    walk(join(ROOT, "src"));
    srcText = files.map((f) => readFileSync(f, "utf8")).join("\n");
  }
  return new RegExp(`name:\\s*["'\`]${metric}["'\`]`).test(srcText);
}

// ------------------------------------------------------------------ fixtures

export const dep = (b: Bundle, n: string) => find(b.objects, "Deployment", n);
export const pod = (b: Bundle, n: string) => dep(b, n).spec.template.spec;
export const ctr = (b: Bundle, n: string) => pod(b, n).containers[0];
export const job = (b: Bundle) => find(b.objects, "Job", "ml-db-init").spec.template.spec;
export const setEnv = (c: Json, n: string, value: Json) => {
  const e = (c.env as Json[]).find((x) => x.name === n);
  if (e) Object.assign(e, typeof value === "string" ? { value, valueFrom: undefined } : value);
  else c.env.push({ name: n, ...(typeof value === "string" ? { value } : value) });
};
export const removeEnv = (c: Json, n: string) => (c.env = (c.env as Json[]).filter((e) => e.name !== n));
const defsOf = (b: Bundle) => {
  const s = find(b.rabbitmq, "Secret", "rabbitmq-load-definition");
  const d = JSON.parse(s.stringData["load_definition.json"]);
  return { d, save: () => (s.stringData["load_definition.json"] = JSON.stringify(d)) };
};
const rabbitCfg = (b: Bundle) => find(b.rabbitmq, "ConfigMap", "probe-rabbitmq-config").data;

export const FIXTURES: Fixture[] = [
  { rule: "run-as-non-root", what: "runAsNonRoot removed from pod and container", breakIt: (b) => { delete pod(b, "api-gateway").securityContext.runAsNonRoot; delete ctr(b, "api-gateway").securityContext.runAsNonRoot; } },
  { rule: "run-as-non-root", what: "container runs as uid 0", breakIt: (b) => { ctr(b, "ml-worker").securityContext.runAsUser = 0; } },
  { rule: "container-security-context-user-group-id", what: "runAsUser 1000", breakIt: (b) => { ctr(b, "ml-service").securityContext.runAsUser = 1000; } },
  { rule: "privilege-escalation-container", what: "allowPrivilegeEscalation true on the Job", breakIt: (b) => { job(b).containers[0].securityContext.allowPrivilegeEscalation = true; } },
  { rule: "privileged-container", what: "privileged: true", breakIt: (b) => { ctr(b, "results-collector").securityContext.privileged = true; } },
  { rule: "no-read-only-root-fs", what: "readOnlyRootFilesystem false", breakIt: (b) => { ctr(b, "api-service").securityContext.readOnlyRootFilesystem = false; } },
  { rule: "drop-net-raw-capability", what: "drops only NET_RAW", breakIt: (b) => { ctr(b, "api-gateway").securityContext.capabilities.drop = ["NET_RAW"]; } },
  { rule: "drop-net-raw-capability", what: "adds NET_ADMIN", breakIt: (b) => { ctr(b, "api-gateway").securityContext.capabilities.add = ["NET_ADMIN"]; } },
  { rule: "container-seccomp-profile", what: "Unconfined seccomp", breakIt: (b) => { ctr(b, "ml-worker").securityContext.seccompProfile = { type: "Unconfined" }; } },
  { rule: "writable-volume-for-writes", what: "DATA_DIR volume mount removed", breakIt: (b) => { const c = ctr(b, "api-gateway"); c.volumeMounts = c.volumeMounts.filter((m: Json) => m.mountPath !== "/data"); } },
  { rule: "writable-volume-for-writes", what: "/tmp mount removed from the Job", breakIt: (b) => { const c = job(b).containers[0]; c.volumeMounts = c.volumeMounts.filter((m: Json) => m.mountPath !== "/tmp"); } },
  { rule: "unset-cpu-requirements", what: "cpu limit removed", breakIt: (b) => { delete ctr(b, "ml-service").resources.limits.cpu; } },
  { rule: "unset-memory-requirements", what: "memory request removed", breakIt: (b) => { delete ctr(b, "ml-worker").resources.requests.memory; } },
  { rule: "container-ephemeral-storage-request-and-limit", what: "ephemeral-storage limit removed", breakIt: (b) => { delete job(b).containers[0].resources.limits["ephemeral-storage"]; } },
  { rule: "latest-tag", what: "image :latest", breakIt: (b) => { ctr(b, "api-service").image = "ghcr.io/devops-360-online/ml-inference:latest"; } },
  { rule: "latest-tag", what: "image without a tag", breakIt: (b) => { ctr(b, "api-service").image = "ghcr.io/devops-360-online/ml-inference"; } },
  { rule: "image-is-this-release", what: "image of another version", breakIt: (b) => { ctr(b, "results-collector").image = "ghcr.io/devops-360-online/ml-inference:0.0.9"; } },
  { rule: "no-liveness-probe", what: "liveness probe removed", breakIt: (b) => { delete ctr(b, "ml-service").livenessProbe; } },
  { rule: "no-readiness-probe", what: "readiness probe removed", breakIt: (b) => { delete ctr(b, "api-gateway").readinessProbe; } },
  { rule: "liveness-port", what: "liveness probe on an unnamed port", breakIt: (b) => { ctr(b, "ml-worker").livenessProbe.httpGet.port = "admin"; } },
  { rule: "readiness-port", what: "readiness probe on a wrong port number", breakIt: (b) => { ctr(b, "ml-worker").readinessProbe.httpGet.port = 9999; } },
  { rule: "pod-probes", what: "liveness probe checks /health (restarts on dependency outage)", breakIt: (b) => { ctr(b, "api-service").livenessProbe.httpGet.path = "/health"; } },
  { rule: "default-service-account", what: "serviceAccountName removed", breakIt: (b) => { delete pod(b, "api-gateway").serviceAccountName; } },
  { rule: "dedicated-service-account", what: "two components share one ServiceAccount", breakIt: (b) => { pod(b, "ml-worker").serviceAccountName = "results-collector"; } },
  { rule: "non-existent-service-account", what: "ServiceAccount renamed", breakIt: (b) => { find(b.objects, "ServiceAccount", "ml-service").metadata.name = "ml-svc"; } },
  { rule: "automount-service-account-token", what: "ServiceAccount automount true", breakIt: (b) => { find(b.objects, "ServiceAccount", "api-gateway").automountServiceAccountToken = true; } },
  { rule: "automount-service-account-token", what: "pod automount removed", breakIt: (b) => { delete job(b).automountServiceAccountToken; } },
  { rule: "env-var-secret", what: "DATABASE_URL with a password written literally", breakIt: (b) => { setEnv(ctr(b, "api-gateway"), "DATABASE_URL", "postgres://postgres:hunter2@postgresql:5432/mlservice"); } },
  { rule: "no-secret-objects", what: "a Secret with values added", breakIt: (b) => { b.objects.push({ apiVersion: "v1", kind: "Secret", metadata: { name: "postgres-credentials" }, stringData: { dsn: "postgres://x:y@z/db" } }); } },
  { rule: "env-value-from-secrets", what: "AMQP_URL from a wrongly named Secret", breakIt: (b) => { setEnv(ctr(b, "ml-worker"), "AMQP_URL", { valueFrom: { secretKeyRef: { name: "rabbitmq", key: "url" } } }); } },
  { rule: "env-value-from-secrets", what: "REDIS_URL from the wrong key", breakIt: (b) => { setEnv(ctr(b, "api-service"), "REDIS_URL", { valueFrom: { secretKeyRef: { name: "redis-credentials", key: "password" } } }); } },
  { rule: "env-value-from-secrets", what: "envFrom a whole Secret", breakIt: (b) => { ctr(b, "api-service").envFrom = [{ secretRef: { name: "postgres-credentials" } }]; } },
  { rule: "component-secret-scope", what: "the worker gets database credentials", breakIt: (b) => { setEnv(ctr(b, "ml-worker"), "DATABASE_URL", { valueFrom: { secretKeyRef: { name: "postgres-credentials", key: "dsn" } } }); } },
  { rule: "component-secret-scope", what: "the collector loses REDIS_URL", breakIt: (b) => { removeEnv(ctr(b, "results-collector"), "REDIS_URL"); } },
  { rule: "duplicate-env-var", what: "LOG_LEVEL twice", breakIt: (b) => { ctr(b, "ml-service").env.push({ name: "LOG_LEVEL", value: "debug" }); } },
  { rule: "model-cache-pvc", what: "the PVC is not applied", breakIt: (b) => { b.objects = b.objects.filter((o) => o.kind !== "PersistentVolumeClaim"); } },
  { rule: "model-cache-pvc", what: "model cache on an emptyDir", breakIt: (b) => { const v = pod(b, "ml-service").volumes.find((x: Json) => x.name === "model-cache"); delete v.persistentVolumeClaim; v.emptyDir = {}; } },
  { rule: "model-cache-pvc", what: "MODEL outside the cache", breakIt: (b) => { setEnv(ctr(b, "ml-service"), "MODEL", "/data/model.gguf"); } },
  { rule: "termination-grace-period", what: "grace period 30 s with a 25 s drain and 5 s preStop", breakIt: (b) => { pod(b, "api-gateway").terminationGracePeriodSeconds = 30; } },
  { rule: "termination-grace-period", what: "drain raised to 60 s", breakIt: (b) => { setEnv(ctr(b, "ml-worker"), "SHUTDOWN_TIMEOUT_MS", "60000"); } },
  { rule: "deployment-targeted-by-hpa-does-not-have-replicas", what: "replicas on the KEDA-scaled worker", breakIt: (b) => { dep(b, "ml-worker").spec.replicas = 2; } },
  { rule: "mismatching-selector", what: "selector label differs from the pod label", breakIt: (b) => { dep(b, "api-service").spec.selector.matchLabels["app.kubernetes.io/name"] = "api"; } },
  { rule: "dangling-service", what: "Service selects nothing", breakIt: (b) => { find(b.objects, "Service", "ml-service").spec.selector["app.kubernetes.io/name"] = "ml"; } },
  { rule: "invalid-target-ports", what: "targetPort names no container port", breakIt: (b) => { find(b.objects, "Service", "api-gateway").spec.ports[0].targetPort = "web"; } },
  { rule: "dangling-ingress", what: "Ingress backend Service missing", breakIt: (b) => { b.objects = b.objects.filter((o) => !(o.kind === "Service" && o.metadata.name === "api-service")); } },
  { rule: "dangling-ingress", what: "Ingress backend port missing", breakIt: (b) => { find(b.objects, "Ingress", "ml-inference").spec.rules[0].http.paths[0].backend.service.port = { number: 8080 }; } },
  { rule: "ingress-routes", what: "/events routed to the gateway", breakIt: (b) => { const p = find(b.objects, "Ingress", "ml-inference").spec.rules[0].http.paths.find((x: Json) => x.path === "/events"); p.backend.service.name = "api-gateway"; } },
  { rule: "dangling-scaledobject", what: "ScaledObject targets a missing Deployment", breakIt: (b) => { find(b.objects, "ScaledObject", "ml-worker").spec.scaleTargetRef.name = "worker"; } },
  { rule: "dangling-trigger-authentication", what: "authenticationRef to a missing TriggerAuthentication", breakIt: (b) => { find(b.objects, "ScaledObject", "results-collector").spec.triggers[0].authenticationRef.name = "rabbitmq-auth"; } },
  { rule: "dangling-trigger-authentication", what: "TriggerAuthentication reads the wrong Secret key", breakIt: (b) => { find(b.objects, "TriggerAuthentication", "rabbitmq-trigger-auth").spec.secretTargetRef[0].key = "host"; } },
  { rule: "keda-triggers-match-code", what: "worker scales on a misspelt queue", breakIt: (b) => { find(b.objects, "ScaledObject", "ml-worker").spec.triggers[0].metadata.queueName = "inference_request"; } },
  { rule: "keda-triggers-match-code", what: "collector scales on the requests queue", breakIt: (b) => { find(b.objects, "ScaledObject", "results-collector").spec.triggers[0].metadata.queueName = QUEUE_NAMES.requests; } },
  { rule: "keda-triggers-match-code", what: "Prometheus query on a metric the code does not export", breakIt: (b) => { find(b.objects, "ScaledObject", "ml-service").spec.triggers[1].metadata.query = "sum(rate(ml_tokens_total[1m]))"; } },
  { rule: "keda-triggers-match-code", what: "worker's batch backlog summed over the gateway replicas (each reports the whole count)", breakIt: (b) => { find(b.objects, "ScaledObject", "ml-worker").spec.triggers[1].metadata.query = "sum(batch_lines_pending)"; } },
  { rule: "keda-triggers-match-code", what: "QUEUE_RESULTS env differs from the code", breakIt: (b) => { setEnv(ctr(b, "results-collector"), "QUEUE_RESULTS", "results"); } },
  { rule: "component-ports-and-commands", what: "gateway Deployment runs the worker", breakIt: (b) => { ctr(b, "api-gateway").args = ["worker"]; } },
  { rule: "component-ports-and-commands", what: "ml-service PORT differs from its containerPort", breakIt: (b) => { setEnv(ctr(b, "ml-service"), "PORT", "9000"); } },
  { rule: "ml-service-url", what: "worker points at a Service that does not exist", breakIt: (b) => { setEnv(ctr(b, "ml-worker"), "ML_SERVICE_URL", "http://ml:8081"); } },
  { rule: "ml-service-url", what: "worker points at the wrong port", breakIt: (b) => { setEnv(ctr(b, "ml-worker"), "ML_SERVICE_URL", "http://ml-service:80"); } },
  { rule: "guide-layout", what: "Job renamed", breakIt: (b) => { find(b.objects, "Job", "ml-db-init").metadata.name = "db-init"; } },
  { rule: "guide-layout", what: "api-gateway Service on port 8080", breakIt: (b) => { find(b.objects, "Service", "api-gateway").spec.ports[0].port = 8080; } },
  { rule: "guide-layout", what: "a hard-coded namespace", breakIt: (b) => { find(b.objects, "Deployment", "ml-worker").metadata.namespace = "default"; } },
  { rule: "rabbitmq-definitions-match-code", what: "dead-letter routing key misspelt", breakIt: (b) => { const { d, save } = defsOf(b); d.queues[0].arguments["x-dead-letter-routing-key"] = "inference_requests.dlq"; save(); } },
  { rule: "rabbitmq-definitions-match-code", what: "results dead-letter queue missing", breakIt: (b) => { const { d, save } = defsOf(b); d.queues = d.queues.filter((q: Json) => q.name !== "inference_results.dead"); save(); } },
  { rule: "rabbitmq-definitions-match-code", what: "a queue not durable", breakIt: (b) => { const { d, save } = defsOf(b); d.queues[2].durable = false; save(); } },
  { rule: "rabbitmq-definitions-match-code", what: "no user in the definitions", breakIt: (b) => { const { d, save } = defsOf(b); d.users = []; save(); } },
  { rule: "rabbitmq-image-pinned", what: "rabbitmq image :latest", breakIt: (b) => { rabbitCfg(b).image = "docker.io/bitnami/rabbitmq:latest"; } },
  { rule: "rabbitmq-image-pinned", what: "bitnamilegacy without allowInsecureImages", breakIt: (b) => { rabbitCfg(b).allowInsecureImages = "false"; } },
  { rule: "rabbitmq-image-pinned", what: "definitions file not loaded", breakIt: (b) => { rabbitCfg(b).extraConfiguration = ""; } },
  { rule: "keda-chart-resources", what: "no limits for the metrics server", breakIt: (b) => { const cm = find(b.keda, "ConfigMap", "probe-keda-metricserver"); const r = JSON.parse(cm.data.resources); delete r.limits; cm.data.resources = JSON.stringify(r); } },
];
