/**
 * Interfaces the domain owns. Adapters (src/adapters/*) implement them with real servers
 * (PostgreSQL, Redis, RabbitMQ) or in-process (PGlite, memory). The domain imports no I/O library.
 */
import type { ChatMessage, RequestEvent, TokenUsage } from "./contracts.js";
import type { GenerationParams } from "./generation-params.js";
import type { QuotaLimits, QuotaWindow } from "./quota-ports.js";
import type { QueueSnapshot } from "./queue-estimate.js";
export * from "./quota-ports.js";
export * from "./stream-ports.js";

// ---------------------------------------------------------------- messaging

/** What a consumer handler wants done with the message it was given. */
export type HandlerVerdict = "ack" | "dead_letter" | "requeue";

export interface ConsumeOptions {
  /** Messages handed out before any is acknowledged (bounded prefetch = back-pressure). */
  prefetch: number;
}

export interface Consumer {
  /** Stop taking new messages and wait until the handlers in flight have finished. */
  drain(): Promise<void>;
}

export interface QueueStats {
  ready: number;
  unacked: number;
}

export interface MessageQueue {
  /** Resolves only once the broker has confirmed the message is stored (publisher confirm). */
  publish(queue: string, body: Buffer, options?: { delayMs?: number; headers?: Record<string, string> }): Promise<void>;
  /**
   * Deliver messages one at a time per handler call; the verdict is applied after the handler
   * resolves. A handler that throws is treated as "requeue". `redelivered` tells a handler the broker
   * handed this message out before.
   */
  consume(
    queue: string,
    handler: (body: Buffer, meta: { redelivered: boolean; headers: Record<string, string> }) => Promise<HandlerVerdict>,
    options: ConsumeOptions,
  ): Promise<Consumer>;
  stats(queue: string): Promise<QueueStats>;
  /** Messages that were dead-lettered from `queue`, for inspection and tests. */
  deadLetterQueueName(queue: string): string;
  ping(): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- events (SSE fan-out)

export interface EventBus {
  /** Fan an event out to every replica's subscribers of that request. */
  publish(event: RequestEvent): Promise<void>;
  /** Returns an unsubscribe function. Resolves once the subscription is live. */
  subscribe(requestId: string, listener: (event: RequestEvent) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- requests (durable store)

export type RequestStatus = "queued" | "processing" | "completed" | "failed" | "cancelled";

/** Which API admitted a request: its answers (status, events, retrieval) come in that API's shape. */
export type RequestApi = "inference" | "chat" | "completion" | "response";

/** How generation ended: the model stopped, hit max_length, or the request was cancelled. */
export type FinishReason = "stop" | "length" | "cancelled";

export interface NewRequest {
  requestId: string;
  userId: string;
  model: string;
  prompt: string;
  params: GenerationParams;
  estimatedTokens: number;
  window: QuotaWindow;
  createdAt: Date;
  /** Default "inference" (POST /api/v1/inference). */
  api?: RequestApi;
  /** What the admitting API must echo back later (a response's instructions, metadata, background). */
  apiOptions?: Record<string, unknown> | null;
  /** Chat requests: the conversation (the ML Service formats it with the model's chat template). */
  messages?: ChatMessage[] | null;
  /** The worker publishes its token deltas to the request's stream (asked for with `stream`). */
  streamTokens?: boolean;
  /** Hash of the route and body sent with an Idempotency-Key (the key itself names the request id). */
  idempotencyHash?: string | null;
  /** The latest time the request may start (max_queue_seconds); past it, it fails deadline_exceeded. */
  deadlineAt?: Date | null;
}

export interface StoredRequest extends NewRequest {
  status: RequestStatus;
  published: boolean;
  startedAt: Date | null;
  completedAt: Date | null;
  outputText: string | null;
  outputs: string[] | null;
  usage: TokenUsage | null;
  error: { code: string; message: string } | null;
  finishReason: FinishReason | null;
}

/** What status and event readers need: the request without its prompt, messages and parameters. */
export type RequestView = Omit<StoredRequest, "prompt" | "params" | "messages">;

export interface QuotaReplayEntry {
  requestId: string;
  userId: string;
  /** The UTC day the reservation was made in, "YYYY-MM-DD". */
  day: string;
  tokens: number;
}

export interface FinishInput {
  requestId: string;
  /** "cancelled" with usage: the tokens processed are charged (a ledger row); without: released. */
  status: "completed" | "failed" | "cancelled";
  at: Date;
  outputText: string | null;
  outputs: string[] | null;
  usage: TokenUsage | null;
  error: { code: string; message: string } | null;
  finishReason?: FinishReason | null;
  attempt: number;
  /** When the worker started the call (`processing` is not stored on its own); defaults to `at`. */
  startedAt?: Date | null;
  /**
   * A failed request that failed on its own input: it counts against the request limits, so it gets
   * a ledger row with no tokens (and its reservation is settled at 0, not released).
   */
  charged?: boolean;
}

/** Which of a user's requests `RequestStore.listByUser` answers. */
export interface RequestPage {
  status?: RequestStatus;
  limit: number;
  after?: { createdAt: Date; requestId: string };
}

export interface RequestStore {
  /** Stores one request; an id that is already stored is an error. */
  insert(request: NewRequest): Promise<void>;
  /**
   * Several requests in one statement: all stored, or none. A request whose id is already stored is
   * skipped (an Idempotency-Key names its request's id); the answer names the ids inserted.
   */
  insertMany(requests: NewRequest[]): Promise<{ inserted: Set<string> }>;
  /**
   * In one transaction: store the outcome and (for completed) the ledger row. Only a request that is
   * not yet finished changes; `changed: false` means a duplicate outcome.
   */
  finish(input: FinishInput): Promise<{ changed: boolean }>;
  /**
   * `finish` for many outcomes in one statement (all stored, or none): each request that was not yet
   * finished takes its outcome (the first, if an id comes twice) and its ledger row. `changed` names
   * the requests that changed, each with the quota window it was reserved in (so that settling it
   * needs no lookup); any other id is a duplicate outcome or an unknown request.
   */
  finishMany(inputs: FinishInput[]): Promise<{ changed: Map<string, QuotaWindow> }>;
  get(requestId: string): Promise<StoredRequest | null>;
  /** The request without prompt and parameters (cheaper to read, for status lookups). */
  view(requestId: string): Promise<RequestView | null>;
  /** Several views in one round trip; ids not found are absent from the answer. */
  viewMany(requestIds: string[]): Promise<RequestView[]>;
  /**
   * One page of a user's requests, newest first (by created_at, then request_id, both descending),
   * of one status when given. `after` is the last request of the previous page: the page holds only
   * requests strictly older in that order (a keyset, so a page never repeats or skips a row while
   * new requests arrive). At most `limit` views.
   */
  listByUser(userId: string, page: RequestPage): Promise<RequestView[]>;
  /**
   * What the quota counters are made of: settled usage of the given month (one entry per ledger
   * row) and the reservations of every open request. Rebuilds an in-process quota store.
   */
  quotaReplay(month: string): Promise<{ settled: QuotaReplayEntry[]; open: QuotaReplayEntry[] }>;
  /** Requests queued or processing (open reservations), for the gauge. */
  countOpen(): Promise<number>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- the sweeper's claims (outbox, expiry)

/**
 * A time-bounded claim on rows, in the claimer's clock: held until `now + ms`. While it holds, no
 * other claimer takes those rows; once it has run out (the claimer died, or took too long) another
 * may. A claim holds no database lock or transaction: the claimer works on the rows with nothing
 * open, then marks or releases them in a short statement of its own. A claimer slower than its
 * lease may see its rows claimed twice (a duplicate publish, which the collector's idempotency
 * makes harmless), so a lease should comfortably exceed one publish or release.
 */
export interface Lease {
  now: Date;
  ms: number;
}

/**
 * Requests stored but not (known to be) on the queue. Admission publishes at once and marks the
 * request published; the sweeper claims the ones left behind (a crash between insert and publish),
 * publishes them with no transaction open, then marks them published or releases the claim.
 */
export interface Outbox {
  /**
   * Leases up to `limit` queued, unpublished requests stored before `olderThan` that no live lease
   * holds, in one statement. Two claimers never get the same row.
   */
  claim(olderThan: Date, limit: number, lease: Lease): Promise<StoredRequest[]>;
  /** Published (confirmed by the broker): never claimed again. Ends any claim on them. */
  markPublished(requestIds: string[]): Promise<void>;
  /** Gives claimed rows back at once (their publish failed), for the next sweep to try again. */
  releaseClaim(requestIds: string[]): Promise<void>;
  /**
   * Removes a request whose publish failed, so a 503 leaves nothing behind. False when there was no
   * such row to remove (the sweeper had published it meanwhile).
   */
  deleteUnpublished(requestId: string): Promise<boolean>;
  /**
   * Marks every open request unpublished (and unclaimed), so the sweeper publishes it again. Used
   * when the queue is in-process: after a restart it is empty, and the database is the only record
   * of open work.
   */
  unpublishOpen(): Promise<number>;
}

/**
 * Requests open for too long (processing: since they started). The sweeper claims them, releases
 * their quota reservations with no transaction open, then expires the ones still open. A request
 * claimed by either the outbox or here is skipped by both until the claim ends.
 */
export interface StaleRequests {
  /** Leases up to `limit` requests open since before `olderThan` that no live lease holds. */
  claim(olderThan: Date, limit: number, lease: Lease): Promise<Array<{ requestId: string; userId: string }>>;
  /**
   * Fails the given requests with code `timeout`, in one statement that changes only those still
   * open: an outcome stored after the claim wins. Returns the requests that changed.
   */
  expire(requestIds: string[], at: Date): Promise<Array<{ requestId: string; userId: string }>>;
  /** Gives claimed rows back at once (their release failed), for the next sweep to try again. */
  releaseClaim(requestIds: string[]): Promise<void>;
}

// ---------------------------------------------------------------- users, keys, tiers

export interface Tier {
  name: string;
  limits: QuotaLimits;
}

export interface UserRecord {
  userId: string;
  tier: Tier;
  disabled: boolean;
}

export interface UserStore {
  findByKeyHash(keyHash: string): Promise<UserRecord | null>;
  findUser(userId: string): Promise<UserRecord | null>;
  createUser(userId: string, tier: string): Promise<void>;
  setTier(userId: string, tier: string): Promise<boolean>;
  listUsers(): Promise<Array<{ userId: string; tier: string; disabled: boolean; activeKeys: number; createdAt: Date }>>;
  addApiKey(keyId: string, userId: string, keyHash: string): Promise<void>;
  revokeApiKey(keyId: string): Promise<boolean>;
  upsertTier(tier: Tier): Promise<void>;
  listTiers(): Promise<Tier[]>;
}

/** A user's place in the queue: their open requests, and what was admitted before the oldest of them. */
export interface QueuePosition {
  open: number;
  ahead: number;
  aheadEstimatedTokens: number;
}

/** The backlog and recent throughput the queue estimate is made from. */
export interface BacklogStats {
  /**
   * The backlog now, and what finished in the last `windowSeconds` before `now`: only the last
   * `recentRequests` of those when given, the window then spanning them alone.
   */
  snapshot(windowSeconds: number, now: Date, recentRequests?: number): Promise<QueueSnapshot>;
  positionOf(userId: string): Promise<QueuePosition>;
}
