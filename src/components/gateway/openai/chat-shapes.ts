/**
 * The answers of the gateway's `/v1/chat/completions` and `/v1/completions` in OpenAI's exact shapes,
 * built from what the platform stores and streams. Pure: no I/O, no Fastify; the route owns the
 * connection and only writes what these return.
 *
 * Every shape is typed against the `openai` package's own types (import type only), so a change in
 * what OpenAI's SDK expects breaks the type check here rather than a client at run time.
 *
 * Ids: `chatcmpl-<requestId>` and `cmpl-<requestId>`, the request id (a UUID) kept whole, so the id a
 * client holds leads straight back to the stored request (`requestIdOf`).
 */
import type { ChatCompletion, ChatCompletionChunk } from "openai/resources/chat/completions";
import type { Completion, CompletionChoice, CompletionUsage } from "openai/resources/completions";
import type { RequestView, StreamEvent } from "../../../domain/ports.js";
import type { TokenUsage } from "../../../domain/contracts.js";

/** How a generation ended, as the platform records it. */
export type FinishReason = "stop" | "length" | "cancelled";

/** `finish_reason` as OpenAI's clients accept it: "stop" | "length" (the SDK's enums have no "cancelled"). */
export type OpenAiFinishReason = "stop" | "length";

/**
 * A cancelled generation answers "stop": the text ended because someone asked it to, not at a limit
 * ("length" would tell a client to raise max_tokens and retry) and not by a filter ("content_filter"
 * makes the SDK's stream helper throw). "stop" is the one value every client takes as a clean end
 * of possibly partial text, which a cancel is.
 */
export function openAiFinishReason(reason: FinishReason): OpenAiFinishReason {
  return reason === "length" ? "length" : "stop";
}

// ---------------------------------------------------------------- ids

const CHAT_PREFIX = "chatcmpl-";
const COMPLETION_PREFIX = "cmpl-";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const chatCompletionId = (requestId: string): string => `${CHAT_PREFIX}${requestId}`;
export const completionId = (requestId: string): string => `${COMPLETION_PREFIX}${requestId}`;

/**
 * The request id inside a `chatcmpl-…` or `cmpl-…` id (lower-cased, as the platform writes ids), or
 * null when the id is not one of ours: a route answers that with 404, never a lookup of junk.
 */
export function requestIdOf(openAiId: string): string | null {
  const rest = openAiId.startsWith(CHAT_PREFIX)
    ? openAiId.slice(CHAT_PREFIX.length)
    : openAiId.startsWith(COMPLETION_PREFIX)
      ? openAiId.slice(COMPLETION_PREFIX.length)
      : null;
  return rest !== null && UUID.test(rest) ? rest.toLowerCase() : null;
}

// ---------------------------------------------------------------- whole answers

/** What every answer of one request repeats: whose it is, when and by which model. */
export interface AnswerContext {
  requestId: string;
  createdAt: Date;
  model: string;
}

export interface AnswerBody extends AnswerContext {
  /** One text per choice, in choice order. */
  text: string[];
  /** One per choice, beside `text`. */
  finishReason: FinishReason[];
  /** Null (not known, e.g. cancelled before the model ran) leaves `usage` out rather than invent zeros. */
  usage: TokenUsage | null;
}

/** A stored completed request as an answer: one text per choice, each with the request's finish reason. */
export function answerOf(view: Pick<RequestView, "requestId" | "createdAt" | "model" | "outputs" | "outputText" | "finishReason" | "usage">): AnswerBody {
  const text = view.outputs ?? [view.outputText ?? ""];
  return { requestId: view.requestId, createdAt: view.createdAt, model: view.model, text, finishReason: text.map(() => view.finishReason ?? "stop"), usage: view.usage };
}

/** OpenAI's `created`: Unix seconds. */
const seconds = (at: Date): number => Math.floor(at.getTime() / 1000);

/** Our usage already has OpenAI's field names; copied field by field so no extra key leaks out. */
export function openAiUsage(u: TokenUsage): CompletionUsage {
  return { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens };
}

function choicesOf(x: AnswerBody): Array<{ index: number; text: string; finish: OpenAiFinishReason }> {
  // A length mismatch is a caller's bug; answering with a wrong finish_reason would hide it.
  if (x.text.length !== x.finishReason.length) {
    throw new Error(`${x.text.length} texts but ${x.finishReason.length} finish reasons`);
  }
  return x.text.map((text, index) => ({ index, text, finish: openAiFinishReason(x.finishReason[index]!) }));
}

export function chatCompletionBody(x: AnswerBody): ChatCompletion {
  return {
    id: chatCompletionId(x.requestId),
    object: "chat.completion",
    created: seconds(x.createdAt),
    model: x.model,
    choices: choicesOf(x).map((c) => ({
      index: c.index,
      message: { role: "assistant", content: c.text, refusal: null },
      logprobs: null,
      finish_reason: c.finish,
    })),
    ...(x.usage ? { usage: openAiUsage(x.usage) } : {}),
  };
}

export function completionBody(x: AnswerBody): Completion {
  return {
    id: completionId(x.requestId),
    object: "text_completion",
    created: seconds(x.createdAt),
    model: x.model,
    choices: choicesOf(x).map((c) => ({ index: c.index, text: c.text, logprobs: null, finish_reason: c.finish })),
    ...(x.usage ? { usage: openAiUsage(x.usage) } : {}),
  };
}

// ---------------------------------------------------------------- streaming chunks

export interface ChunkContext extends AnswerContext {
  /**
   * The client sent `stream_options.include_usage`: OpenAI then puts `usage: null` on every chunk
   * and sends the usage on one last chunk with no choices (`*UsageChunk`).
   */
  includeUsage?: boolean;
}

/**
 * A streamed `/v1/completions` chunk. The SDK streams these typed as `Completion`, whose
 * `finish_reason` is not nullable, yet OpenAI sends null on every chunk but the last: this is the
 * type of what is really sent.
 */
export type CompletionChunk = Omit<Completion, "choices" | "usage"> & {
  choices: Array<Omit<CompletionChoice, "finish_reason"> & { finish_reason: CompletionChoice["finish_reason"] | null }>;
  usage?: CompletionUsage | null;
};

const usageNull = (ctx: ChunkContext) => (ctx.includeUsage ? { usage: null } : {});

export function chatChunk(
  ctx: ChunkContext,
  index: number,
  delta: { role?: "assistant"; content?: string },
  finishReason: FinishReason | null = null,
): ChatCompletionChunk {
  return {
    id: chatCompletionId(ctx.requestId),
    object: "chat.completion.chunk",
    created: seconds(ctx.createdAt),
    model: ctx.model,
    choices: [{ index, delta, logprobs: null, finish_reason: finishReason === null ? null : openAiFinishReason(finishReason) }],
    ...usageNull(ctx),
  };
}

/** The first chunk of a choice: OpenAI names the role once, with empty content. */
export const chatRoleChunk = (ctx: ChunkContext, index: number): ChatCompletionChunk =>
  chatChunk(ctx, index, { role: "assistant", content: "" });

/** The last chunk of a choice: an empty delta that carries the finish reason. */
export const chatFinishChunk = (ctx: ChunkContext, index: number, reason: FinishReason): ChatCompletionChunk =>
  chatChunk(ctx, index, {}, reason);

/** After every choice has finished, when `include_usage` was asked for: no choices, the usage. */
export function chatUsageChunk(ctx: ChunkContext, usage: TokenUsage): ChatCompletionChunk {
  return {
    id: chatCompletionId(ctx.requestId),
    object: "chat.completion.chunk",
    created: seconds(ctx.createdAt),
    model: ctx.model,
    choices: [],
    usage: openAiUsage(usage),
  };
}

export function completionChunk(ctx: ChunkContext, index: number, text: string, finishReason: FinishReason | null = null): CompletionChunk {
  return {
    id: completionId(ctx.requestId),
    object: "text_completion",
    created: seconds(ctx.createdAt),
    model: ctx.model,
    choices: [{ index, text, logprobs: null, finish_reason: finishReason === null ? null : openAiFinishReason(finishReason) }],
    ...usageNull(ctx),
  };
}

export function completionUsageChunk(ctx: ChunkContext, usage: TokenUsage): CompletionChunk {
  return {
    id: completionId(ctx.requestId),
    object: "text_completion",
    created: seconds(ctx.createdAt),
    model: ctx.model,
    choices: [],
    usage: openAiUsage(usage),
  };
}

/**
 * The chunks one stream event of a single-choice request becomes (the platform streams one
 * sequence: choice 0). Chat names the role before the first text, so seq 1 (delta or final) starts
 * with the role chunk. A final that is not "completed"/"cancelled" (failed) yields no chunk: OpenAI
 * has no failed chunk, the route writes its error (`sseData(openAiErrorBody(…))`) instead. A final
 * with no usage sends no usage chunk rather than zeros.
 */
export function chatChunksFor(ctx: ChunkContext, event: StreamEvent): ChatCompletionChunk[] {
  const chunks = event.seq === 1 ? [chatRoleChunk(ctx, 0)] : [];
  if (event.type === "delta") return event.text.length > 0 ? [...chunks, chatChunk(ctx, 0, { content: event.text })] : chunks;
  if (event.status === "failed") return chunks;
  chunks.push(chatFinishChunk(ctx, 0, event.finishReason ?? (event.status === "cancelled" ? "cancelled" : "stop")));
  if (ctx.includeUsage && event.usage) chunks.push(chatUsageChunk(ctx, event.usage));
  return chunks;
}

/** `chatChunksFor` for `/v1/completions` (no role chunk). */
export function completionChunksFor(ctx: ChunkContext, event: StreamEvent): CompletionChunk[] {
  if (event.type === "delta") return event.text.length > 0 ? [completionChunk(ctx, 0, event.text)] : [];
  if (event.status === "failed") return [];
  const chunks = [completionChunk(ctx, 0, "", event.finishReason ?? (event.status === "cancelled" ? "cancelled" : "stop"))];
  if (ctx.includeUsage && event.usage) chunks.push(completionUsageChunk(ctx, event.usage));
  return chunks;
}

// ---------------------------------------------------------------- SSE framing

/** One SSE message as OpenAI frames chat and completion chunks: no event name, one JSON line. */
export const sseData = (obj: unknown): string => `data: ${JSON.stringify(obj)}\n\n`;

/** The last message of a chat or completion stream; the SDK stops reading at it. */
export const SSE_DONE = "data: [DONE]\n\n";
