/**
 * RunStates on Redis: per request one string key, changed by one Lua script (lua/run-state.lua) in
 * either mode, claim or cancel, so whichever of the two reaches Redis first wins.
 *
 * Keys and channel (prefix = keyPrefix option, default ""):
 *   <prefix>run:{<requestId>}   running | cancelling | cancelled     PX ttlMs (default 24 h), set on every write
 *   <prefix>run-cancels         pub/sub channel: the id of each request cancelled while running
 * The hash tag `{<requestId>}` keeps the script runnable unchanged on Redis Cluster.
 *
 * A state lives ttlMs after its last change, so nothing accumulates; a message still undelivered
 * after that long would find no state and run, so ttlMs must outlast any request's time in the queue.
 *
 * Two connections: commands go over a bounded one (openBoundedRedis: no offline queue, short
 * command timeouts, so a Redis outage fails a claim or cancel at once instead of queueing it), and
 * a subscriber connection carries one SUBSCRIBE to the cancel channel shared by every local
 * watcher. ioredis re-subscribes after a reconnect; notices published while it was disconnected
 * are lost (pub/sub keeps nothing); a worker that must not miss one can ask claimRun again, which
 * answers "cancelled" once a cancel has been stored.
 *
 * The Lua file is read next to this module (import.meta.url): a build must copy lua/*.lua along.
 */
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import type { RunStates } from "../../domain/ports.js";
import {
  DEFAULT_RUN_STATE_TTL_MS,
  assertRunStateRequestId,
  assertTtlMs,
  isPlausibleRequestId,
} from "../../domain/run-state-ids.js";
import type { Logger } from "../../observability/logger.js";
import { SharedSubscriptions } from "./shared-subscriptions.js";
import { Batcher } from "../../domain/batching.js";
import { openBoundedRedis, readyWithin } from "./connection.js";

export interface RedisRunStatesOptions {
  url: string;
  /** Prepended to every key and to the channel, e.g. "mli:" (default ""). */
  keyPrefix?: string;
  /** How long a state is kept after its last change (default 24 h). */
  ttlMs?: number;
  logger?: Logger;
}

type CancelListener = (requestId: string) => void;
type ClaimResult = Awaited<ReturnType<RunStates["claimRun"]>>;
type CancelResult = Awaited<ReturnType<RunStates["cancel"]>>;

interface RunStateCommands {
  mlRunState(key: string, mode: "claim" | "cancel", ttlMs: number, channel: string, requestId: string): Promise<unknown>;
}

const CLAIM_RESULTS: ReadonlySet<string> = new Set<ClaimResult>(["run", "cancelled"]);
const CANCEL_RESULTS: ReadonlySet<string> = new Set<CancelResult>(["before_start", "running", "already_cancelled"]);
/** How long create() waits for the command connection before giving up. */
const CONNECT_WAIT_MS = 5_000;

export class RedisRunStates implements RunStates {
  private readonly commandConnection: Redis;
  private readonly subscriber: Redis;
  private readonly commands: RunStateCommands;
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly logger: Logger | undefined;
  private readonly subscriptions: SharedSubscriptions<CancelListener>;
  private closed = false;
  /**
   * Claims asked for while one round of claims is on its way go together in the next: their scripts
   * are sent in one tick, which ioredis's auto-pipelining writes as one command batch, so a worker
   * taking messages one by one under load does not pay a write and a wake-up of Redis for each.
   */
  private readonly claims = new Batcher<{ requestId: string; resolve: (result: ClaimResult) => void; reject: (error: unknown) => void }>(
    (items) =>
      Promise.all(
        items.map((item) =>
          this.runScript("claim", item.requestId, CLAIM_RESULTS).then(
            (result) => item.resolve(result as ClaimResult),
            (error: unknown) => item.reject(error),
          ),
        ),
      ).then(() => undefined),
    { maxBatch: 256, maxInFlight: 1 },
  );

  constructor(options: RedisRunStatesOptions) {
    this.prefix = options.keyPrefix ?? "";
    this.ttlMs = options.ttlMs ?? DEFAULT_RUN_STATE_TTL_MS;
    assertTtlMs(this.ttlMs);
    this.logger = options.logger;
    this.commandConnection = openBoundedRedis(options.url, "run-states");
    // The subscriber keeps ioredis's offline queue: a SUBSCRIBE sent while reconnecting waits for it.
    this.subscriber = new Redis(options.url, { maxRetriesPerRequest: 2, connectionName: "run-states-sub", autoResubscribe: true });
    this.subscriptions = new SharedSubscriptions<CancelListener>(this.subscriber, () => this.closed);
    for (const [name, connection] of [
      ["command", this.commandConnection],
      ["subscriber", this.subscriber],
    ] as const) {
      connection.on("error", (err: Error) => this.logger?.warn({ err, connection: name }, "redis run states connection error"));
    }
    this.commandConnection.defineCommand("mlRunState", { numberOfKeys: 1, lua: readFileSync(new URL("./lua/run-state.lua", import.meta.url), "utf8") });
    this.commands = this.commandConnection as unknown as RunStateCommands;
    this.subscriber.on("message", (channel: string, message: string) => this.onMessage(channel, message));
  }

  /** Creates the adapter and waits until both connections answer. */
  static async create(options: RedisRunStatesOptions): Promise<RedisRunStates> {
    const runStates = new RedisRunStates(options);
    try {
      // With no offline queue a command sent before "ready" fails at once, so wait for it first.
      if (!(await readyWithin(runStates.commandConnection, CONNECT_WAIT_MS))) {
        throw new Error(`redis run states: no connection to Redis within ${CONNECT_WAIT_MS} ms`);
      }
      await Promise.all([runStates.commandConnection.ping(), runStates.subscriber.ping()]);
    } catch (err) {
      await runStates.close();
      throw err;
    }
    return runStates;
  }

  /** The state key of a request, exposed for tests and operators. */
  stateKey(requestId: string): string {
    return `${this.prefix}run:{${requestId}}`;
  }

  /** The one channel every worker watches for cancels of running requests. */
  get cancelChannel(): string {
    return `${this.prefix}run-cancels`;
  }

  async claimRun(requestId: string): Promise<ClaimResult> {
    if (this.closed) throw new Error("run states are closed");
    assertRunStateRequestId(requestId);
    return new Promise<ClaimResult>((resolve, reject) => {
      this.claims.add({ requestId, resolve, reject }).catch(reject);
    });
  }

  async cancel(requestId: string): Promise<CancelResult> {
    return this.runScript("cancel", requestId, CANCEL_RESULTS) as Promise<CancelResult>;
  }

  private async runScript(mode: "claim" | "cancel", requestId: string, expected: ReadonlySet<string>): Promise<string> {
    if (this.closed) throw new Error("run states are closed");
    assertRunStateRequestId(requestId);
    const result = await this.commands.mlRunState(this.stateKey(requestId), mode, this.ttlMs, this.cancelChannel, requestId);
    if (typeof result !== "string" || !expected.has(result)) throw new Error(`run-state script (${mode}) answered ${String(result)}`);
    return result;
  }

  async watchCancels(listener: CancelListener): Promise<() => Promise<void>> {
    if (this.closed) throw new Error("run states are closed");
    // A wrapper per watch, so the same function watching twice is two watches.
    const own: CancelListener = (requestId) => listener(requestId);
    return this.subscriptions.add(this.cancelChannel, own);
  }

  private onMessage(channel: string, message: string): void {
    const listeners = channel === this.cancelChannel ? this.subscriptions.listenersOf(channel) : [];
    if (listeners.length === 0) return;
    if (!isPlausibleRequestId(message)) {
      this.logger?.warn({ channel }, "dropped a cancel notice that is not a request id");
      return;
    }
    for (const listener of listeners) {
      if (!this.subscriptions.has(channel, listener)) continue; // unwatched by an earlier listener
      try {
        listener(message);
      } catch (err) {
        this.logger?.warn({ err, requestId: message }, "cancel listener threw");
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.subscriptions.clear();
    await Promise.allSettled([this.subscriber.quit(), this.commandConnection.quit()]);
    this.subscriber.disconnect();
    this.commandConnection.disconnect();
  }
}
