/** Phases (a) raw ceiling, (b) admission over HTTP, (b2) the same through /v1/responses, (c) status lookups. */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { PgSqlClient } from "../../src/adapters/postgres/sql-client.js";
import { SqlRequestStore } from "../../src/adapters/postgres/request-store.js";
import { RedisQuotaStore } from "../../src/adapters/redis/quota-store.js";
import { RabbitMessageQueue } from "../../src/adapters/rabbitmq/message-queue.js";
import { encodeMessage } from "../../src/domain/contracts.js";
import { requestMessageOf } from "../../src/domain/request-message.js";
import { estimateTokens } from "../../src/domain/inference-request.js";
import { CONNECTIONS, KEY_PREFIX, MAX_LENGTH, PROMPT, QUEUES, SCHEMA, UNLIMITED, URLS } from "./settings.js";
import { setPhase, type Child } from "./children.js";
import { closedLoops, type LoadResult } from "./load.js";
import { RawConnection, httpRequest } from "./raw-http.js";
import type { Setup } from "./setup.js";

export const requestBody = JSON.stringify({ prompt: PROMPT, max_length: MAX_LENGTH, temperature: 0.8 });

export async function phaseCeiling(s: Setup): Promise<LoadResult> {
  setPhase("a");
  const mq = await RabbitMessageQueue.connect({ url: URLS.amqp, queues: [QUEUES.ceiling] });
  // Same pool size and a separate connection, like the gateway's own.
  const db = new PgSqlClient({ connectionString: URLS.postgres, schema: SCHEMA, max: 10, applicationName: "ml-inference-bench-ceiling" });
  const requests = new SqlRequestStore(db);
  const redis = new Redis(URLS.redis, { connectionName: "ml-inference-bench-ceiling" });
  const quota = new RedisQuotaStore({ redis, keyPrefix: KEY_PREFIX });
  const userId = "bench-ceiling";
  const params = { maxLength: MAX_LENGTH, temperature: 0.8, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 };
  const tokens = estimateTokens(PROMPT, params);
  try {
    return await closedLoops("a) ceiling: reserve + INSERT + confirmed publish", CONNECTIONS, async () => {
      const requestId = randomUUID();
      const createdAt = new Date();
      const r = await quota.reserve({ userId, requestId, tokens, limits: UNLIMITED, now: createdAt });
      if (!r.ok) return "quota";
      await requests.insert({ requestId, userId, model: "default", prompt: PROMPT, params, estimatedTokens: tokens, window: r.window, createdAt });
      const message = requestMessageOf({ requestId, userId, model: "default", prompt: PROMPT, params, estimatedTokens: tokens, createdAt });
      await mq.publish(QUEUES.ceiling, encodeMessage(message));
      return null;
    });
  } finally {
    await mq.close();
    await redis.quit().catch(() => redis.disconnect());
    // The ceiling's rows must not count in (d).
    await db.query("DELETE FROM inference_requests WHERE user_id = $1", [userId]);
    await db.close();
  }
}

/** Closed loops of one admission call on keep-alive connections; counts the requests admitted. */
async function admissionLoops(gateway: Child, label: string, path: string, body: string, accepted: (status: number, body: Buffer) => boolean, authorization: string) {
  const { port } = new URL(gateway.url);
  const raw = httpRequest("POST", path, { "content-type": "application/json", authorization }, body);
  const connections = Array.from({ length: CONNECTIONS }, () => new RawConnection("127.0.0.1", Number(port)));
  let admitted = 0;
  try {
    const result = await closedLoops(
      label,
      CONNECTIONS,
      async (i) => {
        const response = await connections[i]!.request(raw);
        return accepted(response.status, response.body) ? null : `HTTP ${response.status} ${response.body.toString("utf8").slice(0, 80)}`;
      },
      (failure) => {
        if (failure === null) admitted++;
      },
    );
    return { result, admitted };
  } finally {
    for (const c of connections) c.close();
  }
}

export async function phaseAdmission(gateway: Child, s: Setup): Promise<{ result: LoadResult; admitted: number }> {
  setPhase("b");
  return admissionLoops(gateway, "b) admission: POST /api/v1/inference", "/api/v1/inference", requestBody, (status) => status === 202, s.authorization);
}

/**
 * Phase (b1): (b) again, right before (b2) and in its conditions (the queue not consumed, the
 * tables as the run left them), so that /v1 ÷ /api/v1 compares like with like.
 */
export async function phaseAdmissionAgain(gateway: Child, s: Setup): Promise<{ result: LoadResult; admitted: number }> {
  setPhase("b1");
  return admissionLoops(gateway, "b1) admission again: POST /api/v1/inference", "/api/v1/inference", requestBody, (status) => status === 202, s.authorization);
}

/** The same prompt and length as (b), as a background response: answered at admission, `queued`. */
export const responsesBody = JSON.stringify({ model: "default", input: PROMPT, max_output_tokens: MAX_LENGTH, background: true });
const QUEUED = Buffer.from('"status":"queued"');

/**
 * Phase (b2): the OpenAI door's admission. A non-streamed /v1/chat/completions holds its connection
 * until the request completes, so admission alone is measured through POST /v1/responses with
 * `background: true`, which goes through the same admission (admission.ts) and answers at once.
 */
export async function phaseV1Admission(gateway: Child, s: Setup): Promise<{ result: LoadResult; admitted: number }> {
  setPhase("b2");
  return admissionLoops(
    gateway,
    "b2) admission: POST /v1/responses (background)",
    "/v1/responses",
    responsesBody,
    (status, body) => status === 200 && body.includes(QUEUED),
    s.authorization,
  );
}

export async function phaseStatus(api: Child, s: Setup): Promise<LoadResult> {
  setPhase("c");
  const ids = (
    await s.db.query<{ request_id: string }>("SELECT request_id FROM inference_requests WHERE user_id = $1 ORDER BY random() LIMIT 5000", [s.userId])
  ).rows.map((r) => r.request_id);
  if (ids.length === 0) throw new Error("no admitted requests to look up");
  const raws = ids.map((id) => httpRequest("GET", `/api/v1/status/${id}`, { authorization: s.authorization }));
  const { port } = new URL(api.url);
  const connections = Array.from({ length: CONNECTIONS }, () => new RawConnection("127.0.0.1", Number(port)));
  let next = 0;
  try {
    return await closedLoops("c) status: GET /api/v1/status/:id", CONNECTIONS, async (i) => {
      const raw = raws[next++ % raws.length]!;
      const response = await connections[i]!.request(raw);
      return response.status === 200 ? null : `HTTP ${response.status} ${response.body.toString("utf8").slice(0, 80)}`;
    });
  } finally {
    for (const c of connections) c.close();
  }
}
