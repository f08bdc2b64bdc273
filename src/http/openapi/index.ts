/**
 * The API reference: `GET /openapi.json` (OpenAPI 3.1, generated from the schemas that validate the
 * requests) and `GET /docs` (a self-contained page that renders it). The document is built once by
 * the caller (`openApiDocument`, from the settings) and serialized once here: both answers are
 * constant for the life of the process.
 */
import type { FastifyInstance } from "fastify";
import { docsPage } from "./docs-page.js";
import type { OpenApiDocument } from "./document.js";

export { openApiDocument, routeErrorCodes, type OpenApiDocument, type OpenApiOptions } from "./document.js";
export type { DocLimits } from "./requests.js";

export interface ApiDocsOptions {
  document: OpenApiDocument;
}

export function registerApiDocs(app: FastifyInstance, options: ApiDocsOptions): void {
  const json = JSON.stringify(options.document);
  const page = docsPage();
  app.get("/openapi.json", async (_request, reply) => reply.type("application/json; charset=utf-8").header("cache-control", "no-cache").send(json));
  app.get("/docs", async (_request, reply) =>
    reply
      .type("text/html; charset=utf-8")
      .header("content-security-policy", page.csp)
      .header("x-content-type-options", "nosniff")
      .header("referrer-policy", "no-referrer")
      .header("cache-control", "no-cache")
      .send(page.html),
  );
}
