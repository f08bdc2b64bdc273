/**
 * Where the integration suites find the real servers, and what happens when one is missing:
 * under CI=true the suite fails with a clear message; on a laptop it is skipped, said in one line.
 */
import net from "node:net";

export type ServiceName = "postgres" | "redis" | "rabbitmq";

export const TEST_URLS: Record<ServiceName, string> = {
  postgres: process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test",
  redis: process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379/0",
  rabbitmq: process.env.TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672",
};

function hostPort(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  const defaults: Record<string, number> = { "postgres:": 5432, "postgresql:": 5432, "redis:": 6379, "amqp:": 5672 };
  return { host: parsed.hostname || "127.0.0.1", port: Number(parsed.port || defaults[parsed.protocol] || 0) };
}

function reachable(url: string, timeoutMs = 1500): Promise<boolean> {
  const { host, port } = hostPort(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Returns `undefined` when every named service answers, or a skip reason when one does not and this
 * is not CI. Under CI=true a missing service throws, failing the suite.
 * Use: `const skip = await requireServices("postgres", "redis"); describe("x", { skip }, ...)`.
 */
export async function requireServices(...names: ServiceName[]): Promise<string | undefined> {
  const missing: string[] = [];
  for (const name of names) if (!(await reachable(TEST_URLS[name]))) missing.push(`${name} (${TEST_URLS[name]})`);
  if (missing.length === 0) return undefined;
  const message = `required service not reachable: ${missing.join(", ")}`;
  if (process.env.CI === "true") throw new Error(`${message}. CI must run every suite: start the service (see .ci/run).`);
  console.log(`# skipping suite: ${message}`);
  return message;
}

/** A name unique to this test process, for queues, key prefixes and schemas. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
}

/** The environment a component process needs to run on the real servers with a run's own schema, queues and key prefix. */
export function serverEnv(databaseUrl: string, queues: { requests: string; results: string }, keyPrefix: string): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL: TEST_URLS.redis,
    AMQP_URL: TEST_URLS.rabbitmq,
    QUEUE_REQUESTS: queues.requests,
    QUEUE_RESULTS: queues.results,
    REDIS_KEY_PREFIX: keyPrefix,
  };
}
