/**
 * The Responses API's answers (`POST /v1/responses`, `GET /v1/responses/{id}`, and its streamed
 * events) in OpenAI's exact shapes, built from what the platform stores and streams. Pure: no I/O,
 * no Fastify. The request body's schema is beside this file (responses-body.ts).
 *
 * Streaming is resumable (`GET /v1/responses/{id}?stream=true&starting_after=N`), so every event's
 * `sequence_number` is a function of the platform's stream alone, never of when or how often a
 * client connected:
 *
 *   0 response.created, 1 response.in_progress, 2 response.output_item.added,
 *   3 response.content_part.added                           (`preludeEvents`, always the same)
 *   3 + k  response.output_text.delta for stream delta seq k (k = 1 … n-1)
 *   then for the final event (stream seq n):
 *   3 + n  response.output_text.done, 4 + n response.content_part.done,
 *   5 + n  response.output_item.done, 6 + n the terminal event (completed / failed / incomplete)
 *
 * A reader replays the stream from its start through `eventsFor` and keeps `after(events, N)`: the
 * same stream gives the same events, so a client resuming after N sees each event exactly once.
 */
import type {
  Response,
  ResponseCompletedEvent,
  ResponseContentPartAddedEvent,
  ResponseContentPartDoneEvent,
  ResponseCreatedEvent,
  ResponseError,
  ResponseFailedEvent,
  ResponseIncompleteEvent,
  ResponseInProgressEvent,
  ResponseOutputItemAddedEvent,
  ResponseOutputItemDoneEvent,
  ResponseOutputMessage,
  ResponseOutputText,
  ResponseStreamEvent,
  ResponseTextDeltaEvent,
  ResponseTextDoneEvent,
  ResponseUsage,
} from "openai/resources/responses/responses";
import type { TokenUsage } from "../../../domain/contracts.js";
import type { RequestStatus, StreamEvent } from "../../../domain/ports.js";
import { ERRORS, chargedOnFailure, isErrorCode } from "../../../errors.js";

// ---------------------------------------------------------------- wire types

/**
 * A Response as it goes on the wire. The SDK's type also has `output_text`, a convenience the SDK
 * computes itself (`addOutputText` on create/retrieve and on a stream's terminal events); OpenAI's
 * JSON does not carry it, so neither do we.
 */
export type WireResponse = Omit<Response, "output_text">;

/** A stream event as it goes on the wire: any `response` inside is a `WireResponse`. */
export type WireEvent<E> = E extends { response: Response } ? Omit<E, "response"> & { response: WireResponse } : E;
export type ResponseWireEvent = WireEvent<ResponseStreamEvent>;

/** The events this module emits (a subset of `ResponseWireEvent`, checked by the type of `after`). */
export type EmittedEvent = WireEvent<
  | ResponseCreatedEvent
  | ResponseInProgressEvent
  | ResponseOutputItemAddedEvent
  | ResponseContentPartAddedEvent
  | ResponseTextDeltaEvent
  | ResponseTextDoneEvent
  | ResponseContentPartDoneEvent
  | ResponseOutputItemDoneEvent
  | ResponseCompletedEvent
  | ResponseFailedEvent
  | ResponseIncompleteEvent
>;

// ---------------------------------------------------------------- ids

/**
 * `resp_` and `msg_` followed by the request id's 32 hex digits without dashes: the look of OpenAI's
 * ids (`resp_67cc…`), and still one-to-one with the request id (`requestIdOfResponse`).
 */
const hex = (requestId: string): string => requestId.replaceAll("-", "").toLowerCase();
export const responseId = (requestId: string): string => `resp_${hex(requestId)}`;
export const messageId = (requestId: string): string => `msg_${hex(requestId)}`;

/** The request id (a lower-case UUID) inside a `resp_…` id, or null when it is not one of ours. */
export function requestIdOfResponse(id: string): string | null {
  const m = /^resp_([0-9a-f]{8})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{12})$/i.exec(id);
  return m ? m.slice(1).join("-").toLowerCase() : null;
}

// ---------------------------------------------------------------- the response object

export type ResponseStatus = "queued" | "in_progress" | "completed" | "failed" | "cancelled" | "incomplete";

/** What a response is asked for: fixed when it is created, the same in every answer about it. */
export interface ResponseFacts {
  requestId: string;
  createdAt: Date;
  model: string;
  instructions: string | null;
  metadata: Record<string, string> | null;
  maxOutputTokens: number | null;
  temperature: number | null;
  topP: number | null;
  background: boolean;
}

/** Where it stands now. */
export interface ResponseOutcome {
  status: ResponseStatus;
  /** Null: no text yet (or none kept); `output` is then empty. */
  text: string | null;
  usage: TokenUsage | null;
  error: { code: string; message: string } | null;
  /** Sent as `completed_at` for a completed response only (OpenAI's rule); left out when unknown. */
  completedAt?: Date | null;
}

/**
 * The Responses status of a stored request: "length" (max_output_tokens reached) is "incomplete",
 * as OpenAI reports it; processing is "in_progress".
 */
export function responseStatus(status: RequestStatus | "cancelled", finishReason: "stop" | "length" | "cancelled" | null): ResponseStatus {
  if (status === "processing") return "in_progress";
  if (status === "completed" && finishReason === "length") return "incomplete";
  return status;
}

const seconds = (at: Date): number => Math.floor(at.getTime() / 1000);

export function responseUsage(u: TokenUsage): ResponseUsage {
  // No prompt cache and no reasoning here: the details are zeros, which the type requires.
  return {
    input_tokens: u.prompt_tokens,
    input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
    output_tokens: u.completion_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: u.total_tokens,
  };
}

/**
 * OpenAI's `error.code` is a closed list; the platform's stable code goes in `type` so nothing is
 * lost. Limits are `rate_limit_exceeded`, failures on the request's own input (the codes the error
 * table charges for) `invalid_prompt`, everything else the platform's: `server_error`.
 */
export function responseError(e: { code: string; message: string }): ResponseError {
  const code: ResponseError["code"] =
    isErrorCode(e.code) && ERRORS[e.code].status === 429 ? "rate_limit_exceeded" : chargedOnFailure(e.code) ? "invalid_prompt" : "server_error";
  return { code, message: e.message, type: e.code };
}

const outputText = (text: string): ResponseOutputText => ({ type: "output_text", text, annotations: [], logprobs: [] });

function messageItem(requestId: string, text: string, status: ResponseOutputMessage["status"]): ResponseOutputMessage {
  return { id: messageId(requestId), type: "message", role: "assistant", status, content: [outputText(text)] };
}

/** The message's own status: done only when the response completed; cut short otherwise. */
function itemStatus(status: ResponseStatus): ResponseOutputMessage["status"] {
  if (status === "completed") return "completed";
  return status === "queued" || status === "in_progress" ? "in_progress" : "incomplete";
}

/**
 * The Response object of `facts` in the state `outcome`. The two come as separate arguments, never
 * merged first: on Node 20 (V8 11.3), adding properties to an object built by a spread
 * (`{ ...facts, status }`) takes a slow path, measured at ~10 µs a call: more than the rest of the
 * answer costs, and on every admission of POST /v1/responses. `extension`'s fields (the platform's
 * own, say the queue estimate) come last.
 */
export function responseObject<E extends object = Record<never, never>>(facts: ResponseFacts, outcome: ResponseOutcome, extension?: E): WireResponse & E {
  return {
    id: responseId(facts.requestId),
    object: "response",
    created_at: seconds(facts.createdAt),
    status: outcome.status,
    background: facts.background,
    model: facts.model,
    output: outcome.text === null ? [] : [messageItem(facts.requestId, outcome.text, itemStatus(outcome.status))],
    error: outcome.error && outcome.status === "failed" ? responseError(outcome.error) : null,
    // The only limit that cuts a generation short here is the token limit.
    incomplete_details: outcome.status === "incomplete" ? { reason: "max_output_tokens" } : null,
    instructions: facts.instructions,
    // OpenAI answers {} for "none".
    metadata: facts.metadata ?? {},
    max_output_tokens: facts.maxOutputTokens,
    temperature: facts.temperature,
    top_p: facts.topP,
    // No tools exist here (the body schema refuses them), which these say rather than OpenAI's defaults.
    parallel_tool_calls: false,
    tool_choice: "none",
    tools: [],
    text: { format: { type: "text" } },
    truncation: "disabled",
    access_programs: null,
    ...(outcome.usage ? { usage: responseUsage(outcome.usage) } : {}),
    ...(outcome.status === "completed" && outcome.completedAt ? { completed_at: seconds(outcome.completedAt) } : {}),
    ...(extension as E),
  };
}

// ---------------------------------------------------------------- streamed events

/** Events 0..3 come before any stream event: the first delta (stream seq 1) is number 4. */
const PRELUDE_LAST = 3;

/**
 * Events 0..3. Built from the facts only (never the current status), so a replay long after the
 * response finished repeats them byte for byte. A background response is created "queued".
 */
export function preludeEvents(facts: ResponseFacts): EmittedEvent[] {
  const at = (status: ResponseStatus) => responseObject(facts, { status, text: null, usage: null, error: null });
  const item_id = messageId(facts.requestId);
  return [
    { type: "response.created", sequence_number: 0, response: at(facts.background ? "queued" : "in_progress") },
    { type: "response.in_progress", sequence_number: 1, response: at("in_progress") },
    {
      type: "response.output_item.added",
      sequence_number: 2,
      output_index: 0,
      item: { id: item_id, type: "message", role: "assistant", status: "in_progress", content: [] },
    },
    { type: "response.content_part.added", sequence_number: 3, item_id, output_index: 0, content_index: 0, part: outputText("") },
  ];
}

/** What `eventsFor` needs to remember between stream events. */
export interface ResponseStreamState {
  /** The stream seq last folded in (0: none yet). */
  lastSeq: number;
  /** The text of the deltas so far, for the `*.done` events. */
  text: string;
  finished: boolean;
}

export const initialStreamState = (): ResponseStreamState => ({ lastSeq: 0, text: "", finished: false });

/**
 * The terminal event of a final. OpenAI has no `response.cancelled` event; a cancelled response
 * ends with `response.incomplete` carrying `status: "cancelled"`: its text stopped early but is what
 * it is (the SDK keeps the partial output, as for any incomplete response), and nothing failed, so
 * `response.failed` (which clients turn into an exception) would misreport it.
 */
function terminalType(status: ResponseStatus): "response.completed" | "response.failed" | "response.incomplete" {
  if (status === "completed") return "response.completed";
  return status === "failed" ? "response.failed" : "response.incomplete";
}

/**
 * The events one stream event produces, and the state after it. A stream event already folded in
 * (seq ≤ lastSeq: a redelivery) produces none; a gap in seq is a caller's bug and throws, since
 * numbering past it would give a resuming client wrong numbers.
 */
export function eventsFor(
  facts: ResponseFacts,
  state: ResponseStreamState,
  event: StreamEvent,
): { state: ResponseStreamState; events: EmittedEvent[] } {
  if (event.seq <= state.lastSeq) return { state, events: [] };
  if (state.finished) throw new Error(`stream event ${event.seq} after the final event ${state.lastSeq}`);
  if (event.seq !== state.lastSeq + 1) throw new Error(`stream event ${event.seq} after ${state.lastSeq}: a gap`);
  const item_id = messageId(facts.requestId);
  const n = PRELUDE_LAST + event.seq;
  if (event.type === "delta") {
    return {
      state: { lastSeq: event.seq, text: state.text + event.text, finished: false },
      events: [
        { type: "response.output_text.delta", sequence_number: n, item_id, output_index: 0, content_index: 0, delta: event.text, logprobs: [] },
      ],
    };
  }
  const status = responseStatus(event.status, event.finishReason);
  const text = state.text;
  const response = responseObject(facts, { status, text, usage: event.usage, error: event.error });
  return {
    state: { lastSeq: event.seq, text, finished: true },
    events: [
      { type: "response.output_text.done", sequence_number: n, item_id, output_index: 0, content_index: 0, text, logprobs: [] },
      { type: "response.content_part.done", sequence_number: n + 1, item_id, output_index: 0, content_index: 0, part: outputText(text) },
      { type: "response.output_item.done", sequence_number: n + 2, output_index: 0, item: messageItem(facts.requestId, text, itemStatus(status)) },
      { type: terminalType(status), sequence_number: n + 3, response },
    ],
  };
}

/** The prelude and every event of `stream` (oldest first, from seq 1), with the state at its end. */
export function replayEvents(facts: ResponseFacts, stream: readonly StreamEvent[]): { state: ResponseStreamState; events: EmittedEvent[] } {
  let state = initialStreamState();
  const events = preludeEvents(facts);
  for (const streamEvent of stream) {
    const next = eventsFor(facts, state, streamEvent);
    state = next.state;
    events.push(...next.events);
  }
  return { state, events };
}

/** The events a client resuming with `starting_after` has not seen (all of them when it is null). */
export function after<E extends ResponseWireEvent>(events: readonly E[], startingAfter: number | null | undefined): E[] {
  return startingAfter == null ? [...events] : events.filter((e) => e.sequence_number > startingAfter);
}

/** One Responses SSE message: named by its type, as OpenAI frames them (no `[DONE]` at the end). */
export const sseEvent = (event: ResponseWireEvent): string => `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
