/**
 * NetworkPolicy semantics, evaluated offline: which policies select a pod template, whether that
 * makes the pod isolated for ingress, and every (peer, port) a connection to it is allowed from.
 * Follows the networking.k8s.io/v1 rules: policies are additive; a pod selected by any policy with
 * policyType Ingress accepts only what some rule of those policies allows; a rule without `from`
 * admits every source and one without `ports` every port; named ports resolve against the pod's
 * containers.
 */
import { containersOf, type Json, type K8sObject, type PodTemplateRef } from "./support.js";
import type { AllowedPeer } from "./facts.js";

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

export type Peer =
  | { kind: "anywhere" }
  | { kind: "ipBlock"; cidr: string }
  /** Pods of the policy's own namespace. */
  | { kind: "pods"; pods: LabelSelector }
  /** Pods (all when no podSelector) of the namespaces the selector picks. */
  | { kind: "namespaces"; namespaces: LabelSelector; pods: LabelSelector };

export interface Grant {
  policy: string;
  peer: Peer;
  protocol: string;
  /** Inclusive port range, or every port of that protocol. */
  ports: [number, number] | "all";
}
export interface PodIngress {
  /** Selected by at least one policy of type Ingress: only `grants` get in. */
  isolated: boolean;
  grants: Grant[];
}

export function selectorMatches(sel: LabelSelector | undefined, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel?.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel?.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const inValues = has && (e.values ?? []).includes(labels[e.key]!);
    const outcome: Record<string, boolean> = { In: inValues, NotIn: !inValues, Exists: has, DoesNotExist: !has };
    const ok = outcome[e.operator];
    if (!ok) return false;
  }
  return true;
}

export function policyTypes(np: K8sObject): string[] {
  // Unset: Ingress always, Egress only when the policy has egress rules.
  return (np.spec?.policyTypes as string[] | undefined) ?? ["Ingress", ...(np.spec?.egress ? ["Egress"] : [])];
}

/** The NetworkPolicies of the pod's namespace whose podSelector picks the pod. */
export function policiesSelecting(objects: K8sObject[], t: PodTemplateRef): K8sObject[] {
  const ns = t.owner.metadata.namespace ?? "";
  return objects.filter((o) => o.kind === "NetworkPolicy" && (o.metadata.namespace ?? "") === ns && selectorMatches(o.spec?.podSelector, t.labels));
}

function peersOf(rule: Json): Peer[] {
  const from = (rule.from ?? []) as Json[];
  if (from.length === 0) return [{ kind: "anywhere" }];
  return from.map((p): Peer => {
    if (p.ipBlock) return { kind: "ipBlock", cidr: String(p.ipBlock.cidr) };
    if (p.namespaceSelector) return { kind: "namespaces", namespaces: p.namespaceSelector, pods: p.podSelector ?? {} };
    return { kind: "pods", pods: p.podSelector ?? {} };
  });
}

type PortGrant = Pick<Grant, "protocol" | "ports">;
function portsOf(rule: Json, t: PodTemplateRef): PortGrant[] {
  const entries = (rule.ports ?? []) as Json[];
  if (entries.length === 0) return [{ protocol: "TCP", ports: "all" }, { protocol: "UDP", ports: "all" }, { protocol: "SCTP", ports: "all" }];
  return entries.flatMap((e): PortGrant[] => {
    const protocol = String(e.protocol ?? "TCP");
    if (e.port === undefined) return [{ protocol, ports: "all" }];
    if (typeof e.port === "number") return [{ protocol, ports: [e.port, Number(e.endPort ?? e.port)] }];
    // A named port admits the container port of that name; a name no container has admits nothing.
    return containersOf(t.spec)
      .flatMap((c: Json) => (c.ports ?? []) as Json[])
      .filter((p) => p.name === e.port && String(p.protocol ?? "TCP") === protocol)
      .map((p): PortGrant => ({ protocol, ports: [p.containerPort, p.containerPort] }));
  });
}

export function ingressTo(objects: K8sObject[], t: PodTemplateRef): PodIngress {
  const policies = policiesSelecting(objects, t).filter((np) => policyTypes(np).includes("Ingress"));
  const grants: Grant[] = [];
  for (const np of policies) {
    for (const rule of (np.spec?.ingress ?? []) as Json[]) {
      for (const peer of peersOf(rule)) for (const p of portsOf(rule, t)) grants.push({ policy: np.metadata.name, peer, ...p });
    }
  }
  return { isolated: policies.length > 0, grants };
}

const narrows = (sel: LabelSelector, want: Record<string, string>) => Object.entries(want).every(([k, v]) => sel.matchLabels?.[k] === v);
const equals = (sel: LabelSelector, want: Record<string, string>) =>
  narrows(sel, want) && Object.keys(sel.matchLabels ?? {}).length === Object.keys(want).length && (sel.matchExpressions ?? []).length === 0;

/** The peer admits no pod the allowed peer does not (its selectors require at least the same labels). */
export function peerWithin(peer: Peer, allowed: AllowedPeer): boolean {
  if (allowed.namespace) return peer.kind === "namespaces" && narrows(peer.namespaces, allowed.namespace) && narrows(peer.pods, allowed.pods);
  return peer.kind === "pods" && narrows(peer.pods, allowed.pods);
}
/** The peer is exactly the allowed one (not narrowed to fewer pods). */
export function peerIs(peer: Peer, allowed: AllowedPeer): boolean {
  if (allowed.namespace) return peer.kind === "namespaces" && equals(peer.namespaces, allowed.namespace) && equals(peer.pods, allowed.pods);
  return peer.kind === "pods" && equals(peer.pods, allowed.pods);
}
export function grantIsPort(g: Grant, port: number): boolean {
  return g.protocol === "TCP" && g.ports !== "all" && g.ports[0] === port && g.ports[1] === port;
}

export function describeGrant(g: Grant): string {
  const labels = (s: LabelSelector) => JSON.stringify(s.matchLabels ?? {}) + ((s.matchExpressions ?? []).length ? " + expressions" : "");
  const who =
    g.peer.kind === "anywhere"
      ? "every source"
      : g.peer.kind === "ipBlock"
        ? `ipBlock ${g.peer.cidr}`
        : g.peer.kind === "pods"
          ? `pods ${labels(g.peer.pods)} of its namespace`
          : `pods ${labels(g.peer.pods)} of namespaces ${labels(g.peer.namespaces)}`;
  const ports = g.ports === "all" ? "every port" : g.ports[0] === g.ports[1] ? `port ${g.ports[0]}` : `ports ${g.ports[0]}-${g.ports[1]}`;
  return `${who} on ${g.protocol} ${ports} (NetworkPolicy ${g.policy})`;
}
