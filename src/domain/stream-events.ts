/**
 * The shape of a request stream's events (the `StreamEvent` of ports.ts) as a schema, and the pure
 * checks both RequestStreams adapters apply: what an append accepts, and what a reader keeps of a
 * payload read back (from a stream entry or a live message).
 *
 * Objects are not strict: a field a newer writer adds is stripped, not a reason to drop the event
 * (a dropped event is a gap for every reader of an older replica during a rolling upgrade).
 */
import { z } from "zod";
import { tokenUsageSchema } from "./contracts.js";
import type { StreamEvent } from "./ports.js";

/** What a stream keeps unless configured otherwise: its newest 4096 events, for 15 minutes after its last append. */
export const DEFAULT_STREAM_BOUND = 4096;
export const DEFAULT_STREAM_TTL_MS = 15 * 60_000;

const seqSchema = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

export const streamEventSchema = z.discriminatedUnion("type", [
  z.object({ seq: seqSchema, type: z.literal("delta"), text: z.string() }),
  z.object({
    seq: seqSchema,
    type: z.literal("final"),
    status: z.enum(["completed", "failed", "cancelled"]),
    usage: tokenUsageSchema.nullable(),
    finishReason: z.enum(["stop", "length", "cancelled"]).nullable(),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
  }),
]);

// The schema and the port's type must stay one shape: each side must be assignable to the other.
type Parsed = z.infer<typeof streamEventSchema>;
const portToSchema = (event: StreamEvent): Parsed => event;
const schemaToPort = (event: Parsed): StreamEvent => event;
void portToSchema;
void schemaToPort;

/** The event if `data` is a valid stream event (unknown fields stripped), else null. */
export function parseStreamEvent(data: unknown): StreamEvent | null {
  const parsed = streamEventSchema.safeParse(data);
  return parsed.success ? parsed.data : null;
}

/** Like parseStreamEvent, from JSON text; null when it is not JSON either. */
export function parseStreamEventJson(raw: string): StreamEvent | null {
  try {
    return parseStreamEvent(JSON.parse(raw));
  } catch {
    return null;
  }
}

/**
 * A live message: one append's events as a JSON array. Keeps the valid events (in order) and counts
 * what it dropped; a message that is not a JSON array counts as one dropped.
 */
export function parseLiveBatch(raw: string): { events: StreamEvent[]; dropped: number } {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return { events: [], dropped: 1 };
  }
  if (!Array.isArray(data)) return { events: [], dropped: 1 };
  const events: StreamEvent[] = [];
  for (const item of data) {
    const event = parseStreamEvent(item);
    if (event) events.push(event);
  }
  return { events, dropped: data.length - events.length };
}

/**
 * What an append stores: each event validated (unknown fields stripped) and seqs strictly
 * increasing. Throws on a batch that breaks either, before anything is stored: that is a caller's
 * bug, and storing it would hand every reader a gap or a stream out of order.
 */
export function checkedAppendBatch(events: readonly StreamEvent[]): StreamEvent[] {
  const checked: StreamEvent[] = [];
  let previous = 0;
  for (const [index, candidate] of events.entries()) {
    const parsed = streamEventSchema.safeParse(candidate);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
      throw new TypeError(`stream event ${index} is invalid: ${issues}`);
    }
    if (parsed.data.seq <= previous) {
      throw new RangeError(`stream events must be in increasing seq order: ${parsed.data.seq} follows ${previous}`);
    }
    previous = parsed.data.seq;
    checked.push(parsed.data);
  }
  return checked;
}

/** The events of `batch` a stream whose newest seq is `lastSeq` does not hold yet (a retried append adds nothing). */
export function newerThan(batch: readonly StreamEvent[], lastSeq: number): StreamEvent[] {
  return batch.filter((event) => event.seq > lastSeq);
}
