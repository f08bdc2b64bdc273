/** A batch line's request: the Idempotency-Key that names it, its id, whom it runs as, and what it puts into the output or error file. */
import { openAiErrorBody } from "../../../errors.js";
import type { LineOutcome } from "../../../domain/batches.js";
import type { GatewayConfig } from "../../../config.js";
import type { RequestView, UserStore } from "../../../domain/ports.js";
import { ANONYMOUS_USER_ID, type AuthenticatedUser } from "../../../http/authenticator.js";
import { idempotentRequestId } from "../admission.js";
import { answerOf, chatCompletionBody, completionBody } from "../openai/chat-shapes.js";
import { responseOf } from "../openai/responses-routes.js";
import { outcomeError } from "../openai/routes.js";

/** The Idempotency-Key a line is admitted with: it names the line's request. */
export const batchLineKey = (batchId: string, line: number) => `batch:${batchId}:${line}`;
/** The id of the request that runs a line (derived as admission derives it from the key). */
export const batchLineRequestId = (userId: string, batchId: string, line: number) => idempotentRequestId(userId, batchLineKey(batchId, line));

/** What a final request puts into the output (completed) or error file. */
export function lineOutcomeOf(batchId: string, line: number, view: RequestView): LineOutcome {
  const tokens = view.usage?.total_tokens ?? 0;
  const requestId = view.requestId;
  if (view.status === "completed") {
    const answer = answerOf(view);
    const body = view.api === "chat" ? chatCompletionBody(answer) : view.api === "response" ? responseOf(view) : completionBody(answer);
    return { batchId, line, requestId, ok: true, response: { status_code: 200, request_id: requestId, body }, error: null, tokens };
  }
  const error = outcomeError(view);
  return { batchId, line, requestId, ok: false, response: { status_code: error.status, request_id: requestId, body: openAiErrorBody(error) }, error: null, tokens };
}

/** The owner of a batch from the user store (anonymous with the anonymous limits, when enabled). */
export function batchUserResolver(users: Pick<UserStore, "findUser">, anonymous: GatewayConfig["anonymous"]) {
  return async (userId: string): Promise<AuthenticatedUser | null> => {
    if (userId === ANONYMOUS_USER_ID) {
      if (!anonymous.enabled) return null;
      return { userId, anonymous: true, limits: { dailyRequests: anonymous.dailyRequests, dailyTokens: anonymous.dailyTokens, monthlyRequests: null, monthlyTokens: null } };
    }
    const user = await users.findUser(userId);
    return user && !user.disabled ? { userId, anonymous: false, limits: user.tier.limits } : null;
  };
}
