/**
 * Phase (f): the ML Service alone, called directly with the body the worker sends for the requests
 * just drained, at the drain's concurrency (the worker's prefetch). End to end ÷ this is what the
 * platform costs the model: on a shared machine every CPU-µs the platform spends is one the model
 * does not get. (f0) is the same call right before the drain: the model's own speed on this
 * machine drifts by ±20 % from one 4-second window to the next, so the ratio divides by the mean
 * of the two measurements that bracket the drain rather than by one sample of that drift.
 */
import type { WireGenerationParams } from "../../src/domain/generation-params.js";
import { WORKER_PREFETCH, ML_TOKEN } from "./settings.js";

/** The pace of progress lines the worker asked for when it still streamed every call. */
const PACED_INTERVAL_MS = 250;
import { setPhase, type Child } from "./children.js";
import { closedLoops, type LoadResult } from "./load.js";
import { RawConnection, httpRequest } from "./raw-http.js";
import type { Setup } from "./setup.js";

/**
 * `whole`: `stream: false`, what a caller of the model server gets and what the worker sends for a
 * client that is not streaming; `paced`: NDJSON paced by stream_interval_ms, the call the worker
 * made for such clients until it could cancel a whole answer by id: the streamed protocol's cost.
 */
export async function phaseMlAlone(s: Setup, ml: Child, call: "whole" | "paced" | "before" = "whole"): Promise<LoadResult> {
  setPhase(call === "whole" ? "f" : call === "paced" ? "f2" : "f0");
  const row = (
    await s.db.query<{ prompt: string; model: string; params: WireGenerationParams }>(
      "SELECT prompt, model, params FROM inference_requests WHERE user_id = $1 LIMIT 1",
      [s.userId],
    )
  ).rows[0];
  if (!row) throw new Error("no drained request to replay against the ML Service");
  // As the worker's native client builds it: the prompt, the model and the stored parameters.
  const protocol = call !== "paced" ? { stream: false } : { stream: true, stream_interval_ms: PACED_INTERVAL_MS };
  const body = JSON.stringify({ prompt: row.prompt, model: row.model, ...row.params, ...protocol });
  const raw = httpRequest("POST", "/inference", { "content-type": "application/json", authorization: `Bearer ${ML_TOKEN}` }, body);
  const { port } = new URL(ml.url);
  const connections = Array.from({ length: WORKER_PREFETCH }, () => new RawConnection("127.0.0.1", Number(port)));
  try {
    const label = { whole: "f) ML Service alone: POST /inference", before: "f0) ML Service alone before the drain", paced: "f2) ML Service alone, paced NDJSON call" }[call];
    return await closedLoops(label, WORKER_PREFETCH, async (i) => {
      const response = await connections[i]!.request(raw);
      return response.status === 200 ? null : `HTTP ${response.status} ${response.body.toString("utf8").slice(0, 80)}`;
    });
  } finally {
    for (const c of connections) c.close();
  }
}
