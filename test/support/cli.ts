/** `ml-inference <args>` as a child process with only the client settings given (no server URL leaks in). */
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function cli(args: string[], env: { url: string; key?: string }, timeoutMs = 60_000): Promise<Run> {
  const base: Record<string, string> = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? tmpdir(), LOG_LEVEL: "warn" };
  const settings = { ML_INFERENCE_URL: env.url, ...(env.key ? { ML_INFERENCE_API_KEY: env.key } : {}) };
  return new Promise((done) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "src/main.ts", ...args],
      { cwd: ROOT, env: { ...base, ...settings }, timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => done({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

/** A run as an assertion message shows it. */
export const show = (run: Run) => `exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`;
