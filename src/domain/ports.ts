/**
 * Interfaces the domain owns. Adapters (src/adapters/*) implement them with real servers
 * (PostgreSQL, Redis, RabbitMQ) or in-process (PGlite, memory). The domain imports no I/O library.
 */
import type { RequestEvent } from "./contracts.js";

// ---------------------------------------------------------------- quota

export type QuotaLimitName = "daily_requests" | "daily_tokens" | "monthly_requests" | "monthly_tokens";

/** Limits of one user, from their tier. A limit of null means unlimited. */
export interface QuotaLimits {
  dailyRequests: number | null;
  dailyTokens: number | null;
  monthlyRequests: number | null;
  monthlyTokens: number | null;
}

/** Calendar windows in UTC: day "2026-11-25", month "2026-11". */
export interface QuotaWindow {
  day: string;
  month: string;
}

export interface ReserveInput {
  userId: string;
  requestId: string;
  /** Estimated tokens (prompt + requested completion) held until settle or release. */
  tokens: number;
  limits: QuotaLimits;
  now: Date;
}

export type ReserveResult =
  | { ok: true; window: QuotaWindow; duplicate: boolean }
  | {
      ok: false;
      limit: QuotaLimitName;
      limitValue: number;
      /** used (+ reserved for tokens) in that window before this request. */
      current: number;
      /** Seconds until that window resets. */
      retryAfterSeconds: number;
    };

export type SettleResult = "settled" | "already_settled" | "already_released" | "unknown_reservation";
export type ReleaseResult = "released" | "already_settled" | "already_released" | "unknown_reservation";

export interface WindowUsage {
  requests: number;
  tokensUsed: number;
  tokensReserved: number;
}

export interface QuotaUsage {
  window: QuotaWindow;
  daily: WindowUsage;
  monthly: WindowUsage;
  dailyResetAt: Date;
  monthlyResetAt: Date;
}

export interface QuotaStore {
  /**
   * Atomically: check every limit; only if all hold, count the request and reserve `tokens`,
   * recording the reservation under requestId (with the windows it was made in).
   * Reserving the same requestId twice counts once (`duplicate: true`).
   */
  reserve(input: ReserveInput): Promise<ReserveResult>;
  /** Replace the reservation by the real count, exactly once, in the windows it was reserved in. */
  settle(input: { userId: string; requestId: string; actualTokens: number }): Promise<SettleResult>;
  /** Give the reservation (tokens and the request count) back; exactly once. */
  release(input: { userId: string; requestId: string }): Promise<ReleaseResult>;
  usage(userId: string, now: Date): Promise<QuotaUsage>;
  /** Liveness check used by /health and start-up. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

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
