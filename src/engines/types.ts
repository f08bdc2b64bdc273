/**
 * The one interface every model engine implements. The ML Service's HTTP layer speaks only to this,
 * so another engine (a remote OpenAI-compatible server, ONNX, ...) can be added beside llama.cpp.
 */
import type { GenerationParams } from "../domain/generation-params.js";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/**
 * What one generation samples with: the request's parameters (one sequence of them; the caller
 * asks for several sequences as several requests) plus OpenAI's penalties.
 */
export interface SamplingParams extends Omit<GenerationParams, "numReturnSequences"> {
  presencePenalty?: number;
  frequencyPenalty?: number;
}

export interface GenerationRequest extends SamplingParams {
  /** A plain prompt, or chat messages formatted with the model's chat template. */
  input: { prompt: string } | { messages: readonly ChatMessage[] };
}

export type FinishReason = "stop" | "length" | "abort";

export interface GenerationResult {
  text: string;
  /** Tokens the model evaluated as the prompt (with BOS where the model adds one), after any truncation. */
  promptTokens: number;
  completionTokens: number;
  finishReason: FinishReason;
  /** True when the prompt was cut to fit the context (only when truncation is enabled). */
  truncated: boolean;
}

/** Where one generation stands: cumulative counts, and the piece of text just emitted. */
export interface GenerationProgress {
  /** The prompt's tokens, as the result's `promptTokens` will count them. */
  promptTokens: number;
  /** Completion tokens emitted so far: the tokens whose text the `text` pieces so far hold. */
  completionTokens: number;
  /** The new piece of text ("" for the first call, and for tokens without text). */
  text: string;
}

export interface GenerateOptions {
  /** Aborting stops the generation; the partial result comes back with finishReason "abort". */
  signal?: AbortSignal;
  /** Called with each new piece of text as it is generated (their concatenation equals `text`). */
  onText?: (text: string) => void;
  /**
   * Called once with `completionTokens: 0` and `text: ""` when the generation has its sequence and
   * starts evaluating the prompt, then after every emitted piece of text with the counts so far.
   * Unless aborted, the last call's counts are the result's.
   */
  onProgress?: (progress: GenerationProgress) => void;
}

export interface EngineInfo {
  engine: string;
  /** The name clients use (`model` in requests and answers). */
  model: string;
  /** Where the weights came from (file path). */
  source: string | undefined;
  device: string;
  demo: boolean;
  contextSize: number;
  sequences: number;
  threads: number;
  loadSeconds: number | undefined;
}

export interface EngineStats {
  running: number;
  waiting: number;
  capacity: number;
  queueLimit: number;
}

export interface Engine {
  /** Loads the model; resolves once it can generate. Calling it again returns the same promise. */
  load(): Promise<void>;
  readonly loaded: boolean;
  info(): EngineInfo;
  stats(): EngineStats;
  /** Tokens of a text as the model's tokenizer counts them (no BOS). */
  countTokens(text: string): number;
  generate(request: GenerationRequest, options?: GenerateOptions): Promise<GenerationResult>;
  /** Aborts every running generation (they return with finishReason "abort") and refuses waiters. */
  abortAll(): void;
  /** Frees the model. Generations still running are aborted. */
  close(): Promise<void>;
}
