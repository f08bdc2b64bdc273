/**
 * Streamed answers (NDJSON for `/inference`, SSE for the OpenAI routes) and the client's
 * disconnect, which aborts the generation it was waiting for.
 */
import type { FastifyReply } from "fastify";
import { AppError, isAppError } from "../../errors.js";

/** Aborts when the client goes away before the answer is complete. */
export function disconnectSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort(new Error("client disconnected"));
  });
  return controller.signal;
}

/** Starts a streamed answer on first use, so errors raised before any output still get a proper status. */
export class LazyStream {
  started = false;
  constructor(
    private readonly reply: FastifyReply,
    private readonly contentType: string,
  ) {}
  write(chunk: string): void {
    if (!this.started) {
      this.started = true;
      this.reply.hijack();
      this.reply.raw.writeHead(200, {
        "content-type": this.contentType,
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
        connection: "keep-alive",
      });
    }
    if (!this.reply.raw.destroyed) this.reply.raw.write(chunk);
  }
  /** An answer whose only chunk is its last goes out whole (with its length): one write, not three. */
  end(chunk?: string): void {
    if (!this.started && chunk !== undefined) {
      this.started = true;
      this.reply.hijack();
      const body = Buffer.from(chunk, "utf8");
      this.reply.raw.writeHead(200, { "content-type": this.contentType, "cache-control": "no-cache", "content-length": body.length });
      if (!this.reply.raw.destroyed) this.reply.raw.end(body);
      return;
    }
    if (chunk !== undefined) this.write(chunk);
    if (!this.reply.raw.destroyed) this.reply.raw.end();
  }
}

/**
 * A failure before any output is an ordinary error answer (thrown on); after output has started,
 * the status is already sent, so the stream ends with an error record in its own format.
 */
export function endWithError(stream: LazyStream, error: unknown, format: (body: ReturnType<AppError["toJSON"]>) => string): void {
  if (!stream.started) throw error;
  const appError = isAppError(error) ? error : new AppError("generation_failed", "generation failed");
  stream.end(format(appError.toJSON()));
}

export const sseStream = (reply: FastifyReply) => new LazyStream(reply, "text/event-stream; charset=utf-8");
export const sse = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`;
