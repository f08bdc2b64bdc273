/**
 * The loaded model as the routes see it: whether it may serve now (loading, failed, stopping),
 * which model names it answers to, and running the generations of one HTTP request with metrics.
 */
import { basename } from "node:path";
import type { Logger } from "pino";
import { AppError, isAppError } from "../../errors.js";
import type { Engine, GenerationProgress, GenerationRequest, GenerationResult } from "../../engines/types.js";
import type { MlMetrics } from "./metrics.js";

export const DEMO_WARNING =
  "demo model: generated with deterministic random weights so the service always starts offline; its output is not meaningful. Set MODEL to a GGUF file or hf: reference.";

export type ServingState = "ok" | "loading" | "failed" | "stopping";

export interface Serving {
  readonly engine: Engine;
  /** Resolves once the model is loaded; rejects with the load error. */
  readonly ready: Promise<void>;
  state(): ServingState;
  loadError(): AppError | undefined;
  modelName(): string;
  /** Throws the 503 a client should see while the model loads, after it failed, or while stopping. */
  ensureServing(): void;
  /** Throws model_not_found unless `requested` (when given) names the served model. */
  checkModel(requested: string | undefined): void;
  /**
   * Runs the generations of one HTTP request; `onText(index, text)` streams, `onProgress(index, p)`
   * streams with the cumulative counts (see GenerateOptions.onProgress).
   */
  generateAll(
    requests: GenerationRequest[],
    signal: AbortSignal,
    onText?: (index: number, text: string) => void,
    onProgress?: (index: number, progress: GenerationProgress) => void,
  ): Promise<{ results: GenerationResult[]; elapsed: number }>;
  /** From now on every generation request is refused with 503. */
  beginStop(): void;
}

const seconds = (start: number) => Math.round(((performance.now() - start) / 1000) * 1e6) / 1e6;

export function createServing(engine: Engine, metrics: MlMetrics, logger: Logger): Serving {
  let loadError: AppError | undefined;
  let stopping = false;

  const ready = engine.load().then(
    () => {
      const info = engine.info();
      logger.info(
        { model: info.model, source: info.source, device: info.device, load_seconds: info.loadSeconds, sequences: info.sequences, threads: info.threads, context_size: info.contextSize },
        "model loaded",
      );
      if (info.demo) logger.warn({ model: info.model, source: info.source }, DEMO_WARNING);
    },
    (error: unknown) => {
      loadError = isAppError(error) ? error : new AppError("model_not_found", `model failed to load: ${(error as Error).message}`);
      logger.error({ err: error }, "model failed to load");
      throw loadError;
    },
  );
  ready.catch(() => undefined);

  const modelName = () => engine.info().model;

  return {
    engine,
    ready,
    state: () => (stopping ? "stopping" : loadError ? "failed" : engine.loaded ? "ok" : "loading"),
    loadError: () => loadError,
    modelName,
    ensureServing() {
      if (stopping) throw new AppError("service_unavailable", "the model service is shutting down", { retryAfterSeconds: 5 });
      if (loadError) throw new AppError("model_not_ready", `the model failed to load: ${loadError.message}`, { retryAfterSeconds: 30 });
      if (!engine.loaded) throw new AppError("model_not_ready", "the model is still loading; retry shortly", { retryAfterSeconds: 2 });
    },
    checkModel(requested) {
      if (requested === undefined) return;
      const info = engine.info();
      const names = new Set([info.model, "default", ...(info.source ? [basename(info.source), basename(info.source).replace(/\.gguf$/i, "")] : [])]);
      if (!names.has(requested)) {
        throw new AppError("model_not_found", `model "${requested}" is not served here; this service serves "${info.model}"`, {
          details: { available: [info.model] },
        });
      }
    },
    async generateAll(requests, signal, onText, onProgress) {
      const start = performance.now();
      const model = modelName();
      metrics.requests.inc({ model });
      // One failed generation (say, queue_full for the 73rd of 80) stops its siblings: nobody would
      // read them, and they would hold sequences every other client is waiting for.
      const siblings = new AbortController();
      const onAbort = () => siblings.abort(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
      try {
        const results = await Promise.all(
          requests.map((r, i) =>
            engine.generate(r, {
              signal: siblings.signal,
              ...(onText ? { onText: (t: string) => onText(i, t) } : {}),
              ...(onProgress ? { onProgress: (p: GenerationProgress) => onProgress(i, p) } : {}),
            }),
          ),
        ).catch((error: unknown) => {
          siblings.abort(error);
          throw error;
        });
        for (const r of results) {
          metrics.tokens.inc({ type: "prompt", model }, r.promptTokens);
          metrics.tokens.inc({ type: "completion", model }, r.completionTokens);
        }
        if (signal.aborted) metrics.aborted.inc({ model });
        return { results, elapsed: seconds(start) };
      } finally {
        signal.removeEventListener("abort", onAbort);
        metrics.seconds.observe({ model }, (performance.now() - start) / 1000);
      }
    },
    beginStop() {
      stopping = true;
    },
  };
}

/**
 * Token counts of one answer: completions summed, the prompt counted once per distinct prompt (as
 * OpenAI does). Results are ordered prompt by prompt, `sequencesPerPrompt` each.
 */
export function usageOf(results: GenerationResult[], sequencesPerPrompt: number) {
  const prompt = results.filter((_, i) => i % sequencesPerPrompt === 0).reduce((a, r) => a + r.promptTokens, 0);
  const completion = results.reduce((a, r) => a + r.completionTokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}
