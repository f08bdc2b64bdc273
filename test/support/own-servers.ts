/**
 * Servers a suite starts for itself, on ports of its own, so it can kill and restart them without
 * touching the machine's servers. Only processes started here are ever killed (by PID).
 */
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { freePort } from "./processes.js";

export interface OwnRedis {
  url: string;
  port: number;
  /** kill -9, then start again on the same port with no data. */
  restartEmpty(): Promise<void>;
  stop(): Promise<void>;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port });
      socket.once("connect", () => (socket.destroy(), resolve(true)));
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once("exit", () => resolve()));
}

export async function startRedisServer(): Promise<OwnRedis> {
  const port = await freePort();
  const start = async () => {
    const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore",
    });
    child.once("error", (error) => {
      throw new Error(`redis-server could not start (is it installed?): ${error.message}`);
    });
    await waitForPort(port, 10_000);
    return child;
  };
  let child = await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async restartEmpty() {
      child.kill("SIGKILL");
      await exited(child);
      child = await start();
    },
    async stop() {
      child.kill("SIGKILL");
      await exited(child);
    },
  };
}
