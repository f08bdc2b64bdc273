#!/usr/bin/env node
/**
 * ml-inference command line. One binary, the argument picks the component (as Bento's one binary
 * runs any config): gateway | worker | collector | api-service | ml-service | all | migrate, plus
 * user, key and tier management, and the user-facing commands (submit, status, cancel, quota) that
 * talk HTTP to a running platform through the typed client (src/cli, src/client).
 */
import { loadConfig, type Config } from "./config.js";
import { AppError, isAppError } from "./errors.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { startTracing } from "./observability/tracing.js";
import { startComponent, type ComponentName, type Running } from "./components/start.js";
import { runAdminCommand, ADMIN_HELP } from "./admin.js";
import { CLIENT_HELP, isClientCommand, runClientCommand } from "./cli/index.js";

const COMPONENTS: ComponentName[] = ["gateway", "worker", "collector", "api-service", "ml-service", "all"];

const HELP = `ml-inference — asynchronous, quota-aware ML inference

Usage: ml-inference <command> [arguments]

Components (each serves /livez, /health and /metrics):
  all            every component in one process (embedded defaults without server URLs), port 8080
  gateway        POST /api/v1/inference                               (PORT, default 8080)
  api-service    /api/v1/status/{id}, /api/v1/quota, /events/{id}     (PORT, default 8082)
  worker         consumes inference_requests, calls the ML Service    (PORT, default 8083)
  collector      consumes inference_results, stores and settles       (PORT, default 8084)
  ml-service     runs the model: /inference, /v1/completions, ...     (PORT, default 8081)

Database:
  migrate        apply the SQL migrations (running it twice changes nothing)

${ADMIN_HELP}
${CLIENT_HELP}
Settings come from environment variables; see README.md.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(HELP);
    return command ? 0 : 1;
  }
  if (COMPONENTS.includes(command as ComponentName)) {
    const config = loadConfig(process.env, command as ComponentName);
    const logger = createLogger({ level: config.common.logLevel, format: config.common.logFormat });
    // Handlers go in before start-up, so a SIGTERM during start-up drains instead of killing.
    // Tracing first (its spans name the component), shut down (its last spans sent) after the component stops.
    const started = startTracing(config.common, command).then(async (tracing) => {
      const running = await startComponent(command as ComponentName, config, logger).catch(async (error: unknown) => {
        await tracing.shutdown();
        throw error;
      });
      return { ...running, stop: () => running.stop().finally(() => tracing.shutdown()) };
    });
    return waitForSignal(started, config, logger);
  }
  // Before loadConfig: these only need ML_INFERENCE_URL / ML_INFERENCE_API_KEY, not the platform's settings.
  if (isClientCommand(command)) return runClientCommand(command, rest);
  const config = loadConfig(process.env, "cli");
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? "warn" });
  return runAdminCommand(command, rest, config, logger);
}

function waitForSignal(starting: Promise<Running>, config: Config, logger: Logger): Promise<number> {
  return new Promise((resolve, reject) => {
    starting.catch(reject);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, "draining: no new work is taken, in-flight work finishes");
      const deadline = setTimeout(() => {
        logger.error({ timeout_ms: config.common.shutdownTimeoutMs }, "drain did not finish in time; exiting");
        resolve(1);
      }, config.common.shutdownTimeoutMs);
      deadline.unref();
      starting
        .then((running) => running.stop())
        .then(() => {
          clearTimeout(deadline);
          logger.info("stopped");
          resolve(0);
        })
        .catch((error: unknown) => {
          logger.error({ err: error }, "error while stopping");
          resolve(1);
        });
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const message = isAppError(error) ? `${error.code}: ${error.message}` : error instanceof Error ? error.stack ?? error.message : String(error);
    process.stderr.write(`${JSON.stringify({ level: "fatal", msg: message, code: isAppError(error) ? error.code : "internal_error" })}\n`);
    process.exit(error instanceof AppError && error.code === "config_invalid" ? 2 : 1);
  },
);
