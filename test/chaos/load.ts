/**
 * Requests streaming in while a fault happens: a bounded number of submissions a second to the
 * gateway, each answer recorded with its time, so a scenario can tell what was admitted, what the
 * clients saw, and how long admission took to come back after the fault cleared.
 */
export interface Answer {
  at: number;
  /** Milliseconds until the answer (or the failure). */
  ms: number;
  status: number;
  requestId?: string;
  code?: string;
}

export interface LoadResult {
  answers: Answer[];
  admitted: string[];
  /** 5xx answers and connections that failed, by status or "network". */
  serverErrors: Record<string, number>;
  /** p99 of how long the 503 answers took (null when there were none). */
  unavailableP99Ms: number | null;
  /** Seconds from `clearedAt` to the first admission after it (0 when nothing was refused). */
  recoverySeconds(faultAt: number, clearedAt: number): number | null;
}

export function startLoad(options: { url: string; authorization: string; perSecond: number; maxLength: number }): { stop(): Promise<LoadResult> } {
  const answers: Answer[] = [];
  const inFlight = new Set<Promise<void>>();
  let sent = 0;
  const started = performance.now();
  const submitOne = async (n: number) => {
    const at = performance.now();
    try {
      const response = await fetch(`${options.url}/api/v1/inference`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: options.authorization },
        body: JSON.stringify({ prompt: `Once upon a time ${n}`, max_length: options.maxLength, temperature: 0 }),
        signal: AbortSignal.timeout(10_000),
      });
      const body = (await response.json().catch(() => ({}))) as { request_id?: string; error?: { code?: string } };
      answers.push({ at, ms: performance.now() - at, status: response.status, requestId: body.request_id, code: body.error?.code });
    } catch {
      answers.push({ at, ms: performance.now() - at, status: 0 });
    }
  };
  // Paced by the clock, not by answers: a slow or dead gateway does not slow the offered load.
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - started) / 1000) * options.perSecond);
    while (sent < due) {
      const p = submitOne(sent++).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
  }, 10);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(inFlight);
      answers.sort((a, b) => a.at - b.at);
      const serverErrors: Record<string, number> = {};
      for (const a of answers) if (a.status === 0 || a.status >= 500) serverErrors[a.status === 0 ? "network" : String(a.status)] = (serverErrors[a.status === 0 ? "network" : String(a.status)] ?? 0) + 1;
      const unavailable = answers.filter((a) => a.status === 503).map((a) => a.ms).sort((a, b) => a - b);
      return {
        answers,
        unavailableP99Ms: unavailable.length > 0 ? (unavailable[Math.min(unavailable.length - 1, Math.floor(unavailable.length * 0.99))] as number) : null,
        admitted: answers.filter((a) => a.status === 202 && a.requestId).map((a) => a.requestId as string),
        serverErrors,
        recoverySeconds(faultAt, clearedAt) {
          const refused = answers.some((a) => a.at >= faultAt && a.status !== 202);
          if (!refused) return 0;
          const first = answers.find((a) => a.at >= clearedAt && a.status === 202);
          return first ? Math.max(0, (first.at - clearedAt) / 1000) : null;
        },
      };
    },
  };
}
