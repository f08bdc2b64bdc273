/**
 * The one place that reads the environment. Each component gets a validated, typed section; a bad
 * value stops start-up with a message naming the variable. Every setting is documented in README.md.
 */
import { z } from "zod";
import { AppError } from "./errors.js";
import { MAX_LENGTH_CEILING } from "./domain/generation-params.js";

const bool = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const num = (min: number, max: number) => z.coerce.number().min(min).max(max);
const optionalUrl = z.string().min(1).optional();

const envSchema = z.object({
  // shared
  NODE_ENV: z.string().optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  LOG_FORMAT: z.enum(["auto", "json", "pretty"]).default("auto"),
  HOST: z.string().default("0.0.0.0"),
  PORT: int(0, 65535).optional(),
  DATA_DIR: z.string().default("./data"),
  DATABASE_URL: optionalUrl,
  REDIS_URL: optionalUrl,
  AMQP_URL: optionalUrl,
  QUEUE_REQUESTS: z.string().min(1).default("inference_requests"),
  QUEUE_RESULTS: z.string().min(1).default("inference_results"),
  REDIS_KEY_PREFIX: z.string().default(""),
  STREAM_TTL_MS: int(1_000, 7 * 24 * 3_600_000).default(15 * 60_000),
  STREAM_MAX_EVENTS: int(16, 1_000_000).default(4096),
  SHUTDOWN_TIMEOUT_MS: int(0, 600_000).default(25_000),
  METRICS_PORT: int(0, 65535).optional(),
  CORS_ORIGINS: z.string().default(""),
  // Empty is unset for these two (as OpenTelemetry's own SDKs read them).
  OTEL_EXPORTER_OTLP_ENDPOINT: z.preprocess((v) => (v === "" ? undefined : v), z.string().url().optional()),
  OTEL_SERVICE_NAME: z.preprocess((v) => (v === "" ? undefined : v), z.string().optional()),
  // Time bounds on every call to the backing services (admission answers 503 within them).
  PG_QUERY_TIMEOUT_MS: int(10, 600_000).default(250),
  PG_BULK_QUERY_TIMEOUT_MS: int(1_000, 3_600_000).default(60_000),
  PG_CONNECT_TIMEOUT_MS: int(10, 600_000).default(1_000),
  REDIS_COMMAND_TIMEOUT_MS: int(10, 600_000).default(250),
  AMQP_CONFIRM_TIMEOUT_MS: int(10, 600_000).default(250),
  AMQP_CONNECT_TIMEOUT_MS: int(100, 600_000).default(1_000),

  // gateway
  ANONYMOUS_ACCESS: bool.optional(),
  // The operator's credential for the admin routes (/api/v1/admin/*) and the console's admin page.
  ADMIN_API_KEY: z.string().min(24, "at least 24 characters").max(512).optional(),
  ANONYMOUS_DAILY_REQUESTS: int(0, 1e9).default(100),
  ANONYMOUS_DAILY_TOKENS: int(0, 1e12).default(100_000),
  BODY_LIMIT_BYTES: int(256, 10 * 1024 * 1024).default(64 * 1024),
  MAX_PROMPT_CHARS: int(1, 1_000_000).default(16_000),
  MAX_LENGTH_LIMIT: int(1, MAX_LENGTH_CEILING).default(500),
  DEFAULT_MODEL: z.string().min(1).optional(),
  RATE_LIMIT_PER_IP_PER_MINUTE: int(0, 1e9).default(0),
  AUTH_CACHE_TTL_MS: int(0, 1_000).default(500),
  SWEEP_INTERVAL_MS: int(100, 3_600_000).default(5_000),
  QUEUE_ESTIMATE_INTERVAL_MS: int(20, 600_000).default(100),
  QUEUE_ESTIMATE_WINDOW_S: int(1, 3_600).default(10),
  QUEUE_ESTIMATE_RECENT_REQUESTS: int(2, 1_000_000).default(1_024),
  SWEEP_UNPUBLISHED_AFTER_MS: int(100, 3_600_000).default(30_000),
  SWEEP_LEASE_MS: int(1_000, 3_600_000).default(60_000),
  RESERVATION_TIMEOUT_MS: int(1_000, 7 * 24 * 3_600_000).default(6 * 3_600_000),
  BATCH_FILE_MAX_BYTES: int(1_024, 512 * 1024 * 1024).default(50 * 1024 * 1024),
  BATCH_MAX_LINES: int(1, 1_000_000).default(50_000),
  BATCH_COMPLETION_WINDOW_MS: int(1_000, 7 * 24 * 3_600_000).default(24 * 3_600_000),
  BATCH_DISPATCH_INTERVAL_MS: int(50, 600_000).default(1_000),
  BATCH_DISPATCH_CONCURRENCY: int(1, 10_000).default(32),
  BATCH_LEASE_MS: int(1_000, 3_600_000).default(60_000),
  BATCH_QUOTA_RETRY_MS: int(50, 24 * 3_600_000).default(60_000),
  // 0: output and error files never expire. A batch's own output_expires_after wins.
  BATCH_OUTPUT_FILE_TTL_S: int(0, 365 * 86_400).default(30 * 86_400),
  // 0: input files never expire. A file's own expires_after wins.
  BATCH_INPUT_FILE_TTL_S: int(0, 365 * 86_400).default(30 * 86_400),
  WEBHOOK_ALLOW_PRIVATE: bool.default(false),
  WEBHOOK_TIMEOUT_MS: int(100, 60_000).default(5_000),
  WEBHOOK_CONCURRENCY: int(1, 1_000).default(16),
  WEBHOOK_POLL_INTERVAL_MS: int(10, 600_000).default(1_000),
  WEBHOOK_RETRY_BASE_MS: int(10, 3_600_000).default(5_000),
  WEBHOOK_RETRY_MAX_MS: int(10, 24 * 3_600_000).default(3_600_000),
  WEBHOOK_MAX_ATTEMPT_AGE_MS: int(100, 30 * 24 * 3_600_000).default(24 * 3_600_000),
  WEBHOOK_MAX_ENDPOINTS_PER_USER: int(1, 1_000).default(10),

  // worker
  ML_SERVICE_URL: z.string().url().optional(),
  ML_SERVICE_PORT: int(0, 65535).optional(),
  ML_SERVICE_API: z.enum(["native", "openai"]).default("native"),
  WORKER_PREFETCH: int(1, 1000).default(8),
  WORKER_CONCURRENCY: int(1, 1000).optional(),
  WORKER_MAX_ATTEMPTS: int(1, 20).default(4),
  WORKER_RETRY_BASE_MS: int(1, 600_000).default(1_000),
  STREAM_FLUSH_MS: int(0, 1_000).default(20),
  ML_REQUEST_TIMEOUT_MS: int(100, 3_600_000).default(120_000),

  // collector
  COLLECTOR_PREFETCH: int(1, 1000).default(128),
  COLLECTOR_LINGER_MS: int(0, 1000).default(5),

  // api service
  SSE_HEARTBEAT_MS: int(100, 600_000).default(15_000),

  // ml service
  MODEL: z.string().min(1).optional(),
  MODEL_NAME: z.string().min(1).optional(),
  MODEL_CACHE_DIR: z.string().optional(),
  MODEL_DOWNLOAD_TIMEOUT_MS: int(1_000, 24 * 3_600_000).default(600_000),
  ML_GPU: z.enum(["auto", "cpu", "cuda", "vulkan", "metal"]).default("cpu"),
  ML_THREADS: int(0, 256).default(1),
  ML_BATCH_THREADS: int(0, 256).optional(),
  ML_CONTEXT_SIZE: int(64, 1_048_576).default(2048),
  ML_BATCH_SEQUENCES: int(1, 256).default(8),
  ML_QUEUE_LIMIT: int(0, 100_000).default(64),
  ML_TRUNCATE_PROMPT: bool.default(false),
  ML_MAX_TOKENS_LIMIT: int(1, MAX_LENGTH_CEILING).default(4096),
  ML_STREAM_FLUSH_MS: int(0, 1_000).default(20),
  // The ML Service's internal credential: the worker sends it, the ML Service demands it.
  ML_SERVICE_TOKEN: z.string().min(16, "at least 16 characters").max(512).optional(),
  ML_SERVICE_ALLOW_UNAUTHENTICATED: bool.default(false),
});

export type Env = z.infer<typeof envSchema>;

export type * from "./config-shapes.js";
import type { ApiServiceConfig, BatchConfig, CollectorConfig, CommonConfig, Config, GatewayConfig, MlServiceConfig, Mode, ServiceBounds, WebhookConfig, WorkerConfig } from "./config-shapes.js";

export const DEFAULT_PORTS = { gateway: 8080, mlService: 8081, apiService: 8082, worker: 8083, collector: 8084 } as const;

const list = (value: string) =>
  value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * Parse the environment once. `component` decides which default port PORT overrides.
 * Throws AppError(config_invalid) naming every bad variable.
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  component: "gateway" | "worker" | "collector" | "api-service" | "ml-service" | "all" | "cli" = "all",
): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new AppError("config_invalid", `invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  const serverUrls = [e.DATABASE_URL, e.REDIS_URL, e.AMQP_URL].filter(Boolean).length;
  const mode: Mode = serverUrls > 0 ? "servers" : "embedded";
  if (component !== "all" && component !== "ml-service" && component !== "cli" && mode === "embedded") {
    // A lone component cannot share in-process state with anything else; only `all` may be embedded.
    throw new AppError(
      "config_invalid",
      `component "${component}" runs alone and needs the real servers: set DATABASE_URL, REDIS_URL and AMQP_URL (or run "all")`,
    );
  }
  if (component === "ml-service" && !e.ML_SERVICE_TOKEN && !e.ML_SERVICE_ALLOW_UNAUTHENTICATED) {
    // Whoever reaches an open model port runs the model without a quota.
    throw new AppError(
      "config_invalid",
      "the ML Service runs alone and needs ML_SERVICE_TOKEN (the worker sends the same value); set ML_SERVICE_ALLOW_UNAUTHENTICATED=true only where nothing but the worker can reach it",
    );
  }
  const port = (fallback: number, own: boolean) => (own && e.PORT !== undefined ? e.PORT : fallback);
  const mlPort = component === "ml-service" ? port(DEFAULT_PORTS.mlService, true) : e.ML_SERVICE_PORT ?? DEFAULT_PORTS.mlService;
  return {
    mode,
    common: {
      logLevel: e.LOG_LEVEL,
      logFormat: e.LOG_FORMAT,
      host: e.HOST,
      dataDir: e.DATA_DIR,
      databaseUrl: e.DATABASE_URL,
      redisUrl: e.REDIS_URL,
      amqpUrl: e.AMQP_URL,
      queues: { requests: e.QUEUE_REQUESTS, results: e.QUEUE_RESULTS },
      redisKeyPrefix: e.REDIS_KEY_PREFIX,
      streams: { ttlMs: e.STREAM_TTL_MS, maxEvents: e.STREAM_MAX_EVENTS },
      shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
      metricsPort: e.METRICS_PORT,
      corsOrigins: list(e.CORS_ORIGINS),
      otlpEndpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT,
      serviceName: e.OTEL_SERVICE_NAME,
      bounds: {
        pgQueryTimeoutMs: e.PG_QUERY_TIMEOUT_MS,
        pgBulkQueryTimeoutMs: e.PG_BULK_QUERY_TIMEOUT_MS,
        pgConnectTimeoutMs: e.PG_CONNECT_TIMEOUT_MS,
        redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
        amqpConfirmTimeoutMs: e.AMQP_CONFIRM_TIMEOUT_MS,
        amqpConnectTimeoutMs: e.AMQP_CONNECT_TIMEOUT_MS,
      },
    },
    gateway: {
      port: port(DEFAULT_PORTS.gateway, component === "gateway" || component === "all"),
      anonymous: {
        enabled: e.ANONYMOUS_ACCESS ?? mode === "embedded",
        dailyRequests: e.ANONYMOUS_DAILY_REQUESTS,
        dailyTokens: e.ANONYMOUS_DAILY_TOKENS,
      },
      bodyLimitBytes: e.BODY_LIMIT_BYTES,
      maxPromptChars: e.MAX_PROMPT_CHARS,
      maxLengthLimit: e.MAX_LENGTH_LIMIT,
      defaultModel: e.DEFAULT_MODEL ?? e.MODEL_NAME ?? "default",
      rateLimitPerIpPerMinute: e.RATE_LIMIT_PER_IP_PER_MINUTE,
      authCacheTtlMs: e.AUTH_CACHE_TTL_MS,
      sweepIntervalMs: e.SWEEP_INTERVAL_MS,
      queueEstimate: { intervalMs: e.QUEUE_ESTIMATE_INTERVAL_MS, windowSeconds: e.QUEUE_ESTIMATE_WINDOW_S, recentRequests: e.QUEUE_ESTIMATE_RECENT_REQUESTS },
      sweepUnpublishedAfterMs: e.SWEEP_UNPUBLISHED_AFTER_MS,
      sweepLeaseMs: e.SWEEP_LEASE_MS,
      reservationTimeoutMs: e.RESERVATION_TIMEOUT_MS,
      adminApiKey: e.ADMIN_API_KEY,
      batches: {
        fileMaxBytes: e.BATCH_FILE_MAX_BYTES,
        maxLines: e.BATCH_MAX_LINES,
        completionWindowMs: e.BATCH_COMPLETION_WINDOW_MS,
        dispatchIntervalMs: e.BATCH_DISPATCH_INTERVAL_MS,
        dispatchConcurrency: e.BATCH_DISPATCH_CONCURRENCY,
        leaseMs: e.BATCH_LEASE_MS,
        quotaRetryMs: e.BATCH_QUOTA_RETRY_MS,
        outputFileTtlSeconds: e.BATCH_OUTPUT_FILE_TTL_S === 0 ? null : e.BATCH_OUTPUT_FILE_TTL_S,
        inputFileTtlSeconds: e.BATCH_INPUT_FILE_TTL_S === 0 ? null : e.BATCH_INPUT_FILE_TTL_S,
      },
      webhooks: {
        allowPrivate: e.WEBHOOK_ALLOW_PRIVATE,
        timeoutMs: e.WEBHOOK_TIMEOUT_MS,
        concurrency: e.WEBHOOK_CONCURRENCY,
        pollIntervalMs: e.WEBHOOK_POLL_INTERVAL_MS,
        retryBaseMs: e.WEBHOOK_RETRY_BASE_MS,
        retryMaxMs: e.WEBHOOK_RETRY_MAX_MS,
        maxAttemptAgeMs: e.WEBHOOK_MAX_ATTEMPT_AGE_MS,
        maxEndpointsPerUser: e.WEBHOOK_MAX_ENDPOINTS_PER_USER,
      },
    },
    worker: {
      port: port(DEFAULT_PORTS.worker, component === "worker"),
      mlServiceUrl: e.ML_SERVICE_URL ?? (component === "all" ? undefined : `http://127.0.0.1:${mlPort}`),
      mlServiceApi: e.ML_SERVICE_API,
      mlServiceToken: e.ML_SERVICE_TOKEN,
      prefetch: e.WORKER_PREFETCH,
      concurrency: Math.min(e.WORKER_CONCURRENCY ?? e.WORKER_PREFETCH, e.WORKER_PREFETCH),
      maxAttempts: e.WORKER_MAX_ATTEMPTS,
      retryBaseMs: e.WORKER_RETRY_BASE_MS,
      streamFlushMs: e.STREAM_FLUSH_MS,
      requestTimeoutMs: e.ML_REQUEST_TIMEOUT_MS,
      // Leaves the rest of SHUTDOWN_TIMEOUT_MS for the collector and connections to close.
      drainGraceMs: Math.max(1_000, Math.floor(e.SHUTDOWN_TIMEOUT_MS * 0.6)),
    },
    collector: { port: port(DEFAULT_PORTS.collector, component === "collector"), prefetch: e.COLLECTOR_PREFETCH, lingerMs: e.COLLECTOR_LINGER_MS },
    apiService: {
      port: port(DEFAULT_PORTS.apiService, component === "api-service"),
      sseHeartbeatMs: e.SSE_HEARTBEAT_MS,
    },
    mlService: {
      port: mlPort,
      // In `all` the in-process ML Service is reached by this process alone: loopback only.
      host: component === "all" ? "127.0.0.1" : e.HOST,
      model: e.MODEL,
      modelName: e.MODEL_NAME,
      modelCacheDir: e.MODEL_CACHE_DIR ?? `${e.DATA_DIR}/models`,
      dataDir: e.DATA_DIR,
      downloadTimeoutMs: e.MODEL_DOWNLOAD_TIMEOUT_MS,
      gpu: e.ML_GPU,
      threads: e.ML_THREADS,
      batchThreads: e.ML_BATCH_THREADS ?? e.ML_THREADS,
      contextSize: e.ML_CONTEXT_SIZE,
      batchSequences: e.ML_BATCH_SEQUENCES,
      queueLimit: e.ML_QUEUE_LIMIT,
      truncatePrompt: e.ML_TRUNCATE_PROMPT,
      maxTokensLimit: e.ML_MAX_TOKENS_LIMIT,
      streamFlushMs: e.ML_STREAM_FLUSH_MS,
      token: e.ML_SERVICE_TOKEN,
      metricsPort: component === "ml-service" ? e.METRICS_PORT : undefined,
    },
  };
}
