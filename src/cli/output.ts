/**
 * Human output of the user-facing commands. Decoration (a spinner, bars) only goes to a terminal:
 * piped into a file or another program the same commands print plain lines, so logs stay readable.
 */
import type { ClientError, Quota, RequestStatus, Limits, WindowUsage } from "../client/index.js";

export interface Out {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** The one-line error format scripts and people both read: `error: <code>: <message>`. */
export function errorLine(error: Pick<ClientError, "code" | "message"> & { retryAfterSeconds?: number | undefined }): string {
  const message = error.message.replace(/\s*\n\s*/g, " ");
  const retry = error.retryAfterSeconds !== undefined ? ` (retry after ${error.retryAfterSeconds} s)` : "";
  return `error: ${error.code}: ${message}${retry}\n`;
}

/** What a finished request produced: its text, or each sequence under a header when there are several. */
export function outputText(status: RequestStatus): string {
  const outputs = status.result?.outputs;
  if (outputs && outputs.length > 1) return outputs.map((text, i) => `--- sequence ${i + 1}\n${text}`).join("\n") + "\n";
  const text = status.result?.outputText ?? "";
  return text.endsWith("\n") || text === "" ? text : `${text}\n`;
}

export function statusText(s: RequestStatus): string {
  const lines = [
    `request    ${s.requestId}`,
    `status     ${s.status}`,
    `model      ${s.model}`,
    `created    ${s.createdAt}`,
    ...(s.startedAt ? [`started    ${s.startedAt}`] : []),
    ...(s.completedAt ? [`finished   ${s.completedAt}`] : []),
    s.usage
      ? `tokens     ${s.usage.promptTokens} prompt + ${s.usage.completionTokens} completion = ${s.usage.totalTokens}`
      : `tokens     ${s.estimatedTokens} reserved (estimate)`,
    ...(s.error ? [`error      ${s.error.code}: ${s.error.message}`] : []),
  ];
  const text = s.result ? `\n${outputText(s)}` : "";
  return `${lines.join("\n")}\n${text}`;
}

const BAR_WIDTH = 24;

/** `[#####.......]  5 / 100`, or the count alone for an unlimited limit. */
function bar(used: number, limit: number | null, tty: boolean, reserved = 0): string {
  const count = limit === null ? `${used} (unlimited)` : `${used} / ${limit}`;
  const held = reserved > 0 ? `, ${reserved} reserved` : "";
  if (!tty || limit === null) return `${count}${held}`;
  const filled = limit === 0 ? BAR_WIDTH : Math.min(BAR_WIDTH, Math.round(((used + reserved) / limit) * BAR_WIDTH));
  return `[${"#".repeat(filled)}${".".repeat(BAR_WIDTH - filled)}]  ${count}${held}`;
}

function windowLines(name: string, usage: WindowUsage, limits: Limits, resets: string, tty: boolean): string[] {
  return [
    `${name.padEnd(8)} requests  ${bar(usage.requests, limits.requests, tty)}`,
    `${"".padEnd(8)} tokens    ${bar(usage.tokensUsed, limits.tokens, tty, usage.tokensReserved)}`,
    `${"".padEnd(8)} resets    ${resets}`,
  ];
}

export function quotaText(q: Quota, tty: boolean): string {
  return (
    [
      `user     ${q.userId}`,
      ...windowLines(`daily`, q.daily, q.limits.daily, q.resets.daily, tty),
      ...windowLines(`monthly`, q.monthly, q.limits.monthly, q.resets.monthly, tty),
    ].join("\n") + "\n"
  );
}

const FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏";

/**
 * `⠙ <id> processing 3.2s` redrawn in place while waiting, on a terminal only (a spinner in a
 * pipe would be a stream of carriage returns). Cleared before the answer is printed.
 */
export class Progress {
  private frame = 0;
  private status = "submitted";
  private readonly started = Date.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: Out,
    private readonly label: string,
  ) {
    if (!out.isTTY) return;
    this.timer = setInterval(() => this.draw(), 100);
    this.timer.unref();
    this.draw();
  }

  update(status: string): void {
    this.status = status;
    if (this.timer) this.draw();
  }

  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.out.write("\r\x1b[2K");
  }

  private draw(): void {
    const seconds = ((Date.now() - this.started) / 1000).toFixed(1);
    this.out.write(`\r\x1b[2K${FRAMES[this.frame++ % FRAMES.length]} ${this.label} ${this.status} ${seconds}s`);
  }
}
