/**
 * Where the cgroup hierarchies are mounted and which controllers each holds, detected from
 * /proc/self/mountinfo (and the cgroup2 root's cgroup.controllers).
 *
 *   v2      one cgroup2 mount holds every controller we use
 *   v1      only v1 hierarchies (one per controller, or comounted like "cpu,cpuacct")
 *   hybrid  v1 controllers plus a cgroup2 mount (our hosts: the cgroup2 mount at
 *           /sys/fs/cgroup/unified has no controller we use, but cgroup.kill, cgroup.events
 *           and cgroup.procs work in its children)
 */
import fs from "node:fs";
import path from "node:path";
import type { ControllerName } from "./limits.js";

export type CgroupMode = "v2" | "v1" | "hybrid";

export interface CgroupLayout {
  mode: CgroupMode;
  /** mount point of each v1 controller's hierarchy (comounted controllers share a path) */
  v1: Partial<Record<ControllerName | "freezer", string>>;
  /** the cgroup2 mount point, when there is one */
  unified?: string;
  /** controllers the cgroup2 root offers (its cgroup.controllers) */
  v2Controllers: string[];
}

const MANAGED: readonly (ControllerName | "freezer")[] = ["cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"];

export interface CgroupMount {
  fstype: "cgroup" | "cgroup2";
  mountPoint: string;
  /** v1 super options (controllers and name=...) */
  options: string[];
}

/** Unescapes the octal escapes mountinfo uses for spaces and such. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split("\n")) {
    if (!line) continue;
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(" ");
    const right = line.slice(sep + 3).split(" ");
    const fstype = right[0];
    if (fstype !== "cgroup" && fstype !== "cgroup2") continue;
    if (left[3] !== "/") continue; // a bind mount of a subtree is not a hierarchy root
    out.push({ fstype, mountPoint: unescape(left[4] ?? ""), options: (right[2] ?? "").split(",") });
  }
  return out;
}

/** Builds the layout from mount entries; `readControllers` reads the cgroup2 root's controllers. */
export function layoutFromMounts(mounts: CgroupMount[], readControllers: (mountPoint: string) => string[]): CgroupLayout {
  const v1: CgroupLayout["v1"] = {};
  let unified: string | undefined;
  for (const m of mounts) {
    if (m.fstype === "cgroup2") {
      unified ??= m.mountPoint;
      continue;
    }
    for (const c of MANAGED) if (m.options.includes(c) && !v1[c]) v1[c] = m.mountPoint;
  }
  const v2Controllers = unified ? readControllers(unified) : [];
  const anyV1 = (["cpu", "cpuset", "memory", "pids"] as const).some((c) => v1[c]);
  const mode: CgroupMode = !unified ? "v1" : anyV1 ? "hybrid" : "v2";
  return { mode, v1, unified, v2Controllers };
}

export function detectCgroupLayout(mountinfoPath = "/proc/self/mountinfo"): CgroupLayout {
  const mounts = parseCgroupMounts(fs.readFileSync(mountinfoPath, "utf8"));
  return layoutFromMounts(mounts, (mp) => {
    try {
      return fs.readFileSync(path.join(mp, "cgroup.controllers"), "utf8").trim().split(/\s+/).filter(Boolean);
    } catch {
      return [];
    }
  });
}

/** A pure v2 layout rooted at `root` (tests: a temporary directory laid out like cgroupfs). */
export function v2Layout(root: string, controllers = ["cpu", "cpuset", "memory", "pids"]): CgroupLayout {
  return { mode: "v2", v1: {}, unified: root, v2Controllers: controllers };
}

/** A pure v1 layout with one hierarchy per controller under `root` (tests). */
export function v1Layout(root: string): CgroupLayout {
  const v1: CgroupLayout["v1"] = {};
  for (const c of MANAGED) v1[c] = path.join(root, c);
  return { mode: "v1", v1, v2Controllers: [] };
}
