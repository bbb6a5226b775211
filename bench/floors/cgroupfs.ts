import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The floor for Allocate+Free of a cell with cpu, memory and pids limits: the same cgroupfs
 * operations the daemon's driver (src/platform/cgroups/driver.ts createCell/removeCell) does on
 * this hybrid host, done directly with fs.*Sync under a temporary parent this process creates
 * (and removes) in each hierarchy:
 *   mkdir <h>/<parent>/<cell> in cpu, cpuacct, cpuset, memory, pids (v1) and unified (v2 tracker);
 *   write cpu.cfs_quota_us (the period asked for is the default, which a new cgroup has),
 *   memory.limit_in_bytes, pids.max; rmdir each (no process leaf: nothing ever started).
 * The parent gets cpuset cpus/mems and cgroup.clone_children=1, as the driver's parent does.
 */
export interface CgroupfsFloor {
  /** the hierarchies touched, in order */
  hierarchies: string[];
  /** one allocate+free of a cell: mkdirs, limit writes, rmdirs */
  allocateFree(): void;
  /**
   * Moves process `pid` (one this process started) into a cgroup of the floor's parent in the
   * unified (cgroup2) hierarchy, alternating between two, and returns the time of the
   * cgroup.procs write in ms. Undefined without a unified hierarchy.
   */
  migrate?(pid: number): number;
  cleanup(): void;
}

const ROOT = "/sys/fs/cgroup";

export function cgroupfsFloor(): CgroupfsFloor | undefined {
  const v1 = ["cpu", "cpuacct", "cpuset", "memory", "pids"].filter((h) => existsSync(join(ROOT, h, "cgroup.procs")));
  if (!v1.includes("cpu") || !v1.includes("memory") || !v1.includes("pids")) return undefined; // not this hybrid layout
  const hierarchies = [...v1];
  if (existsSync(join(ROOT, "unified", "cgroup.procs"))) hierarchies.push("unified");
  const parentName = `aurae-bench-floor-${process.pid}`;
  const made: string[] = [];
  try {
    for (const h of hierarchies) {
      const d = join(ROOT, h, parentName);
      mkdirSync(d);
      made.push(d);
      if (h === "cpuset") {
        for (const f of ["cpuset.cpus", "cpuset.mems"]) writeFileSync(join(d, f), readFileSync(join(ROOT, h, f), "utf8").trim());
        writeFileSync(join(d, "cgroup.clone_children"), "1");
      }
    }
  } catch (err) {
    for (const d of made) rmdirSync(d);
    throw err;
  }
  const writes: Array<[string, string, string]> = [
    ["cpu", "cpu.cfs_quota_us", "50000"],
    ["memory", "memory.limit_in_bytes", String(256 * 2 ** 20)],
    ["pids", "pids.max", "100"],
  ];
  let seq = 0;
  // two leaves in the unified hierarchy to move a process between (migrate)
  const unified = hierarchies.includes("unified") ? join(ROOT, "unified", parentName) : undefined;
  const leaves = unified ? [join(unified, "m0"), join(unified, "m1")] : [];
  for (const l of leaves) mkdirSync(l);
  let flip = 0;
  return {
    hierarchies,
    migrate: unified
      ? (pid: number) => {
          const t = Number(process.hrtime.bigint());
          writeFileSync(join(leaves[flip++ % 2]!, "cgroup.procs"), String(pid));
          return (Number(process.hrtime.bigint()) - t) / 1e6;
        }
      : undefined,
    allocateFree() {
      const name = `c${++seq}`;
      const dirs = hierarchies.map((h) => join(ROOT, h, parentName, name));
      for (const d of dirs) mkdirSync(d);
      for (const [h, file, value] of writes) writeFileSync(join(ROOT, h, parentName, name, file), value);
      for (const d of dirs) rmdirSync(d);
    },
    cleanup() {
      for (const d of [...leaves, ...made]) {
        try {
          rmdirSync(d);
        } catch {
          /* already gone */
        }
      }
    },
  };
}
