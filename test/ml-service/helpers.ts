/** Shared set-up for the ML Service suites: a config for the real stories260K model. */
import type { MlServiceConfig } from "../../src/config.js";
import { STORIES_MODEL_PATH } from "../support/model.js";

export function storiesConfig(overrides: Partial<MlServiceConfig> = {}): MlServiceConfig {
  return {
    port: 0,
    host: "127.0.0.1",
    model: STORIES_MODEL_PATH,
    modelName: undefined,
    modelCacheDir: "./data/models",
    dataDir: "./data",
    downloadTimeoutMs: 5_000,
    gpu: "cpu",
    threads: 1,
    batchThreads: 1,
    contextSize: 512,
    batchSequences: 4,
    queueLimit: 8,
    truncatePrompt: false,
    streamFlushMs: 0,
    token: undefined,
    metricsPort: undefined,
    maxTokensLimit: 4096,
    ...overrides,
  };
}

/** Parses NDJSON lines. */
export function ndjson(body: string): Array<Record<string, unknown>> {
  return body
    .split("\n")
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Parses an SSE body into its data payloads (the final "[DONE]" kept as a string). */
export function sseData(body: string): Array<Record<string, unknown> | "[DONE]"> {
  return body
    .split("\n\n")
    .map((e) => e.trim())
    .filter((e) => e.startsWith("data: "))
    .map((e) => e.slice(6))
    .map((d) => (d === "[DONE]" ? "[DONE]" : (JSON.parse(d) as Record<string, unknown>)));
}
