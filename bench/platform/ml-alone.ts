/**
 * Phase (f): the ML Service alone, called directly with the body the worker sends for the requests
 * just drained, at the drain's concurrency (the worker's prefetch). End to end ÷ this is what the
 * platform costs the model: on a shared machine every CPU-µs the platform spends is one the model
 * does not get.
 */
import type { WireGenerationParams } from "../../src/domain/generation-params.js";
import { WORKER_PREFETCH, ML_TOKEN } from "./settings.js";
import { setPhase, type Child } from "./children.js";
import { closedLoops, type LoadResult } from "./load.js";
import { RawConnection, httpRequest } from "./raw-http.js";
import type { Setup } from "./setup.js";

export async function phaseMlAlone(s: Setup, ml: Child): Promise<LoadResult> {
  setPhase("f");
  const row = (
    await s.db.query<{ prompt: string; model: string; params: WireGenerationParams }>(
      "SELECT prompt, model, params FROM inference_requests WHERE user_id = $1 LIMIT 1",
      [s.userId],
    )
  ).rows[0];
  if (!row) throw new Error("no drained request to replay against the ML Service");
  // As the worker's native client builds it: the prompt, the model and the stored parameters.
  const body = JSON.stringify({ prompt: row.prompt, model: row.model, ...row.params, stream: false });
  const raw = httpRequest("POST", "/inference", { "content-type": "application/json", authorization: `Bearer ${ML_TOKEN}` }, body);
  const { port } = new URL(ml.url);
  const connections = Array.from({ length: WORKER_PREFETCH }, () => new RawConnection("127.0.0.1", Number(port)));
  try {
    return await closedLoops("f) ML Service alone: POST /inference", WORKER_PREFETCH, async (i) => {
      const response = await connections[i]!.request(raw);
      return response.status === 200 ? null : `HTTP ${response.status} ${response.body.toString("utf8").slice(0, 80)}`;
    });
  } finally {
    for (const c of connections) c.close();
  }
}
