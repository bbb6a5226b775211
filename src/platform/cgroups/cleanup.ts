/**
 * Forced removal of a whole cgroup subtree in every hierarchy: kills every process in it
 * (cgroup.kill on cgroup2, SIGKILL to each member on v1), waits until they are gone, then
 * removes the directories deepest first. For test cleanup after a failure and for an operator
 * clearing what a killed daemon left behind; never used on a path we did not create.
 */
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { realCgroupFs, type CgroupFs } from "./cgroupfs.js";
import type { CgroupLayout } from "./layout.js";
import { signalPid } from "./tracker.js";

function mounts(layout: CgroupLayout): string[] {
  const set = new Set<string>(Object.values(layout.v1).filter((m): m is string => !!m));
  if (layout.unified) set.add(layout.unified);
  return [...set];
}

/** Every directory of the subtree at `top`, parents before children. */
function walk(cfs: CgroupFs, top: string): string[] {
  if (!cfs.exists(top)) return [];
  const out = [top];
  for (let i = 0; i < out.length; i++) {
    for (const d of cfs.subdirs(out[i]!)) out.push(path.join(out[i]!, d));
  }
  return out;
}

function procsOf(cfs: CgroupFs, dir: string): number[] {
  try {
    return cfs.read(path.join(dir, "cgroup.procs")).split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Kills everything in `<mount>/<parent>` of every hierarchy and removes those directories.
 * Returns the directories that could not be removed (empty on success).
 */
export async function forceRemoveCgroupTree(layout: CgroupLayout, parent: string, cfs: CgroupFs = realCgroupFs): Promise<string[]> {
  const tops = mounts(layout).map((m) => path.join(m, parent));
  if (layout.unified) {
    const top = path.join(layout.unified, parent);
    try { cfs.write(path.join(top, "cgroup.kill"), "1"); } catch { /* absent or old kernel */ }
  }
  for (let round = 0; round < 200; round++) {
    let alive = 0;
    for (const top of tops) {
      for (const d of walk(cfs, top)) {
        if (round === 0 && top.startsWith(layout.v1.freezer ?? "\0")) {
          try { cfs.write(path.join(d, "freezer.state"), "THAWED"); } catch { /* not a freezer cgroup */ }
        }
        for (const pid of procsOf(cfs, d)) {
          alive++;
          signalPid(pid, "SIGKILL");
        }
      }
    }
    if (alive === 0) break;
    await sleep(Math.min(1 + round, 25));
  }
  const left: string[] = [];
  for (const top of tops) {
    for (const d of walk(cfs, top).reverse()) {
      try {
        cfs.rmdir(d);
      } catch {
        left.push(d);
      }
    }
  }
  return left;
}
