/**
 * Logs (pino) for every component; child loggers carry component and request_id. JSON, one object
 * a line, everywhere but a terminal: there (LOG_FORMAT=auto with a TTY, or LOG_FORMAT=pretty)
 * short, readable lines. The pretty printer runs in this thread (no transport worker), so a line
 * is written before the process exits.
 */
import { pino, type DestinationStream, type Logger } from "pino";
import pretty from "pino-pretty";

export type { Logger };

export type LogFormat = "auto" | "json" | "pretty";

export function createLogger(options: { level?: string; format?: LogFormat; destination?: NodeJS.WritableStream } = {}): Logger {
  const destination = options.destination ?? process.stdout;
  const format = options.format ?? "auto";
  const prettyLines = format === "pretty" || (format === "auto" && (destination as NodeJS.WriteStream).isTTY === true);
  const settings = {
    level: options.level ?? "info",
    base: { service: "ml-inference" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (!prettyLines) return pino(settings, destination as DestinationStream);
  const stream = pretty({
    destination,
    colorize: (destination as NodeJS.WriteStream).isTTY === true,
    translateTime: "HH:MM:ss",
    ignore: "pid,hostname,service,component",
    messageFormat: "{if component}[{component}] {end}{msg}",
    singleLine: true,
    sync: true,
  });
  return pino(settings, stream);
}

/** A logger that writes nothing, for tests that do not look at logs. */
export const silentLogger: Logger = pino({ level: "silent" });
