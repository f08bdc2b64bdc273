/**
 * Policy rules for "nobody gets around the quota" (issue 8): the pod network admits only the paths
 * the platform uses (Ingress controller → gateway and API service, worker → ML Service, Prometheus →
 * metrics), each Secret reaches only the pods whose command reads it, the ML Service token is wired
 * into both ends, and the Ingress does not publish /metrics. Same shape as policy.ts: every rule has
 * fixtures, good objects broken on purpose that the rule must catch.
 */
import { ALLOWED_INGRESS, type AllowedPeer, GUIDE_SECRETS, GUIDE_WORKLOADS, INGRESS_CONTROLLER, PART_OF, PROMETHEUS, secretsUsedBy, WORKER } from "./facts.js";
import { describeGrant, grantIsPort, ingressTo, peerIs, peerWithin, policiesSelecting, policyTypes, selectorMatches } from "./network-policy.js";
import { type Bundle, ctr, dep, type Fixture, job, pod, removeEnv, type Rule, setEnv } from "./policy.js";
import { containersOf, envOf, find, type Json, key, podTemplates, type PodTemplateRef } from "./support.js";

const policies = (b: Bundle) => b.objects.filter((o) => o.kind === "NetworkPolicy");
const commandOf = (t: PodTemplateRef) => GUIDE_WORKLOADS[key(t.owner)];

/** The port an allowed entry means for this pod: its `http` container port, or its prometheus.io/port. */
function portOf(t: PodTemplateRef, port: "http" | "metrics"): number | undefined {
  if (port === "metrics") {
    const annotations = (t.owner.spec?.template?.metadata?.annotations ?? {}) as Record<string, string>;
    return annotations["prometheus.io/scrape"] === "true" ? Number(annotations["prometheus.io/port"]) : undefined;
  }
  return containersOf(t.spec)
    .flatMap((c: Json) => (c.ports ?? []) as Json[])
    .find((p) => p.name === port)?.containerPort as number | undefined;
}

/** Connections a policy lets in that ALLOWED_INGRESS does not list, for the pods of these commands. */
function unexpectedIngress(b: Bundle, commands: string[]): string[] {
  const out: string[] = [];
  for (const t of podTemplates(b.objects)) {
    const command = commandOf(t);
    if (!command || !commands.includes(command)) continue;
    const ingress = ingressTo(b.objects, t);
    if (!ingress.isolated) {
      out.push(`${key(t.owner)}: no NetworkPolicy isolates it, so every pod and node can connect`);
      continue;
    }
    const allowed = (ALLOWED_INGRESS[command] ?? []).map((a) => ({ peer: a.peer, port: portOf(t, a.port) }));
    for (const g of ingress.grants) {
      if (!allowed.some((a) => a.port !== undefined && peerWithin(g.peer, a.peer) && grantIsPort(g, a.port))) out.push(`${key(t.owner)}: lets in ${describeGrant(g)}`);
    }
  }
  return out;
}

/** The ALLOWED_INGRESS entries for this peer that no policy grants (the connection would be refused). */
function missingIngress(b: Bundle, commands: string[], peer: AllowedPeer): string[] {
  const out: string[] = [];
  for (const t of podTemplates(b.objects)) {
    const command = commandOf(t);
    if (!command || !commands.includes(command)) continue;
    const grants = ingressTo(b.objects, t).grants;
    if (!peer.namespace && !podTemplates(b.objects).some((x) => selectorMatches({ matchLabels: peer.pods }, x.labels))) out.push(`no pod carries the labels of ${peer.what} ${JSON.stringify(peer.pods)}`);
    for (const a of (ALLOWED_INGRESS[command] ?? []).filter((x) => x.peer === peer)) {
      const port = portOf(t, a.port);
      if (port === undefined) continue;
      if (!grants.some((g) => peerIs(g.peer, peer) && grantIsPort(g, port))) out.push(`${key(t.owner)}: ${peer.what} cannot reach its ${a.port} port ${port}`);
    }
  }
  return out;
}

/** Every Secret a pod template references, and how (env, envFrom, volume, projected volume). */
function secretRefs(spec: Json): Array<{ secret: string; via: string }> {
  const out: Array<{ secret: string; via: string }> = [];
  for (const c of containersOf(spec)) {
    for (const e of (c.env ?? []) as Json[]) if (e.valueFrom?.secretKeyRef) out.push({ secret: e.valueFrom.secretKeyRef.name, via: `container ${c.name} env ${e.name}` });
    for (const f of (c.envFrom ?? []) as Json[]) if (f.secretRef) out.push({ secret: f.secretRef.name, via: `container ${c.name} envFrom` });
  }
  for (const v of (spec.volumes ?? []) as Json[]) {
    if (v.secret) out.push({ secret: v.secret.secretName, via: `volume ${v.name}` });
    for (const s of (v.projected?.sources ?? []) as Json[]) if (s.secret) out.push({ secret: s.secret.name, via: `projected volume ${v.name}` });
  }
  return out;
}

/** Which path of the request a path of the Ingress takes (Prefix matches whole path elements). */
function routes(path: Json, requestPath: string): boolean {
  const p = String(path.path ?? "/");
  if (path.pathType === "Exact") return p === requestPath;
  const base = p.replace(/\/+$/, "");
  return base === "" || requestPath === base || requestPath.startsWith(`${base}/`);
}
/** Served by every component and not for the public (issue 8 item 6). */
const PRIVATE_PATHS = ["/metrics"];

const TOKEN = GUIDE_SECRETS.ML_SERVICE_TOKEN!;

export const ISOLATION_RULES: Rule[] = [
  // ---- network policies --------------------------------------------------------------------
  {
    id: "networkpolicy-default-deny",
    mirrors: "kube-score pod-networkpolicy (plus a namespace default deny for the platform's pods)",
    check: (b) => {
      const out: string[] = [];
      const templates = podTemplates(b.objects);
      const denies = policies(b).filter(
        (np) => policyTypes(np).includes("Ingress") && (np.spec?.ingress ?? []).length === 0 && templates.every((t) => selectorMatches(np.spec?.podSelector, t.labels)),
      );
      if (denies.length === 0) out.push("no NetworkPolicy denies ingress to every pod of the platform (podSelector app.kubernetes.io/part-of: ml-inference, policyType Ingress, no rules)");
      for (const t of templates) if (!ingressTo(b.objects, t).isolated) out.push(`${key(t.owner)}: not isolated for ingress by any NetworkPolicy`);
      return out;
    },
  },
  {
    id: "networkpolicy-targets-pod",
    mirrors: "kube-score networkpolicy-targets-pod (and only the platform's pods, not the broker's)",
    check: (b) =>
      policies(b).flatMap((np) => {
        const out: string[] = [];
        if (!podTemplates(b.objects).some((t) => policiesSelecting(b.objects, t).includes(np))) out.push(`${key(np)}: selects no pod`);
        if (!Object.entries(PART_OF).every(([k, v]) => np.spec?.podSelector?.matchLabels?.[k] === v)) out.push(`${key(np)}: podSelector does not require ${JSON.stringify(PART_OF)} (it would catch other pods of the namespace, e.g. RabbitMQ's)`);
        return out;
      }),
  },
  {
    id: "networkpolicy-ml-service-only-from-worker",
    mirrors: "project rule (issue 8: nothing reaches the model without passing the quota)",
    check: (b) => [...unexpectedIngress(b, ["ml-service"]), ...missingIngress(b, ["ml-service"], WORKER)],
  },
  {
    id: "networkpolicy-public-only-from-ingress",
    mirrors: "project rule (issue 8: only the Ingress reaches the gateway and the API service)",
    check: (b) => [...unexpectedIngress(b, ["gateway", "api-service"]), ...missingIngress(b, ["gateway", "api-service"], INGRESS_CONTROLLER)],
  },
  {
    id: "networkpolicy-internal-closed",
    mirrors: "project rule (queue consumers and the migration Job accept no connections but Prometheus's)",
    check: (b) => unexpectedIngress(b, ["worker", "collector", "migrate"]),
  },
  {
    id: "networkpolicy-metrics-from-monitoring",
    mirrors: "project rule (Prometheus in namespace monitoring reaches every scraped port)",
    check: (b) => {
      const out: string[] = [];
      for (const t of podTemplates(b.objects)) {
        const port = portOf(t, "metrics");
        if (port !== undefined && !containersOf(t.spec).some((c: Json) => (c.ports ?? []).some((p: Json) => p.containerPort === port))) {
          out.push(`${key(t.owner)}: prometheus.io/port ${port} is no container port`);
        }
      }
      return [...out, ...missingIngress(b, Object.keys(ALLOWED_INGRESS), PROMETHEUS)];
    },
  },
  // ---- secrets -----------------------------------------------------------------------------
  {
    id: "secret-only-where-used",
    mirrors: "project rule (least privilege: a Secret reaches only pods whose command reads it, by any route)",
    check: (b) =>
      podTemplates(b.objects).flatMap((t) => {
        const command = commandOf(t);
        const used = command ? secretsUsedBy(command) : new Set<string>();
        return secretRefs(t.spec)
          .filter((r) => !used.has(r.secret))
          .map((r) => `${key(t.owner)}: ${r.via} mounts Secret ${r.secret}, which ${command ?? "this workload"} does not use`);
      }),
  },
  {
    id: "ml-service-token-wired",
    mirrors: "project rule (the ML Service requires ML_SERVICE_TOKEN, the worker sends the same Secret)",
    check: (b) => {
      const out: string[] = [];
      for (const command of ["ml-service", "worker"]) {
        const t = podTemplates(b.objects).find((x) => commandOf(x) === command);
        if (!t) {
          out.push(`no ${command} workload`);
          continue;
        }
        for (const c of t.spec.containers ?? []) {
          const ref = envOf(c).get("ML_SERVICE_TOKEN")?.valueFrom?.secretKeyRef;
          if (!ref || ref.name !== TOKEN.secret || ref.key !== TOKEN.key) out.push(`${key(t.owner)} container ${c.name}: ML_SERVICE_TOKEN must come from Secret ${TOKEN.secret} key ${TOKEN.key}`);
          else if (ref.optional) out.push(`${key(t.owner)} container ${c.name}: ML_SERVICE_TOKEN must not be optional (the pod would start without it)`);
        }
      }
      return out;
    },
  },
  // ---- ingress -----------------------------------------------------------------------------
  {
    id: "ingress-does-not-route-metrics",
    mirrors: "project rule (issue 8: the Ingress does not route /metrics)",
    check: (b) =>
      b.objects
        .filter((o) => o.kind === "Ingress")
        .flatMap((ing) => {
          const paths = ((ing.spec?.rules ?? []) as Json[]).flatMap((r) => (r.http?.paths ?? []) as Json[]);
          return PRIVATE_PATHS.flatMap((p) => {
            if (ing.spec?.defaultBackend) return [`${key(ing)}: defaultBackend serves ${p}`];
            return paths.filter((x) => routes(x, p)).map((x) => `${key(ing)}: ${String(x.path)} (${String(x.pathType)}) routes ${p}`);
          });
        }),
  },
];

const np = (b: Bundle, n: string) => find(b.objects, "NetworkPolicy", n);
const DENY = "ml-inference-default-deny-ingress";
const tokenRef = { valueFrom: { secretKeyRef: { name: TOKEN.secret, key: TOKEN.key } } };
const ingressPaths = (b: Bundle) => find(b.objects, "Ingress", "ml-inference").spec.rules[0].http.paths as Json[];

export const ISOLATION_FIXTURES: Fixture[] = [
  { rule: "networkpolicy-default-deny", what: "the default deny removed", breakIt: (b) => { b.objects = b.objects.filter((o) => !(o.kind === "NetworkPolicy" && o.metadata.name === DENY)); } },
  { rule: "networkpolicy-default-deny", what: "the default deny narrowed to the gateway (the Job is open)", breakIt: (b) => { np(b, DENY).spec.podSelector.matchLabels["app.kubernetes.io/name"] = "api-gateway"; } },
  { rule: "networkpolicy-default-deny", what: "the default deny allows everything", breakIt: (b) => { np(b, DENY).spec.ingress = [{}]; } },
  { rule: "networkpolicy-default-deny", what: "the default deny restricts egress instead", breakIt: (b) => { np(b, DENY).spec.policyTypes = ["Egress"]; } },
  { rule: "networkpolicy-targets-pod", what: "the ML Service's policy selects a misspelt label", breakIt: (b) => { np(b, "ml-service").spec.podSelector.matchLabels["app.kubernetes.io/name"] = "ml"; } },
  { rule: "networkpolicy-targets-pod", what: "the default deny selects every pod of the namespace", breakIt: (b) => { np(b, DENY).spec.podSelector = {}; } },
  { rule: "networkpolicy-ml-service-only-from-worker", what: "the worker peer widened to every pod of the namespace", breakIt: (b) => { np(b, "ml-service").spec.ingress[0].from[0].podSelector = {}; } },
  { rule: "networkpolicy-ml-service-only-from-worker", what: "the gateway let in beside the worker", breakIt: (b) => { np(b, "ml-service").spec.ingress[0].from.push({ podSelector: { matchLabels: { "app.kubernetes.io/name": "api-gateway" } } }); } },
  { rule: "networkpolicy-ml-service-only-from-worker", what: "the worker's rule opens every port", breakIt: (b) => { delete np(b, "ml-service").spec.ingress[0].ports; } },
  { rule: "networkpolicy-ml-service-only-from-worker", what: "another policy opens the ML Service to everyone", breakIt: (b) => { b.objects.push({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "open" }, spec: { podSelector: { matchLabels: { ...PART_OF } }, ingress: [{ ports: [{ port: 8081 }] }] } }); } },
  { rule: "networkpolicy-ml-service-only-from-worker", what: "the ML Service's policy removed (the worker is cut off)", breakIt: (b) => { b.objects = b.objects.filter((o) => !(o.kind === "NetworkPolicy" && o.metadata.name === "ml-service")); } },
  { rule: "networkpolicy-ml-service-only-from-worker", what: "the worker peer misspelt", breakIt: (b) => { np(b, "ml-service").spec.ingress[0].from[0].podSelector.matchLabels["app.kubernetes.io/name"] = "worker"; } },
  { rule: "networkpolicy-ml-service-only-from-worker", what: "the worker's pods relabelled (the policy no longer lets them in)", breakIt: (b) => { const d = dep(b, "ml-worker"); d.spec.selector.matchLabels["app.kubernetes.io/name"] = "worker"; d.spec.template.metadata.labels["app.kubernetes.io/name"] = "worker"; } },
  { rule: "networkpolicy-public-only-from-ingress", what: "the Ingress controller's namespace selector widened to every namespace", breakIt: (b) => { np(b, "api-gateway").spec.ingress[0].from[0].namespaceSelector = {}; } },
  { rule: "networkpolicy-public-only-from-ingress", what: "the whole ingress-nginx namespace let in (pod selector dropped)", breakIt: (b) => { delete np(b, "api-service").spec.ingress[0].from[0].podSelector; } },
  { rule: "networkpolicy-public-only-from-ingress", what: "the worker let into the gateway", breakIt: (b) => { np(b, "api-gateway").spec.ingress.push({ from: [{ podSelector: { matchLabels: { "app.kubernetes.io/name": "ml-worker" } } }] }); } },
  { rule: "networkpolicy-public-only-from-ingress", what: "the API service's policy removed (the Ingress is cut off)", breakIt: (b) => { b.objects = b.objects.filter((o) => !(o.kind === "NetworkPolicy" && o.metadata.name === "api-service")); } },
  { rule: "networkpolicy-public-only-from-ingress", what: "the gateway let in from an ipBlock", breakIt: (b) => { np(b, "api-gateway").spec.ingress[0].from = [{ ipBlock: { cidr: "0.0.0.0/0" } }]; } },
  { rule: "networkpolicy-internal-closed", what: "the collector opened to every pod of the namespace", breakIt: (b) => { np(b, "results-collector").spec.ingress.push({ from: [{ podSelector: {} }] }); } },
  { rule: "networkpolicy-internal-closed", what: "the worker's metrics rule opens every port to Prometheus", breakIt: (b) => { delete np(b, "ml-worker").spec.ingress[0].ports; } },
  { rule: "networkpolicy-metrics-from-monitoring", what: "Prometheus's rule removed from the API service", breakIt: (b) => { np(b, "api-service").spec.ingress.splice(1, 1); } },
  { rule: "networkpolicy-metrics-from-monitoring", what: "Prometheus's rule on the worker names a port the pod does not have", breakIt: (b) => { np(b, "ml-worker").spec.ingress[0].ports[0].port = "admin"; } },
  { rule: "networkpolicy-metrics-from-monitoring", what: "the scrape annotation points at an undeclared port", breakIt: (b) => { dep(b, "results-collector").spec.template.metadata.annotations["prometheus.io/port"] = "9100"; } },
  { rule: "secret-only-where-used", what: "the ML Service token mounted into the API service as a volume", breakIt: (b) => { pod(b, "api-service").volumes.push({ name: "token", secret: { secretName: TOKEN.secret } }); } },
  { rule: "secret-only-where-used", what: "the ML Service gets the RabbitMQ credentials through envFrom", breakIt: (b) => { ctr(b, "ml-service").envFrom = [{ secretRef: { name: "rabbitmq-credentials" } }]; } },
  { rule: "secret-only-where-used", what: "the worker gets the database DSN under another name", breakIt: (b) => { setEnv(ctr(b, "ml-worker"), "PG_DSN", { valueFrom: { secretKeyRef: { name: "postgres-credentials", key: "dsn" } } }); } },
  { rule: "secret-only-where-used", what: "the migration Job gets Redis credentials in a projected volume", breakIt: (b) => { job(b).volumes.push({ name: "redis", projected: { sources: [{ secret: { name: "redis-credentials" } }] } }); } },
  { rule: "secret-only-where-used", what: "the gateway gets the ML Service token", breakIt: (b) => { setEnv(ctr(b, "api-gateway"), "ML_SERVICE_TOKEN", tokenRef); } },
  { rule: "ml-service-token-wired", what: "the token missing from the worker", breakIt: (b) => { removeEnv(ctr(b, "ml-worker"), "ML_SERVICE_TOKEN"); } },
  { rule: "ml-service-token-wired", what: "the ML Service reads the token optionally", breakIt: (b) => { setEnv(ctr(b, "ml-service"), "ML_SERVICE_TOKEN", { valueFrom: { secretKeyRef: { ...tokenRef.valueFrom.secretKeyRef, optional: true } } }); } },
  { rule: "ml-service-token-wired", what: "the worker reads another key", breakIt: (b) => { setEnv(ctr(b, "ml-worker"), "ML_SERVICE_TOKEN", { valueFrom: { secretKeyRef: { name: TOKEN.secret, key: "value" } } }); } },
  { rule: "ml-service-token-wired", what: "the token written literally into the ML Service", breakIt: (b) => { setEnv(ctr(b, "ml-service"), "ML_SERVICE_TOKEN", "0123456789abcdef0123456789abcdef"); } },
  { rule: "ingress-does-not-route-metrics", what: "a catch-all / path to the gateway", breakIt: (b) => { ingressPaths(b).push({ path: "/", pathType: "Prefix", backend: { service: { name: "api-gateway", port: { number: 80 } } } }); } },
  { rule: "ingress-does-not-route-metrics", what: "an Exact /metrics path", breakIt: (b) => { ingressPaths(b).push({ path: "/metrics", pathType: "Exact", backend: { service: { name: "api-service", port: { number: 80 } } } }); } },
  { rule: "ingress-does-not-route-metrics", what: "a defaultBackend", breakIt: (b) => { find(b.objects, "Ingress", "ml-inference").spec.defaultBackend = { service: { name: "api-gateway", port: { number: 80 } } }; } },
];
