/**
 * What tracing costs admission while it is off (issue 10, item 5): the calls admission.ts makes
 * into observability/tracing.ts (extract, withSpan, setAttribute, withTraceHeaders), timed here in
 * this process (which never starts tracing) against the same work without them, per admission,
 * and set against the gateway's CPU per admitted request in phase (b). Without
 * OTEL_EXPORTER_OTLP_ENDPOINT no SDK is loaded and no header is added, so these calls are the
 * whole difference to a build without tracing.
 */
import { SpanKind, extract, withSpan, withTraceHeaders } from "../../src/observability/tracing.js";

export interface TracingOffReport {
  /** Nanoseconds the tracing calls add to one admission. */
  addedNsPerAdmission: number;
  /** The gateway's CPU per admitted request in (b), in µs. */
  gatewayUsPerAdmission: number;
  /** added ÷ gateway CPU per admission. */
  share: number;
}

const ROUNDS = 5;
const CALLS = 200_000;

async function plain(work: () => Promise<number>): Promise<number> {
  return work();
}

async function timeNs(run: () => Promise<number>): Promise<number> {
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) await run();
    best = Math.min(best, Number(process.hrtime.bigint() - start) / CALLS);
  }
  return best;
}

export async function phaseTracingOff(gatewayUsPerAdmission: number): Promise<TracingOffReport> {
  const input = { traceparent: undefined as string | undefined };
  const options = { headers: { "x-request": "1" } };
  const traced = () =>
    withSpan("admission", { parent: extract({ traceparent: input.traceparent }), kind: SpanKind.PRODUCER }, async (span) => {
      span.setAttribute("ml_inference.request_id", "id");
      return withTraceHeaders(span, options) === options ? 1 : 0;
    });
  const untraced = () => plain(async () => (options ? 1 : 0));
  // Best of several rounds each, alternating, so that neither is measured while the other warms up.
  await timeNs(traced);
  await timeNs(untraced);
  const addedNsPerAdmission = Math.max(0, (await timeNs(traced)) - (await timeNs(untraced)));
  return { addedNsPerAdmission, gatewayUsPerAdmission, share: addedNsPerAdmission / 1000 / gatewayUsPerAdmission };
}
