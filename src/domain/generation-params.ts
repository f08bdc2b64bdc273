/**
 * Generation parameters: the one owner of their fields, defaults and bounds. Every layer that reads
 * them (the gateway's body, the queue message, the ML Service's `/inference` and OpenAI bodies)
 * builds its schema from the field validators here, so they accept and reject the same values.
 * Bounds that are settings (the largest `max_length`) come in as `GenerationLimits`.
 *
 * Inside the platform the parameters are camelCase (`GenerationParams`); snake_case exists only on
 * the wire (HTTP bodies, the queue message, the stored jsonb), converted by `toWire` / `fromWire`.
 */
import { z } from "zod";

export interface GenerationParams {
  /** Most tokens to generate per sequence (the completion, not counting the prompt). */
  maxLength: number;
  /** 0 = greedy. */
  temperature: number;
  /** 1 = off. */
  topP: number;
  /** 0 = off (whole vocabulary). */
  topK: number;
  /** 1 = off. */
  repetitionPenalty: number;
  numReturnSequences: number;
  /** Generation stops before the first occurrence of any of these; the stop text is not returned. */
  stop?: string[];
  /** Makes sampling (temperature > 0) reproducible. */
  seed?: number;
}

/** The same parameters as they travel: request bodies, the queue message and the stored row. */
export interface WireGenerationParams {
  max_length: number;
  temperature: number;
  top_p: number;
  top_k: number;
  repetition_penalty: number;
  num_return_sequences: number;
  stop?: string[];
  seed?: number;
}

/** Bounds that are settings, not properties of the parameters themselves. */
export interface GenerationLimits {
  /** The largest `max_length` (OpenAI: `max_tokens`) this layer admits. */
  maxLength: number;
}

/**
 * The largest value any `max_length` setting may take. The queue message is read with it as the
 * bound, so a message admitted under any valid setting stays readable after the setting changes.
 */
export const MAX_LENGTH_CEILING = 1_000_000;
export const WIRE_LIMITS: GenerationLimits = { maxLength: MAX_LENGTH_CEILING };

/** What a request that names no parameter gets (the first version's defaults). */
export const GENERATION_DEFAULTS: Readonly<Required<Omit<GenerationParams, "stop" | "seed">>> = {
  maxLength: 100,
  temperature: 0.7,
  topP: 0.9,
  topK: 50,
  repetitionPenalty: 1.2,
  numReturnSequences: 1,
};

/** OpenAI's own limit on stop sequences; 64 characters each keeps a stored row small. */
export const MAX_STOP_SEQUENCES = 4;
export const MAX_STOP_CHARS = 64;
/** Seeds are non-negative 32-bit signed integers, so every language's client can send them. */
export const MAX_SEED = 2 ** 31 - 1;

interface NumberSpec {
  integer: boolean;
  min: number;
  max: number;
  /** Exclusive lower bound, for ranges like (0, 1]. */
  minExclusive?: boolean;
}

/** A value named in an error message, without echoing whole strings or objects back. */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "number") return String(value);
  return typeof value === "string" ? "a string" : typeof value;
}

/** PostgreSQL text and jsonb hold neither NUL nor lone UTF-16 surrogates: refuse them up front. */
export const isStorable = (text: string): boolean => !text.includes("\u0000") && !/\p{Cs}/u.test(text);

function numberField(spec: NumberSpec) {
  return z.number({ error: (issue) => `must be a number, got ${describeValue(issue.input)}` }).superRefine((value, ctx) => {
    if (spec.integer && !Number.isInteger(value)) {
      ctx.addIssue({ code: "custom", message: `must be an integer, got ${value}` });
      return;
    }
    const belowMin = spec.minExclusive ? value <= spec.min : value < spec.min;
    if (belowMin || value > spec.max) {
      ctx.addIssue({ code: "custom", message: `must be in ${spec.minExclusive ? "(" : "["}${spec.min}, ${spec.max}], got ${value}` });
    }
  })
    // The same bounds for JSON Schema (the OpenAPI document is generated from these schemas, and a
    // refinement is invisible to z.toJSONSchema). Metadata only: parsing is unchanged.
    .meta({ type: spec.integer ? "integer" : "number", ...(spec.minExclusive ? { exclusiveMinimum: spec.min } : { minimum: spec.min }), maximum: spec.max });
}

/** A string or a list of strings; the result is always the list. */
const stopField = z.unknown().transform((value, ctx): string[] => {
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.some((s) => typeof s !== "string" || s.length === 0 || s.length > MAX_STOP_CHARS)) {
    ctx.addIssue({ code: "custom", message: `must be a string or an array of non-empty strings of at most ${MAX_STOP_CHARS} characters` });
    return z.NEVER;
  }
  if (list.length > MAX_STOP_SEQUENCES) {
    ctx.addIssue({ code: "custom", message: `at most ${MAX_STOP_SEQUENCES} sequences` });
    return z.NEVER;
  }
  if (!(list as string[]).every(isStorable)) {
    ctx.addIssue({ code: "custom", message: "must be well-formed Unicode without NUL characters" });
    return z.NEVER;
  }
  return list as string[];
}).meta({
  // What the transform accepts, for JSON Schema (see numberField).
  anyOf: [
    { type: "string", minLength: 1, maxLength: MAX_STOP_CHARS },
    { type: "array", maxItems: MAX_STOP_SEQUENCES, items: { type: "string", minLength: 1, maxLength: MAX_STOP_CHARS } },
  ],
});

/**
 * One validator per field, keyed by its wire name. Every schema of the parameters is made of these;
 * a layer may rename a field (OpenAI's `max_tokens`, `n`) or make it nullable, never re-bound it.
 */
export function generationFields(limits: GenerationLimits) {
  return {
    max_length: numberField({ integer: true, min: 1, max: limits.maxLength }),
    temperature: numberField({ integer: false, min: 0, max: 2 }),
    top_p: numberField({ integer: false, min: 0, max: 1, minExclusive: true }),
    top_k: numberField({ integer: true, min: 0, max: 1000 }),
    repetition_penalty: numberField({ integer: false, min: 0.5, max: 2 }),
    num_return_sequences: numberField({ integer: true, min: 1, max: 5 }),
    stop: stopField,
    seed: numberField({ integer: true, min: 0, max: MAX_SEED }),
  };
}

/** The field names a request body may carry for the parameters. */
export const GENERATION_FIELD_NAMES = Object.keys(generationFields(WIRE_LIMITS)) as Array<keyof WireGenerationParams>;

/** The parameters on the wire: every value resolved (no defaults), nothing else. */
export function wireParamsSchema(limits: GenerationLimits) {
  const f = generationFields(limits);
  return z
    .object({
      max_length: f.max_length,
      temperature: f.temperature,
      top_p: f.top_p,
      top_k: f.top_k,
      repetition_penalty: f.repetition_penalty,
      num_return_sequences: f.num_return_sequences,
      stop: f.stop.optional(),
      seed: f.seed.optional(),
    })
    .strict();
}

/** The parameters in a first-version request body (gateway, ML Service `/inference`): every field optional, defaults filled in. */
export function bodyParamsShape(limits: GenerationLimits) {
  const f = generationFields(limits);
  const d = GENERATION_DEFAULTS;
  return {
    max_length: f.max_length.default(d.maxLength),
    temperature: f.temperature.default(d.temperature),
    top_p: f.top_p.default(d.topP),
    top_k: f.top_k.default(d.topK),
    repetition_penalty: f.repetition_penalty.default(d.repetitionPenalty),
    num_return_sequences: f.num_return_sequences.default(d.numReturnSequences),
    stop: f.stop.optional(),
    seed: f.seed.optional(),
  };
}

const bodySchemas = new Map<number, z.ZodType<WireGenerationParams>>();

/** `bodyParamsShape` as an object schema, built once per limit (admission reads it on every request). */
export function bodyParamsSchema(limits: GenerationLimits): z.ZodType<WireGenerationParams> {
  let schema = bodySchemas.get(limits.maxLength);
  if (!schema) bodySchemas.set(limits.maxLength, (schema = z.object(bodyParamsShape(limits))));
  return schema;
}

export function toWire(p: GenerationParams): WireGenerationParams {
  return {
    max_length: p.maxLength,
    temperature: p.temperature,
    top_p: p.topP,
    top_k: p.topK,
    repetition_penalty: p.repetitionPenalty,
    num_return_sequences: p.numReturnSequences,
    ...(p.stop !== undefined ? { stop: p.stop } : {}),
    ...(p.seed !== undefined ? { seed: p.seed } : {}),
  };
}

/** Reads the wire fields of `w` (other keys of a body are ignored). */
export function fromWire(w: WireGenerationParams): GenerationParams {
  return {
    maxLength: w.max_length,
    temperature: w.temperature,
    topP: w.top_p,
    topK: w.top_k,
    repetitionPenalty: w.repetition_penalty,
    numReturnSequences: w.num_return_sequences,
    ...(w.stop !== undefined ? { stop: w.stop } : {}),
    ...(w.seed !== undefined ? { seed: w.seed } : {}),
  };
}

/** The parameters under OpenAI's names (`/v1/completions`, with llama.cpp's `top_k` and `repetition_penalty`). */
export interface OpenAiGenerationFields {
  max_tokens: number;
  temperature: number;
  top_p: number;
  top_k: number;
  repetition_penalty: number;
  n: number;
  stop?: string[];
  seed?: number;
}

export function wireToOpenAi(w: WireGenerationParams): OpenAiGenerationFields {
  return {
    max_tokens: w.max_length,
    temperature: w.temperature,
    top_p: w.top_p,
    top_k: w.top_k,
    repetition_penalty: w.repetition_penalty,
    n: w.num_return_sequences,
    ...(w.stop !== undefined ? { stop: w.stop } : {}),
    ...(w.seed !== undefined ? { seed: w.seed } : {}),
  };
}

/**
 * The same fields under OpenAI's names, each nullable: OpenAI clients send null for "not given".
 * The OpenAI protocol's own defaults are applied by `fromOpenAi`.
 */
export function openAiParamsShape(limits: GenerationLimits) {
  const f = generationFields(limits);
  return {
    max_tokens: f.max_length.nullish(),
    temperature: f.temperature.nullish(),
    top_p: f.top_p.nullish(),
    top_k: f.top_k.nullish(),
    repetition_penalty: f.repetition_penalty.nullish(),
    n: f.num_return_sequences.nullish(),
    stop: f.stop.nullish(),
    seed: f.seed.nullish(),
  };
}

type Nullish<T> = { [K in keyof T]?: T[K] | null };

export function fromOpenAi(
  body: Nullish<OpenAiGenerationFields>,
  defaults: Omit<GenerationParams, "stop" | "seed">,
): GenerationParams {
  return {
    maxLength: body.max_tokens ?? defaults.maxLength,
    temperature: body.temperature ?? defaults.temperature,
    topP: body.top_p ?? defaults.topP,
    topK: body.top_k ?? defaults.topK,
    repetitionPenalty: body.repetition_penalty ?? defaults.repetitionPenalty,
    numReturnSequences: body.n ?? defaults.numReturnSequences,
    ...(body.stop != null ? { stop: body.stop } : {}),
    ...(body.seed != null ? { seed: body.seed } : {}),
  };
}
