import { readFileSync, readdirSync } from "node:fs";

/** Reading /proc for the benchmarks: memory and CPU of the daemon and of its descendants. */

const CLK_TCK = 100; // USER_HZ on Linux x86_64

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Resident set size in MB (VmRSS), or 0 when the process is gone. */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readOr(`/proc/${pid}/status`) ?? "");
  return m ? Number(m[1]) / 1024 : 0;
}

/** Proportional set size in MB (shared pages divided among sharers), or 0 when gone. */
export function pssMb(pid: number): number {
  const m = /Pss:\s+(\d+) kB/.exec(readOr(`/proc/${pid}/smaps_rollup`) ?? "");
  return m ? Number(m[1]) / 1024 : 0;
}

/** utime + stime of the process (its own threads; not children) in ms. */
export function cpuMs(pid: number): number {
  const stat = readOr(`/proc/${pid}/stat`);
  if (!stat) return 0;
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields after "(comm)": state is index 0, utime is field 14 overall -> index 11
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

/** Direct children of `pid` (all threads). */
export function children(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    const s = readOr(`/proc/${pid}/task/${t}/children`);
    if (s) for (const c of s.trim().split(/\s+/)) if (c) out.push(Number(c));
  }
  return out;
}

/** Every descendant of `pid` (not `pid` itself). */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = children(pid);
  while (queue.length) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...children(p));
  }
  return out;
}

/** The comm name of a process, or undefined when gone. */
export function comm(pid: number): string | undefined {
  return readOr(`/proc/${pid}/comm`)?.trim();
}

/** One process of a tree: its pid, parent, name and memory. */
export interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  rssMb: number;
  pssMb: number;
}

/** The descendants of `pid` with their name and memory (processes gone meanwhile left out). */
export function descendantInfo(pid: number): ProcInfo[] {
  const out: ProcInfo[] = [];
  const queue = children(pid).map((c) => [c, pid] as const);
  while (queue.length) {
    const [p, parent] = queue.shift()!;
    const name = comm(p);
    if (name === undefined) continue;
    out.push({ pid: p, ppid: parent, comm: name, rssMb: rssMb(p), pssMb: pssMb(p) });
    for (const c of children(p)) queue.push([c, p]);
  }
  return out;
}

/** PSS in MB summed by process name, e.g. { "aurae-shim": 3.1, sleep: 7.0 }. */
export function pssByName(procs: ProcInfo[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of procs) out[p.comm] = (out[p.comm] ?? 0) + p.pssMb;
  return out;
}

/** How many pids (processes and threads: each task takes one) are in use on the machine, and the limit. */
export function pidUsage(): { tasks: number; pidMax: number; threadsMax: number } {
  let tasks = 0;
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      tasks += readdirSync(`/proc/${p}/task`).length;
    } catch {
      /* exited meanwhile */
    }
  }
  const num = (f: string) => Number(readOr(f)?.trim() ?? NaN);
  return { tasks, pidMax: num("/proc/sys/kernel/pid_max"), threadsMax: num("/proc/sys/kernel/threads-max") };
}

/** Open file descriptors of a process and its soft RLIMIT_NOFILE. */
export function fdUsage(pid: number): { fds: number; limit: number } {
  let fds = 0;
  try {
    fds = readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    /* gone */
  }
  const limit = Number(/Max open files\s+(\d+)/.exec(readOr(`/proc/${pid}/limits`) ?? "")?.[1] ?? Infinity);
  return { fds, limit };
}

/** inotify watches the process holds (over all its inotify instances), from fdinfo. */
export function inotifyWatches(pid: number): number {
  let n = 0;
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fdinfo`);
  } catch {
    return 0;
  }
  for (const fd of fds) {
    const info = readOr(`/proc/${pid}/fdinfo/${fd}`);
    if (info?.includes("inotify wd:")) n += info.split("\n").filter((l) => l.startsWith("inotify wd:")).length;
  }
  return n;
}

/** Processes in the given states among `pids` (e.g. "Z" for zombies). */
export function inState(pids: number[], state: string): number[] {
  return pids.filter((p) => {
    const s = readOr(`/proc/${p}/stat`);
    return s !== undefined && s.slice(s.lastIndexOf(")") + 2, s.lastIndexOf(")") + 3) === state;
  });
}

/** Pids of every process whose command line contains `text` (e.g. a daemon's runtime dir). */
export function processesMentioning(text: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    const cmd = readOr(`/proc/${p}/cmdline`);
    if (cmd?.includes(text)) out.push(Number(p));
  }
  return out;
}
