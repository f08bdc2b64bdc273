/** Structured JSON logs (pino) for every component; child loggers carry component and request_id. */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(options: { level?: string; component?: string } = {}): Logger {
  return pino({
    level: options.level ?? process.env.LOG_LEVEL ?? "info",
    base: { service: "ml-inference", ...(options.component ? { component: options.component } : {}) },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/** A logger that writes nothing, for tests that do not look at logs. */
export const silentLogger: Logger = pino({ level: "silent" });
