/**
 * Servers a suite starts for itself, on ports of its own, so it can kill and restart them without
 * touching the machine's servers. Only processes started here are ever killed (by PID).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./processes.js";

export interface OwnRedis {
  url: string;
  port: number;
  /** kill -9, then start again on the same port with no data. */
  restartEmpty(): Promise<void>;
  /** kill -9 and leave it down. */
  kill(): Promise<void>;
  /** Start again (empty) on the same port after kill(). */
  start(): Promise<void>;
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
    async kill() {
      child.kill("SIGKILL");
      await exited(child);
    },
    async start() {
      child = await start();
    },
    async stop() {
      child.kill("SIGKILL");
      await exited(child);
    },
  };
}

const PG_BIN = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin";

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, output }));
  });
}

async function mustRun(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<void> {
  const result = await run(command, args, env);
  if (result.code !== 0) throw new Error(`${command} ${args.join(" ")} exited ${result.code}:\n${result.output}`);
}

export interface OwnPostgres {
  url: string;
  /** `pg_ctl restart -m immediate`: every backend killed, crash recovery on start. */
  restartImmediate(): Promise<void>;
  stop(): Promise<void>;
}

/** A PostgreSQL cluster of its own (initdb in a temporary folder, run as the postgres user). */
export async function startPostgresServer(): Promise<OwnPostgres> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "mli-pg-"));
  await mustRun("chown", ["postgres", dir]);
  const asPostgres = (tool: string, args: string[]) => mustRun("runuser", ["-u", "postgres", "--", join(PG_BIN, tool), ...args]);
  await asPostgres("initdb", ["-D", join(dir, "data"), "-A", "trust", "-U", "postgres"]);
  const options = ["-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, "-l", join(dir, "log"), "-w"];
  await asPostgres("pg_ctl", ["-D", join(dir, "data"), ...options, "start"]);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async restartImmediate() {
      await asPostgres("pg_ctl", ["-D", join(dir, "data"), "-m", "immediate", ...options, "restart"]);
    },
    async stop() {
      await asPostgres("pg_ctl", ["-D", join(dir, "data"), "-m", "immediate", "-w", "stop"]).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface OwnRabbit {
  url: string;
  /** `rabbitmqctl stop`: the node goes away, its durable queues stay on disk. */
  stopNode(): Promise<void>;
  /** Starts the node again and waits until it accepts AMQP connections. */
  startNode(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A RabbitMQ node of its own beside the machine's: its own node name, ports, config, cookie,
 * mnesia and log folders, started with the server script directly (the /usr/sbin wrapper switches
 * user and cookie).
 */
export async function startRabbitServer(): Promise<OwnRabbit> {
  const port = await freePort();
  const distPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "mli-rmq-"));
  const node = `mli${port}@localhost`;
  for (const sub of ["mnesia", "log"]) mkdirSync(join(dir, sub));
  writeFileSync(join(dir, "rabbitmq.conf"), `listeners.tcp.local = 127.0.0.1:${port}\n`);
  writeFileSync(join(dir, "enabled_plugins"), "[].\n");
  writeFileSync(join(dir, "env.conf"), "ERL_EPMD_ADDRESS=127.0.0.1\n");
  writeFileSync(join(dir, ".erlang.cookie"), `mli${randomUUID().replace(/-/g, "")}`, { mode: 0o400 });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: dir,
    RABBITMQ_CONF_ENV_FILE: join(dir, "env.conf"),
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq.conf"),
    RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: join(dir, "log"),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
    ERL_FLAGS: "-kernel inet_dist_use_interface {127,0,0,1}",
  };
  let child: ChildProcess | undefined;
  const startNode = async () => {
    child = spawn("/usr/lib/rabbitmq/bin/rabbitmq-server", [], { env, stdio: "ignore", cwd: dir });
    await waitForPort(port, 120_000);
  };
  const stopNode = async () => {
    await mustRun("/usr/lib/rabbitmq/bin/rabbitmqctl", ["-n", node, "stop"], env);
    if (child) await exited(child);
  };
  await startNode();
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    stopNode,
    startNode,
    async stop() {
      await stopNode().catch(() => child?.kill("SIGKILL"));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
