/**
 * /metrics on a port of its own (METRICS_PORT): Prometheus scrapes it, the Ingress never routes
 * it, and the public port stops answering it. Nothing else is served here.
 */
import Fastify, { type FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import { AppError } from "../errors.js";
import { renderMetrics } from "../observability/metrics.js";
import { sendError } from "./error-answers.js";

export function createMetricsApp(registries: Registry[]): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get("/metrics", async (_request, reply) => {
    const { contentType, body } = await renderMetrics(registries);
    return reply.type(contentType).send(body);
  });
  app.setNotFoundHandler(async (request, reply) => sendError(reply, new AppError("not_found", `this port serves GET /metrics only, not ${request.method} ${request.url.split("?")[0]?.slice(0, 200)}`)));
  return app;
}

/** Listens and answers the URL (loopback spelled out when bound to every address). */
export async function listenMetrics(app: FastifyInstance, host: string, port: number): Promise<string> {
  const address = await app.listen({ host, port });
  return `${address.replace("0.0.0.0", "127.0.0.1").replace("[::]", "127.0.0.1")}/metrics`;
}
