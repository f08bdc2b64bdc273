/**
 * Serves the web console (console/, built by `npm run build:console` into dist/console/) under
 * /console. The files are read from disk on each request (a handful of small files; a rebuild shows
 * at once, with no restart), with their content type, and cache headers that fit Vite's output:
 * the hashed files under assets/ never change, so browsers keep them for a year; index.html names
 * them, so it is revalidated every time. Nothing is fetched from elsewhere: the CSP says so too.
 */
import { readFile, stat } from "node:fs/promises";
import { existsSync } from "node:fs";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply } from "fastify";
import { AppError } from "../errors.js";
import { sendError } from "./error-answers.js";

export interface ConsoleOptions {
  /** `/` answers with a redirect to /console (the `all` mode, where nothing else lives at `/`). */
  redirectRoot: boolean;
  /** The built console; by default dist/console beside the compiled code, or of the checkout. */
  root?: string;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

// Everything the console loads is its own; it talks only to this origin.
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** dist/http/console.js → dist/console; src/http/console.ts (tsx, tests) → <checkout>/dist/console. */
export function defaultConsoleRoot(): string {
  const candidates = [fileURLToPath(new URL("../console/", import.meta.url)), fileURLToPath(new URL("../../dist/console/", import.meta.url))];
  return candidates.find((dir) => existsSync(join(dir, "index.html"))) ?? (candidates[1] as string);
}

export function registerConsole(app: FastifyInstance, options: ConsoleOptions): void {
  const root = normalize(options.root ?? defaultConsoleRoot());

  async function send(reply: FastifyReply, relative: string): Promise<FastifyReply> {
    const path = normalize(join(root, relative));
    // A path that climbs out of the build (../ encoded or not) is answered like a missing file.
    if (path !== root && !path.startsWith(root.endsWith(sep) ? root : root + sep)) return notFound(reply, relative);
    const found = await stat(path).catch(() => null);
    if (!found?.isFile()) {
      if (relative === "index.html") {
        return sendError(reply, new AppError("not_found", "the console is not built here: run `npm run build:console`"));
      }
      return notFound(reply, relative);
    }
    const body = await readFile(path);
    const immutable = relative.startsWith("assets/");
    return reply
      .header("content-type", TYPES[extname(path).toLowerCase()] ?? "application/octet-stream")
      .header("cache-control", immutable ? "public, max-age=31536000, immutable" : "no-cache")
      .header("x-content-type-options", "nosniff")
      .header("content-security-policy", CSP)
      .header("referrer-policy", "no-referrer")
      .send(body);
  }

  const notFound = (reply: FastifyReply, relative: string) => sendError(reply, new AppError("not_found", `no console file ${relative}`));

  app.get("/console", (_request, reply) => send(reply, "index.html"));
  app.get("/console/", (_request, reply) => send(reply, "index.html"));
  app.get<{ Params: { "*": string } }>("/console/*", (request, reply) => send(reply, request.params["*"] || "index.html"));
  if (options.redirectRoot) app.get("/", (_request, reply) => reply.redirect("/console/", 302));
}
