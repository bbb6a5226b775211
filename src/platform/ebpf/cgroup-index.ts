import fs from "node:fs";
import path from "node:path";

/**
 * Maps the cgroup ids an eBPF program read in the kernel (kernfs node ids, which are the inode
 * numbers of the cgroup directories) back to directories under one subtree of every cgroup
 * hierarchy (the daemon's cgroup parent). Only that subtree is ever walked, on a miss.
 */

export interface CgroupMounts {
  /** mount point of the cgroup v2 hierarchy, if any */
  v2?: string;
  /** mount point of each v1 hierarchy, indexed like /proc/cgroups (kernel subsystem id) */
  v1BySubsys: (string | undefined)[];
}

/** Reads the hierarchies from /proc/self/mountinfo and the subsystem order from /proc/cgroups. */
export function readCgroupMounts(mountinfo = "/proc/self/mountinfo", procCgroups = "/proc/cgroups"): CgroupMounts {
  const byController = new Map<string, string>();
  let v2: string | undefined;
  for (const line of fs.readFileSync(mountinfo, "utf8").split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(" ");
    const right = line.slice(sep + 3).split(" ");
    const root = left[3];
    const mountPoint = unescapeMount(left[4] ?? "");
    const fstype = right[0];
    if (root !== "/") continue; // a bind of a sub-cgroup: paths would not be relative to the root
    if (fstype === "cgroup2") v2 ??= mountPoint;
    else if (fstype === "cgroup") {
      for (const opt of (right[2] ?? "").split(",")) if (!byController.has(opt)) byController.set(opt, mountPoint);
    }
  }
  const v1BySubsys: (string | undefined)[] = [];
  let text = "";
  try {
    text = fs.readFileSync(procCgroups, "utf8");
  } catch {
    /* no v1 at all */
  }
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const [name, hierarchy] = line.split(/\s+/);
    v1BySubsys.push(hierarchy !== "0" && name ? byController.get(name) : undefined);
  }
  return { v2, v1BySubsys };
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface CgroupIds {
  cgroupV2Id: bigint;
  cgroupV1Ids: bigint[];
}

const NEGATIVE_CACHE_LIMIT = 4096;

export class CgroupIndex {
  private readonly mounts: CgroupMounts;
  /** (mount point) -> (inode -> path relative to the subtree; "" is the subtree itself) */
  private readonly known = new Map<string, Map<bigint, string>>();
  /** ids seen outside the subtree after a fresh walk */
  private readonly outside = new Set<string>();

  /** @param subtree the cgroup, relative to each hierarchy's root, whose descendants we index */
  constructor(readonly subtree: string, mounts?: CgroupMounts) {
    this.mounts = mounts ?? readCgroupMounts();
  }

  /**
   * The cgroup of `ids` relative to the subtree (e.g. "c1/_"), trying cgroup v2 first, then
   * each v1 hierarchy; undefined when the cgroup is not under the subtree on any of them.
   */
  resolve(ids: CgroupIds): string | undefined {
    if (this.mounts.v2 && ids.cgroupV2Id > 1n) {
      const p = this.lookup(this.mounts.v2, ids.cgroupV2Id);
      if (p !== undefined) return p;
    }
    const tried = new Set<string>();
    for (let i = 0; i < ids.cgroupV1Ids.length; i++) {
      const mount = this.mounts.v1BySubsys[i];
      const id = ids.cgroupV1Ids[i]!;
      if (!mount || id <= 1n || tried.has(mount)) continue;
      tried.add(mount);
      const p = this.lookup(mount, id);
      if (p !== undefined) return p;
    }
    return undefined;
  }

  private lookup(mount: string, id: bigint): string | undefined {
    const key = `${mount}\0${id}`;
    if (this.outside.has(key)) return undefined;
    let map = this.known.get(mount);
    const hit = map?.get(id);
    if (hit !== undefined) return hit;
    map = this.walk(mount);
    this.known.set(mount, map);
    const found = map.get(id);
    if (found !== undefined) return found;
    if (this.outside.size >= NEGATIVE_CACHE_LIMIT) this.outside.clear();
    this.outside.add(key);
    return undefined;
  }

  private walk(mount: string): Map<bigint, string> {
    const map = new Map<bigint, string>();
    const top = path.join(mount, this.subtree);
    const visit = (dir: string, rel: string) => {
      let st: fs.BigIntStats;
      try {
        st = fs.statSync(dir, { bigint: true });
      } catch {
        return; // removed meanwhile
      }
      map.set(st.ino, rel);
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) if (e.isDirectory()) visit(path.join(dir, e.name), rel ? `${rel}/${e.name}` : e.name);
    };
    visit(top, "");
    return map;
  }
}
