/**
 * The one mapping from a request's generation parameters to engine requests: one per returned
 * sequence, with consecutive seeds so the sequences differ yet a given seed reproduces all of them.
 */
import type { GenerationParams } from "../domain/generation-params.js";
import type { GenerationRequest, SamplingParams } from "./types.js";

export type Penalties = Pick<SamplingParams, "presencePenalty" | "frequencyPenalty">;

export function generationRequests(
  params: GenerationParams,
  input: GenerationRequest["input"],
  penalties: Penalties = {},
): GenerationRequest[] {
  const { numReturnSequences, ...sampling } = params;
  return Array.from({ length: numReturnSequences }, (_, i) => ({
    ...sampling,
    ...(penalties.presencePenalty ? { presencePenalty: penalties.presencePenalty } : {}),
    ...(penalties.frequencyPenalty ? { frequencyPenalty: penalties.frequencyPenalty } : {}),
    ...(sampling.seed !== undefined ? { seed: (sampling.seed + i) >>> 0 } : {}),
    input,
  }));
}
