/**
 * llama.cpp in process through node-llama-cpp. One model, one context with `sequences` slots:
 * concurrent requests each take a sequence and node-llama-cpp evaluates all active sequences in
 * shared batches (continuous batching). Requests beyond the slots wait in a bounded queue.
 */
import { randomInt } from "node:crypto";
import {
  getLlama,
  LlamaLogLevel,
  LlamaCompletion,
  resolveChatWrapper,
  type ChatHistoryItem,
  type Llama,
  type LlamaContext,
  type LlamaModel,
  type LlamaText,
  type Token,
} from "node-llama-cpp";
import type { Logger } from "pino";
import { AppError } from "../errors.js";
import { resolveModelSource, type ResolvedModel } from "./model-source.js";
import { SlotPool } from "./slot-pool.js";
import type {
  ChatMessage,
  Engine,
  EngineInfo,
  EngineStats,
  GenerateOptions,
  GenerationRequest,
  GenerationResult,
} from "./types.js";
import type { MlServiceConfig } from "../config.js";
import { chooseThreadsPerBatch } from "./batch-threads.js";

/** The engine takes the ML Service's own settings (src/config.ts documents each). */
export type LlamaCppEngineOptions = Pick<
  MlServiceConfig,
  | "model"
  | "modelName"
  | "modelCacheDir"
  | "dataDir"
  | "downloadTimeoutMs"
  | "gpu"
  | "threads"
  | "batchThreads"
  | "contextSize"
  | "batchSequences"
  | "queueLimit"
  | "truncatePrompt"
> & { logger?: Logger };

interface Slot {
  completion: LlamaCompletion;
}

/** Repetition penalty looks at this many recent generated tokens. */
const REPEAT_PENALTY_LAST_TOKENS = 64;

export class LlamaCppEngine implements Engine {
  private llama: Llama | undefined;
  private model: LlamaModel | undefined;
  private context: LlamaContext | undefined;
  private pool: SlotPool<Slot> | undefined;
  private resolved: ResolvedModel | undefined;
  private loading: Promise<void> | undefined;
  private loadSeconds: number | undefined;
  private closed = false;
  private readonly inFlight = new Set<AbortController>();
  private device = "unknown";

  constructor(private readonly options: LlamaCppEngineOptions) {}

  get loaded(): boolean {
    return this.pool !== undefined && !this.closed;
  }

  load(): Promise<void> {
    this.loading ??= this.doLoad();
    return this.loading;
  }

  private async doLoad(): Promise<void> {
    const o = this.options;
    const started = performance.now();
    this.resolved = await resolveModelSource({
      model: o.model,
      dataDir: o.dataDir,
      cacheDir: o.modelCacheDir,
      downloadTimeoutMs: o.downloadTimeoutMs,
    });
    if (this.closed) throw new AppError("service_unavailable", "engine closed while loading");
    this.llama = await getLlama({
      gpu: o.gpu === "cpu" ? false : o.gpu,
      build: "never",
      logLevel: LlamaLogLevel.error,
      logger: (level, message) => {
        if (level === "error" || level === "fatal") o.logger?.warn({ llama: message.trim() }, "llama.cpp");
      },
    });
    this.device = this.llama.gpu === false ? "cpu" : this.llama.gpu;
    try {
      this.model = await this.llama.loadModel({ modelPath: this.resolved.path });
    } catch (error) {
      throw new AppError("model_not_found", `llama.cpp could not load ${this.resolved.path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    this.context = await this.model.createContext({
      contextSize: o.contextSize,
      sequences: o.batchSequences,
      // The context may use up to the larger count; each step then picks (batch-threads.ts).
      threads: Math.max(o.threads, o.batchThreads),
    });
    if (!chooseThreadsPerBatch(this.context, { single: o.threads, batch: o.batchThreads })) {
      o.logger?.warn({ threads: o.threads }, "ML_BATCH_THREADS ignored: this node-llama-cpp build has no per-batch thread switch");
    }
    const slots: Slot[] = [];
    for (let i = 0; i < o.batchSequences; i++) {
      slots.push({ completion: new LlamaCompletion({ contextSequence: this.context.getSequence() }) });
    }
    if (this.closed) {
      await this.disposeNative();
      throw new AppError("service_unavailable", "engine closed while loading");
    }
    this.pool = new SlotPool(slots, o.queueLimit);
    this.loadSeconds = (performance.now() - started) / 1000;
  }

  info(): EngineInfo {
    const o = this.options;
    return {
      engine: "llama.cpp",
      model: o.modelName ?? this.resolved?.name ?? (o.model === undefined ? "demo-llama" : o.model),
      source: this.resolved?.path,
      device: this.device,
      demo: o.model === undefined,
      contextSize: this.context?.contextSize ?? o.contextSize,
      sequences: o.batchSequences,
      threads: o.threads,
      loadSeconds: this.loadSeconds,
    };
  }

  stats(): EngineStats {
    return {
      running: this.pool?.running ?? 0,
      waiting: this.pool?.waiting ?? 0,
      capacity: this.options.batchSequences,
      queueLimit: this.options.queueLimit,
    };
  }

  private requireModel(): LlamaModel {
    if (!this.model || !this.pool || this.closed) {
      throw new AppError(
        this.closed ? "service_unavailable" : "model_not_ready",
        this.closed ? "the model service is shutting down" : "the model is still loading; retry shortly",
        { retryAfterSeconds: this.closed ? 5 : 2 },
      );
    }
    return this.model;
  }

  countTokens(text: string): number {
    return this.requireModel().tokenize(text, false).length;
  }

  /** Prompt tokens as node-llama-cpp's LlamaCompletion would feed them, without the BOS it prepends. */
  private promptTokens(
    model: LlamaModel,
    input: GenerationRequest["input"],
  ): { tokens: Token[]; bos: boolean; stopTriggers: readonly LlamaText[] } {
    const bos = model.tokens.bos !== null && model.tokens.shouldPrependBosToken;
    if ("prompt" in input) {
      return { tokens: model.tokenize(input.prompt, false, bos ? "trimLeadingSpace" : undefined), bos, stopTriggers: [] };
    }
    const chatWrapper = resolveChatWrapper(model);
    const history: ChatHistoryItem[] = input.messages.map((m: ChatMessage): ChatHistoryItem => {
      if (m.role === "system") return { type: "system", text: m.content };
      if (m.role === "user") return { type: "user", text: m.content };
      return { type: "model", response: [m.content] };
    });
    history.push({ type: "model", response: [] });
    let state: ReturnType<typeof chatWrapper.generateContextState>;
    try {
      state = chatWrapper.generateContextState({ chatHistory: history });
    } catch (error) {
      // A chat template may refuse the conversation (say, roles that do not alternate): bad input.
      throw new AppError("invalid_parameter", `messages: ${(error as Error).message}`, { details: { field: "messages" } });
    }
    let tokens = state.contextText.tokenize(model.tokenizer);
    if (bos && tokens[0] === model.tokens.bos) tokens = tokens.slice(1);
    return { tokens, bos, stopTriggers: state.stopGenerationTriggers };
  }

  async generate(request: GenerationRequest, options: GenerateOptions = {}): Promise<GenerationResult> {
    const model = this.requireModel();
    const pool = this.pool as SlotPool<Slot>;
    const contextSize = this.context?.contextSize ?? this.options.contextSize;
    let { tokens, bos, stopTriggers } = this.promptTokens(model, request.input);
    const extra = bos ? 1 : 0;
    let truncated = false;
    // At least one token of room must be left for the completion.
    if (tokens.length + extra > contextSize - 1) {
      if (!this.options.truncatePrompt) {
        throw new AppError(
          "prompt_too_long",
          `the prompt has ${tokens.length + extra} tokens; the context holds ${contextSize} (prompt + completion)`,
          { details: { prompt_tokens: tokens.length + extra, context_size: contextSize } },
        );
      }
      const keepRoom = Math.min(request.maxLength, Math.floor(contextSize / 2));
      tokens = tokens.slice(-(contextSize - extra - keepRoom));
      truncated = true;
    }
    const promptTokens = tokens.length + extra;
    const maxTokens = Math.max(1, Math.min(request.maxLength, contextSize - promptTokens));

    const controller = new AbortController();
    const onAbort = () => controller.abort(options.signal?.reason);
    if (options.signal?.aborted) controller.abort(options.signal.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    this.inFlight.add(controller);
    let slot: Slot | undefined;
    try {
      try {
        slot = await pool.acquire(controller.signal);
      } catch (error) {
        // Stopped before it had a sequence: nothing was processed, nothing is reported.
        if (controller.signal.aborted && !(error instanceof AppError)) {
          return { text: "", promptTokens: 0, completionTokens: 0, finishReason: "abort", truncated };
        }
        throw error;
      }
      let completionTokens = 0;
      options.onProgress?.({ promptTokens, completionTokens, text: "" });
      const stops = [...stopTriggers, ...(request.stop ?? []).filter((s) => s.length > 0)];
      const penalty = request.repetitionPenalty;
      const usePenalty = penalty !== 1 || (request.presencePenalty ?? 0) !== 0 || (request.frequencyPenalty ?? 0) !== 0;
      let result;
      try {
        result = await slot.completion.generateCompletionWithMeta(tokens, {
          maxTokens,
          temperature: request.temperature,
          topK: request.topK,
          topP: request.topP,
          // Always a seed: node-llama-cpp's default is the current second, so concurrent requests
          // (and the n choices of one request) would otherwise sample the very same text.
          seed: request.seed ?? randomInt(2 ** 32),
          repeatPenalty: usePenalty
            ? {
                penalty,
                lastTokens: REPEAT_PENALTY_LAST_TOKENS,
                penalizeNewLine: true,
                ...(request.presencePenalty ? { presencePenalty: request.presencePenalty } : {}),
                ...(request.frequencyPenalty ? { frequencyPenalty: request.frequencyPenalty } : {}),
              }
            : false,
          customStopTriggers: stops.length > 0 ? stops : undefined,
          signal: controller.signal,
          stopOnAbortSignal: true,
          disableContextShift: true,
          contextShiftSize: 1,
          // node-llama-cpp calls onToken with the tokens it releases, then onTextChunk with their
          // text, so the count at each text chunk is exactly the tokens emitted so far.
          onToken: (t) => {
            completionTokens += t.length;
          },
          ...(options.onText || options.onProgress
            ? {
                onTextChunk: (text: string) => {
                  options.onText?.(text);
                  options.onProgress?.({ promptTokens, completionTokens, text });
                },
              }
            : {}),
        });
      } catch (error) {
        if (controller.signal.aborted) {
          return { text: "", promptTokens, completionTokens, finishReason: "abort", truncated };
        }
        throw new AppError("generation_failed", `generation failed: ${(error as Error).message}`, { cause: error });
      }
      const reason = result.metadata.stopReason;
      const finishReason = reason === "abort" ? "abort" : reason === "maxTokens" ? "length" : "stop";
      return { text: result.response, promptTokens, completionTokens, finishReason, truncated };
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      this.inFlight.delete(controller);
      if (slot) pool.release(slot);
    }
  }

  abortAll(): void {
    this.pool?.close(new AppError("service_unavailable", "the model service is shutting down", { retryAfterSeconds: 5 }));
    for (const c of this.inFlight) c.abort(new Error("shutting down"));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abortAll();
    await this.loading?.catch(() => undefined);
    // Let aborted generations unwind before the native objects go away.
    const deadline = Date.now() + 5_000;
    while (this.inFlight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await this.disposeNative();
  }

  private async disposeNative(): Promise<void> {
    await this.context?.dispose().catch(() => undefined);
    await this.model?.dispose().catch(() => undefined);
    await this.llama?.dispose().catch(() => undefined);
    this.context = undefined;
    this.model = undefined;
    this.llama = undefined;
  }
}

export function createLlamaCppEngine(options: LlamaCppEngineOptions): LlamaCppEngine {
  return new LlamaCppEngine(options);
}
