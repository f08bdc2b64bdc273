/**
 * The ML Service's internal credential: every route that runs the model demands
 * `Authorization: Bearer <ML_SERVICE_TOKEN>`, so nothing reaches the model without passing the
 * gateway's quota. Probes and metrics stay open.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { AppError } from "../../errors.js";

const OPEN_ROUTES = new Set(["/health", "/livez", "/metrics"]);

const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();

export function requireInternalToken(app: FastifyInstance, token: string): void {
  const expected = digest(`Bearer ${token}`);
  app.addHook("onRequest", async (request) => {
    if (OPEN_ROUTES.has(request.url.split("?", 1)[0] as string)) return;
    // Compared as digests: equal length, constant time, whatever the caller sent.
    const given = request.headers.authorization;
    if (given === undefined || !timingSafeEqual(digest(given), expected)) {
      throw new AppError("unauthorized", "the ML Service is internal: send its token as 'Authorization: Bearer <ML_SERVICE_TOKEN>'");
    }
  });
}
