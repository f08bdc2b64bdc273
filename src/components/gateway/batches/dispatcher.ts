/**
 * Runs batches. Each tick, with nothing held open between the steps:
 *  0. validates new batches (validator.ts): their lines inserted and started, or failed;
 *  1. closes the lines that will never run (cancelled batch, window over): they go to the error file,
 *     never reserved, so nothing is charged or refunded for them;
 *  2. reads the requests of dispatched lines and keeps the outcomes of the final ones with the line
 *     (a line whose admission lease ran out with no request stored goes back to pending);
 *  3. claims pending lines, dispatched at once with a lease on their admission (one statement,
 *     replicas one after the other), in fair order
 *     between tenants: by tokens, weighted by tier (start-time fair queueing, see claimBatchLines in
 *     queries.sql), at most BATCH_DISPATCH_CONCURRENCY dispatched-and-unfinished per model over all
 *     replicas, so the broker queue stays shallow and interactive requests, which go straight to it,
 *     find it short; admits each like any request (quota, store, queue, worker, collector). The Idempotency-Key
 *     `batch:<batch>:<line>` names the line's request, so nothing more is written when it is
 *     admitted, and a line admitted twice (its lease ran out mid-admission) is one request, reserved
 *     and settled once. A line the quota
 *     has no room for waits (`not_before`) and is tried again while the window lasts;
 *  4. writes the output and error files of batches whose lines are all done, and finishes them.
 *
 * Passes run every BATCH_DISPATCH_INTERVAL_MS and, sooner, when a line this replica dispatched ends
 * (its final event): a slot freed is filled within a few milliseconds, not an interval later, so a
 * batch keeps the model as busy as the same requests sent one by one. Wake-ups that arrive while a
 * pass runs make one more pass, not one each. A batch created on this replica asks for a pass at
 * once (validateSoon), which validates it and claims its first lines.
 */
import { AppError, isAppError } from "../../../errors.js";
import type { BatchConfig, GatewayConfig } from "../../../config.js";
import type { BatchEndpoint, BatchStore, ClaimedLine, DispatchedLine, LineOutcome } from "../../../domain/batches.js";
import type { EventBus, RequestStore } from "../../../domain/ports.js";
import { isFinal } from "../../../domain/wait-for-final.js";
import type { AuthenticatedUser } from "../../../http/authenticator.js";
import type { Logger } from "../../../observability/logger.js";
import { idempotentRequestId, type Admit } from "../admission.js";
import { batchLineKey, batchLineRequestId, lineOutcomeOf } from "./line-requests.js";
import { lineAdmission } from "./lines.js";
import { newFileId } from "./shapes.js";
import { validateNewBatches } from "./validator.js";

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
 * A light pass waits until a quarter of the slots have ended or this long after the first line
 * ended, whichever comes first: a busy batch costs a pass every several lines, not one per line.
 * A slot stays taken until a pass sees its line end, so the wait is time the model does not get
 * that line: at 60 ms and half the slots, a 10,000-line batch ran at 0.78 of the same requests one
 * by one once the worker's calls got cheaper (the worker drained its held lines within the wait).
 */
const WAKE_COALESCE_MS = 15;
const WAKE_SHARE_OF_SLOTS = 4;

const withRequestId = (l: DispatchedLine) => ({ ...l, requestId: batchLineRequestId(l.userId, l.batchId, l.line) });

export class BatchDispatcher {
  private readonly now: () => Date;
  private readonly settings: BatchConfig;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  /** A line ended (a light pass is due), or a full pass was asked for, while no pass or a pass was running. */
  private again = false;
  private fullAgain = false;
  /** A batch was created here: the next pass validates, even a light one. */
  private validationDue = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  /** Ends the wait between light passes early (enough lines ended, a full pass asked for, stopping). */
  private coalesced: (() => void) | undefined;
  /** Unsubscribers of the final events this replica waits for, by request id. */
  private readonly watching = new Map<string, Promise<() => Promise<void>>>();
  /** Batch owners as admission sees them, read again on every full pass. */
  private readonly users = new Map<string, Promise<AuthenticatedUser | null>>();
  /** Lines claimed and being admitted. */
  private readonly admitting = new Set<Promise<void>>();
  /** Lines whose requests' final events came since the last pass read them. */
  private readonly ended = new Map<string, { batchId: string; line: number }>();

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
    this.coalesced?.();
    await this.running;
    await Promise.all(this.admitting);
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

  /** A line ended: a light pass soon, coalesced with the wake-ups right after it. */
  private wake(): void {
    if (this.stopped) return;
    this.again = true;
    const enough = this.ended.size >= this.enoughEnded();
    if (this.running) {
      if (enough) this.coalesced?.();
      return;
    }
    if (this.wakeTimer && !enough) return;
    clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      void this.runPasses().catch((error: unknown) => this.deps.log.warn({ err: error }, "batch dispatch failed; trying again next tick"));
    }, enough ? 0 : WAKE_COALESCE_MS);
    this.wakeTimer.unref?.();
  }

  /** A batch was created: a pass now validates it and claims its first lines (the interval could be long). */
  validateSoon(): void {
    if (this.stopped) return;
    this.validationDue = this.again = true;
    clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    this.coalesced?.();
    void this.runPasses().catch((error: unknown) => this.deps.log.warn({ err: error }, "batch dispatch failed; trying again next tick"));
  }

  /** After a pass, until the next light one: as wake() would wait with the lines that ended meanwhile. */
  private coalesce(): Promise<void> {
    if (this.ended.size >= this.enoughEnded()) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(), WAKE_COALESCE_MS);
      const done = () => {
        clearTimeout(timer);
        this.coalesced = undefined;
        resolve();
      };
      this.coalesced = done;
    });
  }

  private enoughEnded(): number {
    return Math.max(1, Math.floor(this.settings.dispatchConcurrency / WAKE_SHARE_OF_SLOTS));
  }

  /** A full pass (and the light ones wake-ups ask for meanwhile), and the admissions they started; concurrent calls share the passes in progress. */
  async tick(): Promise<void> {
    this.fullAgain = true;
    this.coalesced?.();
    await this.runPasses();
    await Promise.all(this.admitting);
  }

  private runPasses(): Promise<void> {
    if (!this.running) this.running = this.passes().finally(() => (this.running = undefined));
    return this.running;
  }

  /** The pass asked for, then those asked for meanwhile (while started: a stopped dispatcher is only ticked). */
  private async passes(): Promise<void> {
    do {
      const full = this.fullAgain;
      const validate = full || this.validationDue;
      this.again = this.fullAgain = this.validationDue = false;
      await this.pass(full, validate);
      // Lines that ended during the pass share the next one, after the coalescing wait.
      if (this.again && !this.fullAgain && !this.validationDue && !this.stopped) await this.coalesce();
    } while ((this.again || this.fullAgain) && !this.stopped);
  }

  /** Wakes this replica when the request ends; subscribed before it is admitted, so that no ending is missed. */
  private async watchRequest(requestId: string, line: { batchId: string; line: number }): Promise<void> {
    const events = this.deps.events;
    if (!events || this.stopped || this.watching.has(requestId)) return;
    const unsubscribe = events.subscribe(requestId, (event) => {
      if (!event.final && !isFinal(event)) return;
      if (!this.watching.has(requestId)) return;
      this.unwatch(requestId);
      this.ended.set(requestId, line);
      this.wake();
    });
    this.watching.set(requestId, unsubscribe);
    // Without the subscription, the full passes still find the line's end.
    await unsubscribe.then(() => undefined, () => void this.watching.delete(requestId));
  }

  private unwatch(requestId: string): void {
    const unsubscribe = this.watching.get(requestId);
    if (!unsubscribe) return;
    this.watching.delete(requestId);
    void unsubscribe.then((u) => u()).catch(() => undefined);
  }

  /**
   * Full (every interval, and when asked): closes the lines that will never run, reads every
   * dispatched line (other replicas' too, and lines whose event was lost). Light (a line this replica
   * dispatched ended): reads only the lines whose final events came, and looks for finished batches
   * only once nothing was left to claim, since a batch ends only after its last lines are claimed.
   * New batches are validated first on both when asked (`validate`), so their lines are claimed at once.
   */
  private async pass(full: boolean, validate: boolean): Promise<void> {
    if (full) {
      // A user disabled, gone or moved to another tier is seen from the next full pass on.
      this.users.clear();
      const closed = await this.deps.store.closeLines(this.now());
      if (closed > 0) this.deps.log.info({ lines: closed }, "batch lines closed without running");
    }
    // More batches waiting than one pass validates (many created at once): the next pass goes on.
    if (validate && (await validateNewBatches(this.deps, this.now))) this.validationDue = this.again = true;
    const claimed = await this.dispatch(await this.watch(full));
    if (full || claimed === 0) await this.finish();
  }

  /** The outcomes of the dispatched lines that ended; on a full pass, lines never admitted go back to pending. */
  private async watch(full: boolean): Promise<LineOutcome[]> {
    const ended = [...this.ended].map(([requestId, l]) => ({ requestId, ...l, leasedUntil: null as Date | null }));
    this.ended.clear();
    // Every line that can be dispatched at once is read on a full pass.
    const lines = full ? (await this.deps.store.dispatchedLines(Math.max(WATCH_PER_TICK, this.settings.dispatchConcurrency))).map(withRequestId) : ended;
    if (lines.length === 0) return [];
    const views = new Map((await this.deps.requests.viewMany(lines.map((l) => l.requestId))).map((v) => [v.requestId, v]));
    const outcomes: LineOutcome[] = [];
    const neverAdmitted: Array<{ batchId: string; line: number }> = [];
    const now = this.now();
    for (const l of lines) {
      const view = views.get(l.requestId);
      if (view && isFinal(view)) outcomes.push(lineOutcomeOf(l.batchId, l.line, view));
      else if (!view && l.leasedUntil !== null && l.leasedUntil <= now) neverAdmitted.push(l);
    }
    if (neverAdmitted.length > 0) {
      await this.deps.store.releaseLines(neverAdmitted, now);
      this.deps.log.info({ lines: neverAdmitted.length }, "batch lines whose admission never happened are pending again");
    }
    return outcomes;
  }

  /** Keeps the ended lines' outcomes, then claims and admits what the free slots allow; returns how many lines it claimed. */
  private async dispatch(ended: LineOutcome[]): Promise<number> {
    const now = this.now();
    const claimed = await this.deps.store.claimLines(now, new Date(now.getTime() + this.settings.leaseMs), this.settings.dispatchConcurrency, ended);
    // The lines mostly belong to a few tenants: each is looked up once between full passes.
    const userOf = (userId: string) => {
      let user = this.users.get(userId);
      if (!user) this.users.set(userId, (user = this.deps.userOf(userId)));
      return user;
    };
    // Admitted while the next pass already reads what ended and claims again: a pass takes a few
    // round trips to the database, and waiting for admissions too would leave slots idle meanwhile.
    for (const line of claimed) {
      const admitting: Promise<void> = this.dispatchLine(line, userOf)
        // A store failing while the line's fate is written: its lease runs out and it is tried again.
        .catch((error: unknown) => this.deps.log.warn({ err: error, batch_id: line.batchId, line: line.line }, "batch line left to its lease"))
        .finally(() => this.admitting.delete(admitting));
      this.admitting.add(admitting);
    }
    return claimed.length;
  }

  private async dispatchLine(l: ClaimedLine, userOf: BatchDispatcherDeps["userOf"]): Promise<void> {
    const { store, log } = this.deps;
    let requestId: string | undefined;
    try {
      const user = await userOf(l.userId);
      if (!user) throw new AppError("forbidden", "the batch's user is disabled or gone");
      const input = lineAdmission(l.endpoint as BatchEndpoint, l.body, {
        maxLength: this.deps.config.maxLengthLimit,
        maxPromptChars: this.deps.config.maxPromptChars,
        models: this.deps.models,
        defaultModel: this.deps.config.defaultModel,
      });
      const key = batchLineKey(l.batchId, l.line);
      requestId = idempotentRequestId(user.userId, key);
      await this.watchRequest(requestId, { batchId: l.batchId, line: l.line });
      // Stored under the id derived from the line: from now on its request decides its outcome.
      await this.deps.admit({ ...input, user, idempotency: { key, route: l.endpoint, body: l.body } });
    } catch (error) {
      if (requestId) this.unwatch(requestId);
      if (!isAppError(error)) {
        // Not the line's fault (a store failing): its lease runs out, it is pending again, and it is tried again.
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
      const at = this.now();
      const to = batch.status === "cancelling" ? "cancelled" : batch.expired ? "expired" : "completed";
      // OpenAI's order: in_progress → finalizing (visible while the files are written) → completed.
      let from = batch.status;
      if (to === "completed" && from === "in_progress") {
        await this.deps.store.finalizeBatch(batch.batchId, at);
        from = "finalizing";
      }
      const done = await this.deps.store.finishBatch({
        batchId: batch.batchId,
        from,
        to,
        at,
        outputFileId: newFileId(),
        errorFileId: newFileId(),
      });
      if (done) this.deps.log.info({ batch_id: batch.batchId, status: to }, "batch finished");
    }
  }
}

