/** CPU and memory of the processes involved, sampled from /proc (Linux), grouped by component. */
import { readFileSync, readdirSync } from "node:fs";
import { CLK_TCK } from "./settings.js";

export interface CpuSnapshot {
  at: number;
  total: { busy: number; all: number };
  byGroup: Map<string, number>;
}
export interface CpuSnapshotDelta {
  seconds: number;
  /** % of one core, by process group. */
  byGroup: Record<string, number>;
  /** % of the whole machine busy (all cores = 100 × cores). */
  machineBusyPct: number;
  cores: number;
}

/** pid → name of the bench's own child processes, each counted as a group of its own. */
export const namedPids = new Map<number, string>();

function groupOf(pid: number, comm: string): string | null {
  if (pid === process.pid) return "bench (load generator)";
  const named = namedPids.get(pid);
  if (named) return named;
  if (comm.startsWith("postgres")) return "postgresql";
  if (comm.startsWith("redis-server")) return "redis";
  if (comm === "beam.smp" || comm.startsWith("erl_child") || comm === "epmd" || comm === "inet_gethost") return "rabbitmq";
  return null;
}

export function cpuSnapshot(): CpuSnapshot {
  const byGroup = new Map<string, number>();
  let pids: string[] = [];
  try {
    pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    /* not Linux */
  }
  let accounted = 0;
  for (const dir of pids) {
    try {
      const stat = readFileSync(`/proc/${dir}/stat`, "latin1");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const fields = stat.slice(close + 2).split(" ");
      // utime + stime, and for the servers cutime + cstime: a PostgreSQL backend that exits has its
      // ticks moved to the postmaster's children's time, so its group's sum never goes down. Not for
      // the bench itself, whose children are the components, counted on their own.
      const own = Number(dir) === process.pid;
      const ticks = Number(fields[11]) + Number(fields[12]) + (own ? 0 : Number(fields[13]) + Number(fields[14]));
      accounted += ticks;
      const group = groupOf(Number(dir), comm);
      if (group) byGroup.set(group, (byGroup.get(group) ?? 0) + ticks);
    } catch {
      /* process went away */
    }
  }
  let busy = 0;
  let all = 0;
  try {
    const cpu = readFileSync("/proc/stat", "latin1").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    all = cpu.reduce((a, b) => a + b, 0);
    busy = all - (cpu[3] ?? 0) - (cpu[4] ?? 0);
  } catch {
    /* not Linux */
  }
  void accounted;
  return { at: performance.now(), total: { busy, all }, byGroup };
}

export function cpuDelta(start: CpuSnapshot): CpuSnapshotDelta {
  const end = cpuSnapshot();
  const seconds = (end.at - start.at) / 1000;
  const byGroup: Record<string, number> = {};
  let known = 0;
  for (const [group, ticks] of end.byGroup) {
    const pct = ((ticks - (start.byGroup.get(group) ?? 0)) / CLK_TCK / seconds) * 100;
    byGroup[group] = pct;
    known += pct;
  }
  let cores = 1;
  try {
    cores = readFileSync("/proc/stat", "latin1").split("\n").filter((l) => /^cpu\d+ /.test(l)).length || 1;
  } catch {
    /* */
  }
  const busyTicks = end.total.busy - start.total.busy;
  const allTicks = end.total.all - start.total.all;
  const machineBusyPct = allTicks > 0 ? (busyTicks / allTicks) * 100 * cores : Number.NaN;
  byGroup["other processes"] = Math.max(0, machineBusyPct - known);
  return { seconds, byGroup, machineBusyPct, cores };
}

export function readMemKb(pid: number): { rss: number; hwm: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "latin1");
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
    return { rss, hwm };
  } catch {
    return null;
  }
}

export function machineCores(): number {
  try {
    return readFileSync("/proc/stat", "latin1").split("\n").filter((l) => /^cpu\d+ /.test(l)).length || 1;
  } catch {
    return 1;
  }
}
