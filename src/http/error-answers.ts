/**
 * Every error answer the HTTP shell gives, fastify's and Node's own included, in one shape with a
 * stable code of the table in errors.ts: `{"error": {"code", "message"}}`, or OpenAI's shape on
 * `/v1` routes. Messages never carry internals; those go to the log.
 */
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { FastifyError, FastifyReply } from "fastify";
import { AppError, isAppError, openAiErrorBody } from "../errors.js";

/** Routes under this prefix answer errors in OpenAI's shape (the OpenAI-compatible front doors). */
export const OPENAI_PREFIX = "/v1/";

/** How much of a refused body is read and thrown away so that the client sees the answer (see discardBody). */
export const DISCARD_LIMIT_BYTES = 16 * 1024 * 1024;
const DISCARD_TIMEOUT_MS = 10_000;

const isOpenAiRoute = (url: string) => url.startsWith(OPENAI_PREFIX);

export function sendError(reply: FastifyReply, error: AppError): FastifyReply {
  if (error.retryAfterSeconds !== undefined) reply.header("Retry-After", String(Math.max(1, Math.ceil(error.retryAfterSeconds))));
  const body = isOpenAiRoute(reply.request.url) ? openAiErrorBody(error) : error.toJSON();
  return reply.code(error.status).type("application/json").send(body);
}

/** Maps fastify's own errors (body too large, bad media type, bad URL, ...) onto our codes. */
export function toAppError(error: FastifyError | Error): AppError {
  if (isAppError(error)) return error;
  const code = (error as FastifyError).code;
  const status = (error as FastifyError).statusCode;
  switch (code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new AppError("payload_too_large", "request body is larger than the configured limit");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new AppError("unsupported_media_type", "send the body as application/json");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new AppError("invalid_json", "the body is not valid JSON");
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new AppError("invalid_body", "Content-Length does not match the body");
    case "FST_ERR_VALIDATION":
      return new AppError("invalid_parameter", "the request does not match the route's schema");
    case "FST_ERR_BAD_URL":
      return new AppError("malformed_request", "the URL is not valid (bad percent-encoding)");
    case "FST_ERR_MAX_PARAM_LENGTH":
      return new AppError("uri_too_long", "a path segment of the URL is too long");
    default:
      // fastify's own message may name internals (parsers, hooks): a generic line instead.
      if (status !== undefined && status >= 400 && status < 500) return new AppError("malformed_request", "the request could not be read");
      return new AppError("internal_error", "internal error");
  }
}

/**
 * Reads and throws away what is left of a request body (at most DISCARD_LIMIT_BYTES, for at most
 * DISCARD_TIMEOUT_MS). An answer sent while the client is still writing, followed by a close, makes
 * Node's fetch (undici) fail with EPIPE instead of showing the answer; once the body is read the
 * client gets the answer. A body declared larger than the bound is not waited for.
 */
export function discardBody(raw: IncomingMessage): Promise<void> {
  if (raw.complete || raw.readableEnded || raw.destroyed) return Promise.resolve();
  const declared = Number(raw.headers["content-length"]);
  if (Number.isFinite(declared) && declared > DISCARD_LIMIT_BYTES) return Promise.resolve();
  return new Promise<void>((resolve) => {
    let seen = 0;
    const done = () => {
      clearTimeout(timer);
      raw.off("data", onData);
      raw.off("end", done);
      raw.off("close", done);
      raw.off("error", done);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > DISCARD_LIMIT_BYTES) {
        raw.pause();
        done();
      }
    };
    const timer = setTimeout(done, DISCARD_TIMEOUT_MS);
    timer.unref();
    raw.on("data", onData);
    raw.once("end", done);
    raw.once("close", done);
    raw.once("error", done);
    raw.resume();
  });
}

/**
 * Errors Node's HTTP parser raises before fastify sees a request (header overflow, a request line
 * that is not HTTP, a client too slow to send its headers): answered on the raw socket, then closed.
 */
export function clientErrorAnswer(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const appError =
    error.code === "HPE_HEADER_OVERFLOW"
      ? new AppError("headers_too_large", "the request line and headers are too large")
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? new AppError("request_timeout", "the request was not received in time")
        : new AppError("malformed_request", "the request is not valid HTTP");
  const body = JSON.stringify(appError.toJSON());
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.once("finish", () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${appError.status} ${reason(appError.status)}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

const REASONS: Record<number, string> = { 400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large" };
const reason = (status: number) => REASONS[status] ?? "Error";
