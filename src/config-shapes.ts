/**
 * The typed sections of the configuration each component gets (src/config.ts reads and validates
 * the environment into them; nothing else builds them).
 */
import type { Env } from "./config.js";
export type Mode = "embedded" | "servers";

export interface CommonConfig {
  logLevel: Env["LOG_LEVEL"];
  /** auto: readable lines on a terminal, JSON elsewhere. */
  logFormat: Env["LOG_FORMAT"];
  host: string;
  dataDir: string;
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  amqpUrl: string | undefined;
  queues: { requests: string; results: string };
  redisKeyPrefix: string;
  /** How long a request's token stream is kept after its last event, and how many events it keeps. */
  streams: { ttlMs: number; maxEvents: number };
  shutdownTimeoutMs: number;
  /** Where /metrics is served when set (and then not on the component's own port). */
  metricsPort: number | undefined;
  /** Origins allowed by CORS (`*` for any; empty: no CORS), the same for every component's HTTP shell. */
  corsOrigins: string[];
  /** OTLP/HTTP base URL (spans go to `<it>/v1/traces`); unset: tracing is off and its SDK never loads. */
  otlpEndpoint: string | undefined;
  /** The traces' service.name; unset: the component's name. */
  serviceName: string | undefined;
  bounds: ServiceBounds;
}

/** How long a call to a backing service may take before it fails (service_unavailable). */
export interface ServiceBounds {
  /** A statement, from sending it on a pooled connection to its answer. */
  pgQueryTimeoutMs: number;
  /** Migrations, transactions and the statements queries.sql marks `bulk` (large files, ledger replays). */
  pgBulkQueryTimeoutMs: number;
  /** Waiting for a new pooled connection (an idle one is taken at once); none once the database is taken for down. */
  pgConnectTimeoutMs: number;
  redisCommandTimeoutMs: number;
  /** A publish, until the broker confirms it. */
  amqpConfirmTimeoutMs: number;
  amqpConnectTimeoutMs: number;
}

export interface GatewayConfig {
  port: number;
  anonymous: { enabled: boolean; dailyRequests: number; dailyTokens: number };
  bodyLimitBytes: number;
  maxPromptChars: number;
  /** The largest max_length the gateway admits (the ML Service's own bound is maxTokensLimit). */
  maxLengthLimit: number;
  defaultModel: string;
  rateLimitPerIpPerMinute: number;
  /** How long an API key lookup is cached: a revoked key keeps working at most this long. */
  authCacheTtlMs: number;
  sweepIntervalMs: number;
  /** How often the queue estimate reads the backlog, and over how many seconds it measures the throughput. */
  queueEstimate: { intervalMs: number; windowSeconds: number; recentRequests: number };
  sweepUnpublishedAfterMs: number;
  /** How long a sweeper's claim on rows (to publish or expire them) keeps other replicas off them. */
  sweepLeaseMs: number;
  reservationTimeoutMs: number;
  batches: BatchConfig;
  /** `ADMIN_API_KEY`: the bearer token the admin routes demand; unset: they answer 403 to everyone. */
  adminApiKey: string | undefined;
  webhooks: WebhookConfig;
}

/** Signed webhooks (components/webhooks): where they may go and how the delivery loop sends them. */
export interface WebhookConfig {
  /** Allow endpoints on loopback and private addresses (tests, closed networks); off: refused. */
  allowPrivate: boolean;
  /** One POST's limit, connect to last byte. */
  timeoutMs: number;
  /** Deliveries in flight at once, per replica. */
  concurrency: number;
  pollIntervalMs: number;
  /** The wait after the first failed attempt; doubled each time, up to retryMaxMs. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** An event not delivered this long after it happened is given up and its endpoint disabled. */
  maxAttemptAgeMs: number;
  maxEndpointsPerUser: number;
}

/** The Batch API (gateway/batches): limits on input files and how the dispatcher runs the lines. */
export interface BatchConfig {
  fileMaxBytes: number;
  maxLines: number;
  /** How long the `24h` completion window really lasts (tests shorten it). */
  completionWindowMs: number;
  dispatchIntervalMs: number;
  /** Batch lines admitted and not yet final, across every replica, at most. */
  dispatchConcurrency: number;
  /** How long a dispatcher's claim on a line, or on a batch it validates, keeps other replicas off it. */
  leaseMs: number;
  /** How long a line the user's quota did not fit waits before it is tried again (at most: until its quota resets). */
  quotaRetryMs: number;
  /** How long output and error files last when the batch did not say (`output_expires_after`); null: for ever. */
  outputFileTtlSeconds: number | null;
  /** How long input files (purpose batch) last when the upload did not say (`expires_after`); null: for ever. */
  inputFileTtlSeconds: number | null;
}

export interface WorkerConfig {
  /** Port of the worker's /health, /livez and /metrics. */
  port: number;
  /** The model server. In `all` mode, unset means the ML Service started in the same process. */
  mlServiceUrl: string | undefined;
  mlServiceApi: "native" | "openai";
  /** Sent as `Authorization: Bearer …` to the ML Service. */
  mlServiceToken: string | undefined;
  prefetch: number;
  /**
   * Model calls at once (at most the prefetch). Below the prefetch, the messages beyond it wait in
   * the worker, so a call starts as soon as another ends, not when its outcome is confirmed and its
   * message acked and replaced by the broker.
   */
  concurrency: number;
  maxAttempts: number;
  retryBaseMs: number;
  /** Token deltas after the first are gathered for at most this long into one stream event. */
  streamFlushMs: number;
  requestTimeoutMs: number;
  /** How long stop() lets model calls in flight finish before aborting them (they are requeued). */
  drainGraceMs: number;
}

export interface CollectorConfig {
  /** Port of the collector's /health, /livez and /metrics. */
  port: number;
  prefetch: number;
  /** How long the first outcome of a batch waits for others to share its statement and writes. */
  lingerMs: number;
}

export interface ApiServiceConfig {
  port: number;
  sseHeartbeatMs: number;
}

export interface MlServiceConfig {
  port: number;
  host: string;
  /** GGUF path or `hf:` reference; undefined = the generated demo model. */
  model: string | undefined;
  modelName: string | undefined;
  modelCacheDir: string;
  dataDir: string;
  downloadTimeoutMs: number;
  gpu: "auto" | "cpu" | "cuda" | "vulkan" | "metal";
  threads: number;
  /** Threads for decode steps that batch several sequences (default: `threads`). */
  batchThreads: number;
  contextSize: number;
  batchSequences: number;
  queueLimit: number;
  truncatePrompt: boolean;
  maxTokensLimit: number;
  /** `/inference` streams: after the first line, text generated within this long goes in one line. */
  streamFlushMs: number;
  /** Demanded on every model route; undefined only in `all` (loopback) or when explicitly allowed. */
  token: string | undefined;
  /** Run alone: where its /metrics is served (in `all` the gateway's METRICS_PORT serves them). */
  metricsPort: number | undefined;
}

export interface Config {
  mode: Mode;
  common: CommonConfig;
  gateway: GatewayConfig;
  worker: WorkerConfig;
  collector: CollectorConfig;
  apiService: ApiServiceConfig;
  mlService: MlServiceConfig;
}
