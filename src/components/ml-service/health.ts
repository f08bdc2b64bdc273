/**
 * `GET /health`, the readiness probe: 200 once the model serves, 503 with Retry-After while it
 * loads, after it failed to load, and while stopping; either way the model's figures.
 */
import type { FastifyInstance } from "fastify";
import { DEMO_WARNING, type Serving } from "./serving.js";

export function registerHealth(app: FastifyInstance, serving: Serving): void {
  app.get("/health", async (_request, reply) => {
    const { engine } = serving;
    const info = engine.info();
    const stats = engine.stats();
    const body = {
      model: info.model,
      device: info.device,
      engine: info.engine,
      demo_model: info.demo,
      ...(info.demo ? { warning: DEMO_WARNING } : {}),
      busy: stats.running > 0,
      running: stats.running,
      queue: stats.waiting,
      capacity: stats.capacity,
      queue_limit: stats.queueLimit,
      context_size: info.contextSize,
      threads: info.threads,
      load_seconds: info.loadSeconds,
    };
    const state = serving.state();
    if (state === "ok") return { status: "ok", loaded: true, ...body };
    const loadError = serving.loadError();
    void reply.header("retry-after", "2");
    return reply.status(503).send({
      status: state,
      loaded: false,
      ...(loadError ? { error: loadError.toJSON().error } : {}),
      ...body,
    });
  });
}
