/**
 * One webhook POST over node:http(s): connected only to addresses the address policy allows (the
 * lookup checks what it resolves, a literal address is checked first), no redirects followed, the
 * answer read and dropped (at most a little of it kept for the error), and the whole call bounded.
 */
import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import { AddressRefused, checkedLookup, hostOf, isPrivateAddress } from "./address-policy.js";

export type SendResult = { ok: true; status: number } | { ok: false; error: string };

const KEPT_ANSWER_CHARS = 200;

export function sendWebhook(url: string, body: string, headers: Record<string, string>, options: { timeoutMs: number; allowPrivate: boolean }): Promise<SendResult> {
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      resolve({ ok: false, error: "the URL is not valid" });
      return;
    }
    const host = hostOf(target);
    if (!options.allowPrivate && isIP(host) && isPrivateAddress(host)) {
      resolve({ ok: false, error: `refused: ${host} is a private, loopback or link-local address` });
      return;
    }
    const transport = target.protocol === "https:" ? https : http;
    const signal = AbortSignal.timeout(options.timeoutMs);
    const req = transport.request(target, {
      method: "POST",
      headers: { ...headers, "content-length": String(Buffer.byteLength(body)), "user-agent": "ml-inference-webhooks/1" },
      lookup: checkedLookup(options.allowPrivate) as never,
      signal,
      agent: false,
    });
    req.once("error", (error: NodeJS.ErrnoException) => {
      if (signal.aborted) resolve({ ok: false, error: `no answer within ${options.timeoutMs} ms` });
      else if (error instanceof AddressRefused) resolve({ ok: false, error: `refused: ${error.message}` });
      else resolve({ ok: false, error: `could not connect: ${error.code ?? error.message}` });
    });
    req.once("response", (res) => {
      let answer = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        if (answer.length < KEPT_ANSWER_CHARS) answer += chunk;
      });
      res.once("error", () => undefined);
      res.once("end", () => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve({ ok: true, status });
        else resolve({ ok: false, error: `answered ${status}${answer ? `: ${answer.slice(0, KEPT_ANSWER_CHARS).replace(/\s+/g, " ")}` : ""}` });
      });
    });
    req.end(body);
  });
}
