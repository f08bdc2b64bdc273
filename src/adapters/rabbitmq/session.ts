/**
 * One live RabbitMQ connection with its channels: a confirm channel for publishing and a lazily
 * opened channel for declarations and checks. Replaced as a whole on reconnect; whoever opens one
 * hears when it is lost through `onLost`.
 */
import type { Socket } from "node:net";
import { connect as amqpConnect } from "amqplib";
import type { Channel, ChannelModel, ConfirmChannel, Message } from "amqplib";
import { AppError } from "../../errors.js";

export type Log = (level: "info" | "warn" | "error", obj: Record<string, unknown>, msg: string) => void;

interface PendingPublish {
  reject: (err: Error) => void;
}

export interface Session {
  model: ChannelModel;
  publisher: ConfirmChannel;
  admin: Channel | null;
  /** main queues whose topology was declared on this session */
  declared: Map<string, Promise<void>>;
  /** delay queue name → { promise, declaredAt } */
  delayDeclared: Map<string, { promise: Promise<void>; at: number }>;
  /** messageIds returned by the broker as unroutable (mandatory) */
  returned: Set<string>;
  pending: Map<string, PendingPublish>;
  alive: boolean;
  /** The broker blocks publishers during a resource (memory/disk) alarm. */
  blocked: boolean;
  /** How long a publish waits for its confirm (AMQP_CONFIRM_TIMEOUT_MS). */
  confirmTimeoutMs: number;
  /** When the broker last confirmed (or refused) a publish: a sign of life. */
  lastConfirmAt: number;
  /** Drops the connection at once (socket reset) as lost: for a broker that stopped answering. */
  abandon(reason: Error): void;
}

export const DEFAULT_CONFIRM_TIMEOUT_MS = 250;
export const DEFAULT_CONNECT_TIMEOUT_MS = 1_000;

export function unavailable(message: string, cause?: unknown): AppError {
  return new AppError("service_unavailable", message, cause === undefined ? {} : { cause });
}

/** Marks the session dead and rejects every publish still waiting for its confirm. */
export function endSession(session: Session, error: Error): void {
  session.alive = false;
  for (const pending of session.pending.values()) pending.reject(error);
  session.pending.clear();
}

/**
 * Connects and opens the publisher channel. `onLost` runs once when the connection closes or the
 * publisher channel closes alone (which makes the session useless).
 */
export async function openSession(
  options: { url: string; heartbeatSeconds?: number; confirmTimeoutMs?: number; connectTimeoutMs?: number },
  log: Log,
  onLost: (session: Session, err?: Error) => void,
): Promise<Session> {
  const url = new URL(options.url);
  if (!url.searchParams.has("heartbeat")) url.searchParams.set("heartbeat", String(options.heartbeatSeconds ?? 10));
  // The socket timeout covers the TCP connect and the whole AMQP handshake.
  const model = await amqpConnect(url.toString(), { timeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS });
  let session: Session | undefined;
  try {
    const publisher = await model.createConfirmChannel();
    session = {
      model,
      publisher,
      admin: null,
      declared: new Map(),
      delayDeclared: new Map(),
      returned: new Set(),
      pending: new Map(),
      alive: true,
      blocked: false,
      confirmTimeoutMs: options.confirmTimeoutMs ?? DEFAULT_CONFIRM_TIMEOUT_MS,
      lastConfirmAt: Date.now(),
      abandon: (reason) => {
        if (!s.alive) return;
        log("warn", { err: reason }, "rabbitmq stopped answering; dropping the connection");
        onLost(s, reason);
        resetSocket(model, reason);
      },
    };
    const s = session;
    publisher.on("return", (msg: Message) => {
      const id = msg.properties.messageId as unknown;
      if (typeof id === "string") s.returned.add(id);
    });
    publisher.on("error", (err: Error) => log("warn", { err }, "publisher channel error"));
    publisher.on("close", () => {
      // Checked a tick later: when the whole connection went, its own close handler runs first.
      setImmediate(() => {
        if (!s.alive) return;
        log("warn", {}, "publisher channel closed alone; reopening the connection");
        onLost(s, new Error("publisher channel closed"));
        void s.model.close().catch(() => undefined);
      });
    });
    model.on("error", (err: Error) => log("warn", { err }, "rabbitmq connection error"));
    model.on("close", (err?: Error) => onLost(s, err));
    model.on("blocked", (reason: string) => {
      s.blocked = true;
      log("warn", { reason }, "rabbitmq blocks publishers (resource alarm); publishes are refused until it lifts");
    });
    model.on("unblocked", () => {
      s.blocked = false;
      log("info", {}, "rabbitmq unblocked publishers");
    });
    return s;
  } catch (err) {
    if (session) session.alive = false;
    await model.close().catch(() => undefined);
    throw err;
  }
}

/** A channel for declarations and checks, reopened after a channel-level error closed it. */
export async function adminChannel(session: Session): Promise<Channel> {
  if (session.admin) return session.admin;
  const channel = await session.model.createChannel();
  channel.on("error", () => undefined); // 404/406 on passive checks are expected and handled
  channel.on("close", () => {
    if (session.admin === channel) session.admin = null;
  });
  session.admin = channel;
  return channel;
}

/**
 * Closing politely (Connection.Close, then waiting for Close-Ok) hangs on a broker that does not
 * answer; a reset drops the socket and whatever it still held unsent, which then never reaches the
 * broker after the publisher was told it failed.
 */
function resetSocket(model: ChannelModel, reason: Error): void {
  const socket = (model as unknown as { connection?: { stream?: Socket } }).connection?.stream;
  if (!socket || socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy(); // not a plain TCP socket (TLS)
  }
  // A socket destroyed without an error ends quietly: amqplib would keep the connection (and its
  // heartbeat timer) until missed heartbeats; the error makes it close it now.
  socket.emit("error", reason);
}
