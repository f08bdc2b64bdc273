/**
 * The whole (non-streamed) model call, for a client that is not streaming: the ML Service's JSON
 * answer, which costs it less than a streamed one. A user's cancel does not hang up: it asks the
 * ML Service to stop the generation by its id (`POST /inference/{id}/cancel`, see
 * src/components/ml-service/cancels.ts) and reads the answer, which then carries the text and the
 * tokens processed until the stop, so the cancel settles exactly what ran. Should the answer not
 * come within CANCEL_ANSWER_WAIT_MS of the cancel (the server cannot stop by id, or is gone), the
 * call is cut and settles nothing, as a cancel of a call to any OpenAI-compatible server does.
 */
import { postJson } from "./http-post.js";
import { generateWithFinish, mlHeaders, type MlClientOptions, type MlRequest } from "./ml-client.js";
import type { StreamCallbacks, StreamedGeneration } from "./ml-stream.js";

const CANCEL_ANSWER_WAIT_MS = 2_000;

const nothingProcessed = (message: MlRequest): StreamedGeneration => ({
  outputText: "",
  outputs: undefined,
  usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
  model: message.model,
  finishReason: "cancelled",
});

export async function generateWholeCancellable(
  options: MlClientOptions,
  message: MlRequest,
  callbacks: StreamCallbacks,
  signal?: AbortSignal,
): Promise<StreamedGeneration> {
  if (signal?.aborted) return nothingProcessed(message);
  const hangUp = new AbortController();
  let cut: NodeJS.Timeout | undefined;
  const onCancel = () => {
    cut = setTimeout(() => hangUp.abort(), CANCEL_ANSWER_WAIT_MS);
    const url = new URL(`/inference/${encodeURIComponent(message.request_id)}/cancel`, options.baseUrl);
    postJson(url, {}, mlHeaders(options, message), { signal: hangUp.signal, agent: options.agent }).then(
      (answer) => {
        if (answer.status < 200 || answer.status > 299) hangUp.abort();
      },
      () => hangUp.abort(),
    );
  };
  signal?.addEventListener("abort", onCancel, { once: true });
  try {
    const { generation, finishReason } = await generateWithFinish(options, message, hangUp.signal);
    if (generation.outputText.length > 0) callbacks.onDelta?.(generation.outputText);
    // Finished before the cancel took effect: the whole answer stands (and is charged), as when a
    // cancel races completion anywhere else.
    return { ...generation, finishReason: finishReason === "abort" ? "cancelled" : finishReason };
  } catch (error) {
    if (signal?.aborted) return nothingProcessed(message);
    throw error;
  } finally {
    clearTimeout(cut);
    signal?.removeEventListener("abort", onCancel);
  }
}
