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

/** Sum of RSS (and PSS) in MB over the daemon and all its descendants. */
export function treeMemory(pid: number): { rss: number; pss: number; processes: number } {
  const all = [pid, ...descendants(pid)];
  let rss = 0;
  let pss = 0;
  for (const p of all) {
    rss += rssMb(p);
    pss += pssMb(p);
  }
  return { rss, pss, processes: all.length };
}

/** The comm name of a process, or undefined when gone. */
export function comm(pid: number): string | undefined {
  return readOr(`/proc/${pid}/comm`)?.trim();
}
