import { existsSync, readFileSync, readdirSync, rmdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { processesMentioning } from "./proc.js";

/**
 * What a bench daemon left behind under its own cgroup parent (a unique name per daemon, so
 * nothing here belongs to anyone else): directories and the processes still in them.
 */
const ROOT = "/sys/fs/cgroup";

export interface Leftovers {
  dirs: string[];
  pids: number[];
}

function walk(dir: string, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name), out);
  out.push(dir); // children first
}

export function findLeftovers(cgroupParent: string): Leftovers {
  const dirs: string[] = [];
  const pids = new Set<number>();
  let hierarchies: string[] = [];
  try {
    hierarchies = readdirSync(ROOT);
  } catch {
    return { dirs, pids: [] };
  }
  for (const h of hierarchies) {
    const top = join(ROOT, h, cgroupParent);
    if (!existsSync(top) || !statSync(top).isDirectory()) continue;
    const found: string[] = [];
    walk(top, found);
    for (const d of found) {
      dirs.push(d);
      try {
        for (const p of readFileSync(join(d, "cgroup.procs"), "utf8").split("\n")) if (p) pids.add(Number(p));
      } catch {
        /* gone meanwhile */
      }
    }
  }
  return { dirs, pids: [...pids] };
}

/** SIGKILLs the leftover processes, then removes the directories (children first). */
export async function removeLeftovers(l: Leftovers): Promise<void> {
  for (const p of l.pids) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  for (const d of l.dirs) {
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(d);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT") break;
        if (code !== "EBUSY") throw err;
        await new Promise((r) => setTimeout(r, 20)); // killed processes are still exiting
      }
    }
  }
}

/**
 * A one-line description for a note, or "" when clean. Cleans up what it finds. Besides the
 * cgroups, `runtimeDir` (the daemon's own temp dir) finds processes outside them: every shim's
 * command line names its exit file under that dir.
 */
export async function checkClean(cgroupParent: string, runtimeDir?: string): Promise<string> {
  const l = findLeftovers(cgroupParent);
  const strays = runtimeDir ? processesMentioning(runtimeDir).filter((p) => !l.pids.includes(p)) : [];
  if (l.dirs.length === 0 && l.pids.length === 0 && strays.length === 0) return "";
  await removeLeftovers({ dirs: l.dirs, pids: [...l.pids, ...strays] });
  const stray = strays.length ? ` and ${strays.length} processes outside them naming its runtime dir` : "";
  return `daemon left ${l.dirs.length} cgroup dirs, ${l.pids.length} processes in them${stray} (removed by the bench)`;
}
