import { spawn } from "node:child_process";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { summarize, type Summary } from "../lib/stats.js";
import { cgroupfsFloor } from "./cgroupfs.js";

/**
 * What a process joining a cgroup costs (a cgroup.procs write, as aurae-shim does 7 times per
 * Start here: itself into the shims' cgroup, the program into its leaf and 5 v1 hierarchies),
 * after `idleMs` without a join by this process, and right after another. The kernel's
 * cgroup_threadgroup_rwsem makes a writer wait for an RCU grace period unless another writer
 * went just before, so the first join after a quiet spell is the slow one; other work on the
 * machine that moves processes between cgroups can make a quiet spell less quiet.
 * Undefined on hosts without this hybrid layout's unified hierarchy.
 */
export async function cgroupJoinCost(runs: number, idleMs = 50): Promise<{ afterIdle: Summary; backToBack: Summary } | undefined> {
  const floor = cgroupfsFloor();
  if (!floor?.migrate) {
    floor?.cleanup();
    return undefined;
  }
  const child = spawn("sleep", ["600"], { stdio: "ignore" });
  const first: number[] = [];
  const next: number[] = [];
  try {
    await once(child, "spawn");
    for (let i = 0; i < runs; i++) {
      await sleep(idleMs);
      first.push(floor.migrate(child.pid!));
      next.push(floor.migrate(child.pid!));
    }
  } finally {
    child.kill("SIGKILL");
    if (child.exitCode === null && child.signalCode === null) await once(child, "exit");
    floor.cleanup();
  }
  return { afterIdle: summarize(first), backToBack: summarize(next) };
}
