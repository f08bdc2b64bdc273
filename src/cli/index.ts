/**
 * The user-facing commands (submit, status, cancel, quota), built on the typed client exactly as
 * a user's program would be: they talk HTTP to ML_INFERENCE_URL with ML_INFERENCE_API_KEY and
 * never open the database or the broker (those are the admin commands').
 */
import { Client, ClientError, type RequestStatus, type StreamEvent } from "../client/index.js";
import { EXIT, UsageError, exitCodeOf, parseCommandArgs } from "./args.js";
import { errorLine, outputText, Progress, quotaText, statusText, type Out } from "./output.js";
import { batch, BATCH_HELP } from "./batch.js";

export const CLIENT_COMMANDS = ["submit", "status", "cancel", "quota", "batch"] as const;
export type ClientCommand = (typeof CLIENT_COMMANDS)[number];

export const DEFAULT_URL = "http://localhost:8080";

export const CLIENT_HELP = `Using the platform (HTTP to ML_INFERENCE_URL, default ${DEFAULT_URL}, key in ML_INFERENCE_API_KEY):
  submit "<prompt>" [--wait | --stream] [--max-length N] [--temperature X] [--json]
                 submit a prompt; --wait prints the result when it is ready, --stream prints
                 the tokens as they are generated; without either, prints the request id
  status <id> [--json]                        a request's status and result
  cancel <id> [--json]                        cancel a request (a finished one stays as it is)
  quota [--json]                              your limits and what is used of them
${BATCH_HELP}  --json prints one JSON object (one per line with --stream: submitted, tokens, final).
  Exit codes: 0 ok; 1 the request failed or was cancelled (status: when it is failed/cancelled);
  2 usage error (bad flags, nothing sent); 3 the platform refused (4xx; its message is shown);
  4 unavailable (unreachable, 5xx, or 429 with Retry-After): try again later; 130 interrupted.
  Errors go to stderr as one line: error: <code>: <message> (code "unreachable": no answer at all).
`;

export interface CliIo {
  stdout: Out;
  stderr: Out;
}

export function isClientCommand(command: string): command is ClientCommand {
  return (CLIENT_COMMANDS as readonly string[]).includes(command);
}

export async function runClientCommand(
  command: ClientCommand,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: CliIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const client = new Client({ baseUrl: env.ML_INFERENCE_URL || DEFAULT_URL, ...(env.ML_INFERENCE_API_KEY ? { apiKey: env.ML_INFERENCE_API_KEY } : {}) });
  // Ctrl-C stops watching (exit 130); the request goes on and `status` still finds it.
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort();
  process.once("SIGINT", onSigint);
  try {
    return await COMMANDS[command](client, args, io, interrupt.signal);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(errorLine({ code: "usage", message: `${command}: ${error.message} (see "ml-inference help")` }));
      return EXIT.usage;
    }
    if (error instanceof ClientError) {
      io.stderr.write(errorLine(error));
      return exitCodeOf(error);
    }
    throw error;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

type Command = (client: Client, args: string[], io: CliIo, signal: AbortSignal) => Promise<number>;

const line = (out: Out, value: unknown) => out.write(`${JSON.stringify(value)}\n`);

/** Exit code of a finished request, with its error on stderr when it did not complete. */
function finished(status: Pick<RequestStatus, "requestId" | "status" | "error">, io: CliIo): number {
  if (status.status === "completed") return EXIT.ok;
  if (status.status === "cancelled") io.stderr.write(errorLine({ code: "request_cancelled", message: `request ${status.requestId} was cancelled` }));
  else io.stderr.write(errorLine(status.error ?? { code: "failed", message: `request ${status.requestId} failed` }));
  return EXIT.failed;
}

const submit: Command = async (client, args, io, signal) => {
  const { positional, flags } = parseCommandArgs(
    args,
    { wait: "boolean", stream: "boolean", json: "boolean", "max-length": "integer", temperature: "number" },
    { count: 1, what: 'one prompt (quote it: submit "Once upon a time")' },
  );
  if (flags.wait && flags.stream) throw new UsageError("--wait and --stream exclude each other");
  const prompt = positional[0] as string;
  const params = {
    ...(flags["max-length"] !== undefined ? { maxLength: flags["max-length"] as number } : {}),
    ...(flags.temperature !== undefined ? { temperature: flags.temperature as number } : {}),
  };
  const json = flags.json === true;

  if (flags.stream) {
    let final: StreamEvent | undefined;
    const events = client.stream(prompt, params, { signal, onSubmitted: (s) => json && line(io.stdout, { type: "submitted", ...s }) });
    for await (const event of events) {
      if (json) line(io.stdout, event);
      else if (event.type === "token") io.stdout.write(event.text);
      if (event.type === "final") final = event;
    }
    if (!final || final.type !== "final") throw new ClientError("unreachable", "the token stream ended without a final event");
    if (!json) io.stdout.write("\n");
    return finished(final, io);
  }

  const submitted = await client.submit(prompt, params, { signal });
  if (!flags.wait) {
    if (json) line(io.stdout, submitted);
    else io.stdout.write(`${submitted.requestId} ${submitted.status} (up to ${submitted.estimatedTokens} tokens reserved)\n`);
    return EXIT.ok;
  }
  const progress = new Progress(io.stderr, submitted.requestId);
  let final: RequestStatus;
  try {
    final = await client.wait(submitted.requestId, { signal, onStatus: (status) => progress.update(status) });
  } finally {
    progress.stop();
  }
  if (json) line(io.stdout, final);
  else io.stdout.write(outputText(final));
  return finished(final, io);
};

const status: Command = async (client, args, io, signal) => {
  const { positional, flags } = parseCommandArgs(args, { json: "boolean" }, { count: 1, what: "one request id" });
  const current = await client.status(positional[0] as string, { signal });
  if (flags.json) line(io.stdout, current);
  else io.stdout.write(statusText(current));
  // The status is shown either way; the exit code says whether it is a failure, as submit --wait's does.
  return current.status === "failed" || current.status === "cancelled" ? EXIT.failed : EXIT.ok;
};

const cancel: Command = async (client, args, io) => {
  const { positional, flags } = parseCommandArgs(args, { json: "boolean" }, { count: 1, what: "one request id" });
  const after = await client.cancel(positional[0] as string);
  if (flags.json) line(io.stdout, after);
  else io.stdout.write(`${after.requestId} ${after.status}${cancelNote(after.status)}\n`);
  // The cancel was taken: that it found the request finished is not a failure of the command.
  return EXIT.ok;
};

/** A running request's cancel waits for the worker (up to 10 s); past that it is still under way. */
function cancelNote(state: string): string {
  if (state === "cancelled") return "";
  if (state === "completed" || state === "failed") return " (it had finished already)";
  return " (cancel requested; the worker has not stopped it yet)";
}

const quota: Command = async (client, args, io) => {
  const { flags } = parseCommandArgs(args, { json: "boolean" }, { count: 0, what: "" });
  const current = await client.quota();
  if (flags.json) line(io.stdout, current);
  else io.stdout.write(quotaText(current, io.stdout.isTTY === true));
  return EXIT.ok;
};

const COMMANDS: Record<ClientCommand, Command> = { submit, status, cancel, quota, batch };
