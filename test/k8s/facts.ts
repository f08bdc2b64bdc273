/**
 * What the manifests must agree with: the guide's workload names, the Secrets the operator creates
 * (the guide, plus docs/deployment.md for Redis, the ML Service token and the admin key), what each
 * command reads, and who may reach whom over the pod network. Policy rules and the docs test read these.
 */

/**
 * Env variable → the Secret and key it comes from (docs/deployment.md creates each of them).
 * `optional`: the pod starts without it (the secretKeyRef says `optional: true`); every other one is
 * required, so a missing Secret stops the pod instead of starting it half configured.
 */
export const GUIDE_SECRETS: Record<string, { secret: string; key: string; optional?: true }> = {
  DATABASE_URL: { secret: "postgres-credentials", key: "dsn" },
  AMQP_URL: { secret: "rabbitmq-credentials", key: "url" },
  REDIS_URL: { secret: "redis-credentials", key: "url" },
  /** The ML Service requires it as a bearer token on its model routes; the worker sends it. */
  ML_SERVICE_TOKEN: { secret: "ml-service-token", key: "token" },
  /** The gateway's admin routes and the console's admin page; without it they refuse everyone. */
  ADMIN_API_KEY: { secret: "admin-api-key", key: "key", optional: true },
};
/**
 * The Secret-backed variables each command reads: the servers it opens (src/components/start.ts
 * `needs`; migrate: the database only), the ML Service token (the ML Service checks it, the worker
 * sends it) and the admin key (the gateway serves the admin routes).
 */
export const COMMAND_NEEDS: Record<string, string[]> = {
  gateway: ["DATABASE_URL", "REDIS_URL", "AMQP_URL", "ADMIN_API_KEY"],
  collector: ["DATABASE_URL", "REDIS_URL", "AMQP_URL"],
  "api-service": ["DATABASE_URL", "REDIS_URL"],
  worker: ["AMQP_URL", "REDIS_URL", "ML_SERVICE_TOKEN"],
  "ml-service": ["ML_SERVICE_TOKEN"],
  migrate: ["DATABASE_URL"],
};
/** The Secrets a command's pod may reference, by any route (env, envFrom, volumes). */
export function secretsUsedBy(command: string): Set<string> {
  return new Set((COMMAND_NEEDS[command] ?? []).map((v) => GUIDE_SECRETS[v]!.secret));
}

/** The guide's names: workload → the command it runs. */
export const GUIDE_WORKLOADS: Record<string, string> = {
  "Job/ml-db-init": "migrate",
  "Deployment/api-gateway": "gateway",
  "Deployment/ml-worker": "worker",
  "Deployment/results-collector": "collector",
  "Deployment/ml-service": "ml-service",
  "Deployment/api-service": "api-service",
};

// ------------------------------------------------------------------ the pod network

/** Label every pod of the platform carries; the namespace's default deny selects it. */
export const PART_OF = { "app.kubernetes.io/part-of": "ml-inference" } as const;

/** A peer a NetworkPolicy may let in: pods of our namespace, or pods of another namespace. */
export interface AllowedPeer {
  what: string;
  /** Absent: pods of the policy's own namespace. */
  namespace?: Record<string, string>;
  pods: Record<string, string>;
}
/**
 * ingress-nginx, installed by its Helm chart or its static manifests into namespace ingress-nginx
 * (manifests/ingress.yaml carries its annotations); docs/deployment.md says how to change it.
 */
export const INGRESS_CONTROLLER: AllowedPeer = {
  what: "the Ingress controller",
  namespace: { "kubernetes.io/metadata.name": "ingress-nginx" },
  pods: { "app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller" },
};
/** kube-prometheus-stack's Prometheus in namespace monitoring (the ScaledObject queries it there). */
export const PROMETHEUS: AllowedPeer = {
  what: "Prometheus",
  namespace: { "kubernetes.io/metadata.name": "monitoring" },
  pods: { "app.kubernetes.io/name": "prometheus" },
};
export const WORKER: AllowedPeer = { what: "the worker", pods: { "app.kubernetes.io/name": "ml-worker", ...PART_OF } };

/**
 * Who may open a connection to each command's pods, and on which port: "http" is the container port
 * of that name, "metrics" the pod's prometheus.io/port. Nothing else gets in.
 */
export const ALLOWED_INGRESS: Record<string, Array<{ peer: AllowedPeer; port: "http" | "metrics" }>> = {
  gateway: [{ peer: INGRESS_CONTROLLER, port: "http" }, { peer: PROMETHEUS, port: "metrics" }],
  "api-service": [{ peer: INGRESS_CONTROLLER, port: "http" }, { peer: PROMETHEUS, port: "metrics" }],
  "ml-service": [{ peer: WORKER, port: "http" }, { peer: PROMETHEUS, port: "metrics" }],
  worker: [{ peer: PROMETHEUS, port: "metrics" }],
  collector: [{ peer: PROMETHEUS, port: "metrics" }],
  migrate: [],
};
