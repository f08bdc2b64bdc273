/**
 * `ml-inference batch create|status|cancel|output`: the Batch API from the shell, on the typed
 * client. Exit codes are the other user commands' (args.ts EXIT): 1 when the batch did not end
 * completed, or some of its lines failed.
 */
import { readFile } from "node:fs/promises";
import { FINAL_BATCH_STATES, type Batch, type BatchEndpoint, type Client } from "../client/index.js";
import { EXIT, UsageError, parseCommandArgs } from "./args.js";
import { errorLine, type Out } from "./output.js";
import type { CliIo } from "./index.js";

export const BATCH_HELP = `  batch create <file.jsonl> [--endpoint /v1/chat/completions] [--wait] [--json]
                 upload a JSONL file (lines {custom_id, method, url, body}) and start a batch;
                 --wait follows it to the end (a progress bar on a terminal, lines otherwise)
  batch status <batch-id> [--json]            a batch's status and request counts
  batch cancel <batch-id> [--json]            cancel a batch (running lines finish, the rest never run)
  batch output <batch-id> [--errors]          print its output file (--errors: its error file)
  A batch exits 1 when it ended failed, expired or cancelled, or when any of its lines failed.
`;

const ENDPOINTS: readonly BatchEndpoint[] = ["/v1/chat/completions", "/v1/completions", "/v1/responses"];

const line = (out: Out, value: unknown) => out.write(`${JSON.stringify(value)}\n`);

export function batchLine(b: Batch): string {
  const c = b.requestCounts;
  return `${b.id} ${b.status} ${c.completed + c.failed}/${c.total} done (${c.completed} completed, ${c.failed} failed)`;
}

function batchText(b: Batch): string {
  const lines = [
    `batch      ${b.id}`,
    `status     ${b.status}`,
    `endpoint   ${b.endpoint}`,
    `requests   ${b.requestCounts.completed} completed, ${b.requestCounts.failed} failed, of ${b.requestCounts.total}`,
    `created    ${b.createdAt}`,
    ...(b.completedAt ? [`finished   ${b.completedAt}`] : []),
    ...(b.outputFileId ? [`output     ${b.outputFileId}`] : []),
    ...(b.errorFileId ? [`errors     ${b.errorFileId}`] : []),
    ...(b.errors ?? []).map((e) => `error      ${e.line !== null ? `line ${e.line}: ` : ""}${e.code}: ${e.message}`),
  ];
  return `${lines.join("\n")}\n`;
}

/** Exit code of a batch: 0 only when it completed with no line failed. */
function outcome(b: Batch, io: CliIo): number {
  if (!FINAL_BATCH_STATES.has(b.status)) return EXIT.ok;
  if (b.status === "completed" && b.requestCounts.failed === 0) return EXIT.ok;
  const why = b.status === "completed" ? `${b.requestCounts.failed} of ${b.requestCounts.total} lines failed` : `the batch ended ${b.status}`;
  io.stderr.write(errorLine({ code: b.status === "completed" ? "lines_failed" : `batch_${b.status}`, message: `batch ${b.id}: ${why}` }));
  return EXIT.failed;
}

const BAR_WIDTH = 24;

/** On a terminal: one bar redrawn in place. Elsewhere: a line each time the batch moves. */
export function progressWriter(out: Out): { update(b: Batch): void; stop(): void } {
  let drawn = false;
  return {
    update(b) {
      if (!out.isTTY) return void out.write(`${batchLine(b)}\n`);
      const c = b.requestCounts;
      const filled = c.total === 0 ? 0 : Math.round(((c.completed + c.failed) / c.total) * BAR_WIDTH);
      out.write(`\r\x1b[2K[${"#".repeat(filled)}${".".repeat(BAR_WIDTH - filled)}] ${c.completed + c.failed}/${c.total} ${b.status}${c.failed ? ` (${c.failed} failed)` : ""}`);
      drawn = true;
    },
    stop() {
      if (drawn) out.write("\r\x1b[2K");
    },
  };
}

async function create(client: Client, args: string[], io: CliIo, signal: AbortSignal): Promise<number> {
  const { positional, flags } = parseCommandArgs(args, { endpoint: "string", wait: "boolean", json: "boolean" }, { count: 1, what: "one JSONL file" });
  const endpoint = flags.endpoint as string | undefined;
  if (endpoint !== undefined && !ENDPOINTS.includes(endpoint as BatchEndpoint)) throw new UsageError(`--endpoint must be one of ${ENDPOINTS.join(", ")}`);
  const path = positional[0] as string;
  let content: Buffer;
  try {
    content = await readFile(path);
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const filename = path.split(/[\\/]/).pop() || "batch.jsonl";
  const created = await client.batches.submit(new Uint8Array(content), { filename, signal, ...(endpoint ? { endpoint: endpoint as BatchEndpoint } : {}) });
  if (!flags.wait) {
    if (flags.json) line(io.stdout, created);
    else io.stdout.write(`${batchLine(created)}\n`);
    return outcome(created, io);
  }
  const progress = progressWriter(io.stderr);
  let final: Batch;
  try {
    final = await client.batches.wait(created.id, { signal, onProgress: (b) => progress.update(b) });
  } finally {
    progress.stop();
  }
  if (flags.json) line(io.stdout, final);
  else io.stdout.write(batchText(final));
  return outcome(final, io);
}

async function status(client: Client, args: string[], io: CliIo, signal: AbortSignal): Promise<number> {
  const { positional, flags } = parseCommandArgs(args, { json: "boolean" }, { count: 1, what: "one batch id" });
  const batch = await client.batches.retrieve(positional[0] as string, { signal });
  if (flags.json) line(io.stdout, batch);
  else io.stdout.write(batchText(batch));
  return outcome(batch, io);
}

async function cancel(client: Client, args: string[], io: CliIo): Promise<number> {
  const { positional, flags } = parseCommandArgs(args, { json: "boolean" }, { count: 1, what: "one batch id" });
  const batch = await client.batches.cancel(positional[0] as string);
  if (flags.json) line(io.stdout, batch);
  else io.stdout.write(`${batchLine(batch)}\n`);
  return EXIT.ok;
}

async function output(client: Client, args: string[], io: CliIo, signal: AbortSignal): Promise<number> {
  const { positional, flags } = parseCommandArgs(args, { errors: "boolean" }, { count: 1, what: "one batch id" });
  const batch = await client.batches.retrieve(positional[0] as string, { signal });
  const text = await client.batches.output(batch, { errors: flags.errors === true, signal });
  if (text === null) {
    const what = flags.errors ? "no error file (no line failed, or it is not final yet)" : "no output file yet";
    io.stderr.write(errorLine({ code: "no_output", message: `batch ${batch.id} has ${what}; it is ${batch.status}` }));
    return EXIT.failed;
  }
  io.stdout.write(text.endsWith("\n") || text === "" ? text : `${text}\n`);
  return EXIT.ok;
}

const SUBCOMMANDS: Record<string, (client: Client, args: string[], io: CliIo, signal: AbortSignal) => Promise<number>> = { create, status, cancel, output };

export async function batch(client: Client, args: string[], io: CliIo, signal: AbortSignal): Promise<number> {
  const [sub, ...rest] = args;
  const run = sub === undefined ? undefined : SUBCOMMANDS[sub];
  if (!run) throw new UsageError(`needs one of ${Object.keys(SUBCOMMANDS).join(", ")}${sub ? `, got "${sub}"` : ""}`);
  return run(client, rest, io, signal);
}
