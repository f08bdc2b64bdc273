/**
 * For the worker's model-call tests: the request message they send, and a scripted stand-in for
 * the model server on a free loopback port (each request's JSON body read before the script sees it).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { RequestMessage } from "../../src/domain/contracts.js";

/** A small native request as it comes off the queue; `extra` overrides or adds fields (stream: true, say). */
export function modelRequest(requestId: string, extra: Record<string, unknown> = {}): RequestMessage {
  return {
    v: 1,
    request_id: requestId,
    user_id: "u",
    model: "default",
    prompt: "hi",
    params: { max_length: 4, temperature: 0, top_p: 1, top_k: 0, repetition_penalty: 1, num_return_sequences: 1 },
    reserved_tokens: 10,
    attempt: 1,
    created_at: new Date(0).toISOString(),
    ...extra,
  } as unknown as RequestMessage;
}

export type ModelScript = (req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>) => Promise<void> | void;

export interface ScriptedModelServer {
  server: Server;
  baseUrl: string;
  close(): Promise<void>;
}

export async function scriptedModelServer(script: ModelScript): Promise<ScriptedModelServer> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
      void script(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    server,
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
