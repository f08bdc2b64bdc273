/**
 * The one builder of the queue message for a request, from its stored row or from one being
 * admitted: the gateway publishes it at admission, the sweeper republishes it from the row.
 */
import type { RequestMessage } from "./contracts.js";
import { toWire } from "./generation-params.js";
import type { NewRequest } from "./ports.js";

export type PublishableRequest = Pick<
  NewRequest,
  "requestId" | "userId" | "model" | "prompt" | "params" | "estimatedTokens" | "createdAt" | "messages" | "streamTokens" | "deadlineAt"
>;

export function requestMessageOf(request: PublishableRequest): RequestMessage {
  return {
    v: 1,
    request_id: request.requestId,
    user_id: request.userId,
    model: request.model,
    prompt: request.prompt,
    ...(request.messages ? { messages: request.messages } : {}),
    ...(request.streamTokens ? { stream: true as const } : {}),
    params: toWire(request.params),
    reserved_tokens: request.estimatedTokens,
    attempt: 1,
    created_at: request.createdAt.toISOString(),
    ...(request.deadlineAt ? { deadline_at: request.deadlineAt.toISOString() } : {}),
  };
}
