/**
 * Runs batches. Each tick, with nothing held open between the steps:
 *  1. closes the lines that will never run (cancelled batch, window over): they go to the error file,
 *     never reserved, so nothing is charged or refunded for them;
 *  2. reads the requests of dispatched lines and keeps the outcomes of the final ones with the line;
 *  3. claims pending lines under a lease (one statement, replicas one after the other), in fair order
 *     between tenants: by tokens, weighted by tier (start-time fair queueing, see claimBatchLines in
 *     queries.sql), at most BATCH_DISPATCH_CONCURRENCY admitted-and-unfinished per model over all
 *     replicas, so the broker queue stays shallow and interactive requests, which go straight to it,
 *     find it short; admits each like any request (quota, store, queue, worker, collector). The Idempotency-Key
 *     `batch:<batch>:<line>` names the line's request, so a line admitted twice (a replica died
 *     between admitting and marking it) is one request, reserved and settled once. A line the quota
 *     has no room for waits (`not_before`) and is tried again while the window lasts;
 *  4. writes the output and error files of batches whose lines are all done, and finishes them.
 *
 * Passes run every BATCH_DISPATCH_INTERVAL_MS and, sooner, when a line this replica dispatched ends
 * (its final event): a slot freed is filled within a few milliseconds, not an interval later, so a
 * batch keeps the model as busy as the same requests sent one by one. Wake-ups that arrive while a
 * pass runs make one more pass, not one each.
 */
import { AppError, isAppError, openAiErrorBody } from "../../../errors.js";
import type { BatchConfig, GatewayConfig } from "../../../config.js";
import type { BatchEndpoint, BatchStore, ClaimedLine, LineOutcome, NewFile, OutputLine } from "../../../domain/batches.js";
import type { EventBus, RequestStore, RequestView, UserStore } from "../../../domain/ports.js";
import { isFinal } from "../../../domain/wait-for-final.js";
import { ANONYMOUS_USER_ID, type AuthenticatedUser } from "../../../http/authenticator.js";
import type { Logger } from "../../../observability/logger.js";
import { idempotentRequestId, type Admit } from "../admission.js";
import { answerOf, chatCompletionBody, completionBody } from "../openai/chat-shapes.js";
import { responseOf } from "../openai/responses-routes.js";
import { outcomeError } from "../openai/routes.js";
import { lineAdmission } from "./lines.js";
import { batchRequestId, newFileId } from "./shapes.js";

export interface BatchDispatcherDeps {
  config: Pick<GatewayConfig, "maxLengthLimit" | "maxPromptChars" | "defaultModel"> & { batches: BatchConfig };
  log: Logger;
  store: BatchStore;
  admit: Admit;
  requests: Pick<RequestStore, "viewMany">;
  /** The batch owner as admission sees them now (their tier today); null: gone or disabled. */
  userOf: (userId: string) => Promise<AuthenticatedUser | null>;
  models: readonly string[];
  /** Final events of the lines' requests wake the dispatcher early; without it, only its interval does. */
  events?: Pick<EventBus, "subscribe">;
  now?: () => Date;
}

/** Finished batches written per tick, and dispatched lines read per tick. */
const FINISH_PER_TICK = 8;
const WATCH_PER_TICK = 1_000;
/**
 * How long a wake-up waits for others before its pass: lines ending together (a batch of sequences
 * in the model) share one pass, so that a busy batch costs a pass every few lines, not one per line.
 */
const WAKE_COALESCE_MS = 5;

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

/** What a final request puts into the output (completed) or error file. */
export function lineOutcomeOf(batchId: string, line: number, view: RequestView): LineOutcome {
  const tokens = view.usage?.total_tokens ?? 0;
  if (view.status === "completed") {
    const answer = answerOf(view);
    const body = view.api === "chat" ? chatCompletionBody(answer) : view.api === "response" ? responseOf(view) : completionBody(answer);
    return { batchId, line, ok: true, response: { status_code: 200, request_id: view.requestId, body }, error: null, tokens };
  }
  const error = outcomeError(view);
  return { batchId, line, ok: false, response: { status_code: error.status, request_id: view.requestId, body: openAiErrorBody(error) }, error: null, tokens };
}

export class BatchDispatcher {
  private readonly now: () => Date;
  private readonly settings: BatchConfig;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  /** A wake-up came during a pass: make another one when it ends. */
  private again = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  /** Unsubscribers of the final events this replica waits for, by request id. */
  private readonly watching = new Map<string, Promise<() => Promise<void>>>();

  constructor(private readonly deps: BatchDispatcherDeps) {
    this.now = deps.now ?? (() => new Date());
    this.settings = deps.config.batches;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.wakeTimer);
    await this.running;
    const unsubscribing = [...this.watching.values()];
    this.watching.clear();
    await Promise.all(unsubscribing.map(async (u) => (await u.catch(() => async () => undefined))().catch(() => undefined)));
  }

  private schedule(delayMs = this.settings.dispatchIntervalMs): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.tick()
        .catch((error: unknown) => this.deps.log.warn({ err: error }, "batch dispatch failed; trying again next tick"))
        .finally(() => this.schedule());
    }, delayMs);
    this.timer.unref?.();
  }

  /** A line ended: pass soon (coalesced with the wake-ups right after it), or once more after the pass running now. */
  private wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.wakeTimer) return;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      this.schedule(0);
    }, WAKE_COALESCE_MS);
    this.wakeTimer.unref?.();
  }

  /** One pass (and another while wake-ups came during it); concurrent calls share the passes in progress. */
  tick(): Promise<void> {
    if (!this.running) this.running = this.passes().finally(() => (this.running = undefined));
    return this.running;
  }

  private async passes(): Promise<void> {
    do {
      this.again = false;
      await this.pass();
    } while (this.again && !this.stopped);
  }

  /** Wakes this replica when the request ends; subscribed before it is admitted, so that no ending is missed. */
  private async watchRequest(requestId: string): Promise<void> {
    const events = this.deps.events;
    if (!events || this.stopped || this.watching.has(requestId)) return;
    const subscription = events.subscribe(requestId, (event) => {
      if (!event.final && !isFinal(event)) return;
      const unsubscribe = this.watching.get(requestId);
      this.watching.delete(requestId);
      void unsubscribe?.then((u) => u()).catch(() => undefined);
      this.wake();
    });
    this.watching.set(requestId, subscription);
    // Without the subscription, the interval still finds the line's end.
    await subscription.then(() => undefined, () => void this.watching.delete(requestId));
  }

  private unwatch(requestId: string): void {
    const unsubscribe = this.watching.get(requestId);
    if (!unsubscribe) return;
    this.watching.delete(requestId);
    void unsubscribe.then((u) => u()).catch(() => undefined);
  }

  private async pass(): Promise<void> {
    const closed = await this.deps.store.closeLines(this.now());
    if (closed > 0) this.deps.log.info({ lines: closed }, "batch lines closed without running");
    await this.watch();
    await this.dispatch();
    await this.finish();
  }

  private async watch(): Promise<void> {
    // Every line that can be dispatched at once is read each tick.
    const lines = await this.deps.store.dispatchedLines(Math.max(WATCH_PER_TICK, this.settings.dispatchConcurrency));
    if (lines.length === 0) return;
    const views = new Map((await this.deps.requests.viewMany(lines.map((l) => l.requestId))).map((v) => [v.requestId, v]));
    const outcomes: LineOutcome[] = [];
    for (const l of lines) {
      const view = views.get(l.requestId);
      if (view && isFinal(view)) outcomes.push(lineOutcomeOf(l.batchId, l.line, view));
    }
    await this.deps.store.finishLines(outcomes);
  }

  private async dispatch(): Promise<void> {
    const now = this.now();
    const claimed = await this.deps.store.claimLines(now, new Date(now.getTime() + this.settings.leaseMs), this.settings.dispatchConcurrency);
    await Promise.all(claimed.map((line) => this.dispatchLine(line)));
  }

  private async dispatchLine(l: ClaimedLine): Promise<void> {
    const { store, log } = this.deps;
    let requestId: string | undefined;
    try {
      const user = await this.deps.userOf(l.userId);
      if (!user) throw new AppError("forbidden", "the batch's user is disabled or gone");
      const input = lineAdmission(l.endpoint as BatchEndpoint, l.body, {
        maxLength: this.deps.config.maxLengthLimit,
        maxPromptChars: this.deps.config.maxPromptChars,
        models: this.deps.models,
        defaultModel: this.deps.config.defaultModel,
      });
      const key = `batch:${l.batchId}:${l.line}`;
      requestId = idempotentRequestId(user.userId, key);
      await this.watchRequest(requestId);
      const admitted = await this.deps.admit({ ...input, user, idempotency: { key, route: l.endpoint, body: l.body } });
      if (!(await store.markDispatched(l.batchId, l.line, admitted.requestId))) {
        log.warn({ batch_id: l.batchId, line: l.line, request_id: admitted.requestId }, "a batch line was admitted after its claim ran out and it was closed");
      }
    } catch (error) {
      if (requestId) this.unwatch(requestId);
      if (!isAppError(error)) {
        // Not the line's fault (a store failing): its lease runs out and it is tried again.
        log.warn({ err: error, batch_id: l.batchId, line: l.line }, "batch line not dispatched; trying again later");
        return;
      }
      if (error.code === "quota_exceeded" || error.retryable) {
        const wait = error.code === "quota_exceeded"
          ? Math.min(this.settings.quotaRetryMs, Math.max(1, error.retryAfterSeconds ?? 1) * 1000)
          : this.settings.dispatchIntervalMs;
        await store.deferLine(l.batchId, l.line, new Date(this.now().getTime() + wait), { code: error.code, message: error.message });
        return;
      }
      await store.refuseLine(l.batchId, l.line, null, { code: error.code, message: error.message });
    }
  }

  private async finish(): Promise<void> {
    for (const batch of await this.deps.store.finishableBatches(FINISH_PER_TICK)) {
      const outcomes = await this.deps.store.lineOutcomes(batch.batchId);
      const lineOf = (o: (typeof outcomes)[number]): OutputLine => ({
        id: batchRequestId(o.requestId, batch.batchId, o.line),
        custom_id: o.customId,
        response: o.response,
        error: o.error,
      });
      const at = this.now();
      const file = (kind: "output" | "error", lines: OutputLine[]): NewFile | null =>
        lines.length === 0
          ? null
          : {
              fileId: newFileId(),
              userId: batch.userId,
              purpose: "batch_output",
              filename: `${batch.batchId}_${kind}.jsonl`,
              content: Buffer.from(lines.map((line) => `${JSON.stringify(line)}\n`).join("")),
              createdAt: at,
            };
      const output = file("output", outcomes.filter((o) => o.ok).map(lineOf));
      const errors = file("error", outcomes.filter((o) => !o.ok).map(lineOf));
      const to = batch.status === "cancelling" ? "cancelled" : batch.expired ? "expired" : "completed";
      const done = await this.deps.store.finishBatch({
        batchId: batch.batchId,
        from: batch.status,
        to,
        at,
        files: [output, errors].filter((f): f is NewFile => f !== null),
        outputFileId: output?.fileId ?? null,
        errorFileId: errors?.fileId ?? null,
      });
      if (done) this.deps.log.info({ batch_id: batch.batchId, status: to, lines: outcomes.length }, "batch finished");
    }
  }
}

