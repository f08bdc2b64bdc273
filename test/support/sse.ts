/** An SSE stream read as it arrives, so a test can act between heartbeats and events. */
export interface OpenStream {
  status: number;
  events: Array<{ event: string; data: any }>;
  heartbeats: number;
  /** Resolves once `done` holds for what has arrived so far; rejects if the stream ends first. */
  until(done: (stream: OpenStream) => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves when the server ends the stream. */
  closed(timeoutMs?: number): Promise<void>;
  abort(): void;
}

export async function openEvents(url: string, authorization: string | undefined): Promise<OpenStream> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: authorization ? { authorization } : {}, signal: controller.signal });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let ended = false;
  let wake: () => void = () => undefined;
  const stream: OpenStream = {
    status: response.status,
    events: [],
    heartbeats: 0,
    async until(done, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!done(stream)) {
        if (ended) throw new Error(`the stream ended first: ${JSON.stringify(stream.events)}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`not seen within ${timeoutMs} ms: ${stream.heartbeats} heartbeats, ${JSON.stringify(stream.events)}`);
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, left);
        });
        clearTimeout(timer);
      }
    },
    async closed(timeoutMs = 10_000) {
      await stream.until(() => ended, timeoutMs).catch((error: Error) => {
        if (!ended) throw error;
      });
    },
    abort: () => controller.abort(),
  };
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith(": heartbeat")) stream.heartbeats++;
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) stream.events.push({ event, data: JSON.parse(data) });
        }
        wake();
      }
    } catch {
      /* aborted by the test */
    } finally {
      ended = true;
      wake();
    }
  })();
  return stream;
}
