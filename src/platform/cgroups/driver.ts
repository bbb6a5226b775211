/**
 * The cgroup driver: creates, limits and removes the cgroups of cells, places processes in
 * them and finds the cell of a process. One driver serves v2, v1 and hybrid hosts; each
 * controller is written where the detected layout puts it.
 *
 * Layout, in every hierarchy we use (<mount>/<parent>/...):
 *
 *   <parent>/                    owned by the daemon (created by init, removed by destroy)
 *     <cell>/                    the cell's limits; nested cells are subdirectories
 *       _/                       the cell's own processes (created on the first start)
 *         <executable>/          tracker hierarchy only: one leaf per executable
 *       <child-cell>/...
 *
 * Cell labels never start with "_", so "_" never collides with a child cell. Processes sit only
 * in leaves: "_" in v1 controller hierarchies, "_/<executable>" in the tracker hierarchy (the
 * cgroup2 mount when there is one, whether or not it has controllers; else the v1 freezer).
 *
 * The tracker hierarchy also holds `<parent>/_shims`, the cgroup of every aurae-shim: out of the
 * daemon's own cgroup, so a service manager that stops the daemon's unit by its cgroup does not
 * take the shims (and the exit statuses they keep) with it.
 */
import path from "node:path";
import fs from "node:fs";
import { CgroupFsError, realCgroupFs, type CgroupFs } from "./cgroupfs.js";
import { CgroupLimitError, type CellLimits, type CgroupWrite, type ControllerName } from "./limits.js";
import type { CgroupLayout, CgroupMode } from "./layout.js";
import { freezerTracker, v2Tracker, type ProcessTracker } from "./tracker.js";
import { CPU_PERIOD_DEFAULT_US, checkCpu, checkV1RatioWithin, cpuWritesV1, cpuWritesV2 } from "./controllers/cpu.js";
import { checkCpuset, checkWithinParent, cpusetWrites } from "./controllers/cpuset.js";
import { checkMemory, memoryWritesV1, memoryWritesV2 } from "./controllers/memory.js";
import { checkPids, pidsWrites } from "./controllers/pids.js";

/** The leaf holding a cell's own processes. */
export const PROCESS_LEAF = "_";
/** The cgroup (below the parent, tracker hierarchy) of the daemon's aurae-shims. */
export const SHIMS_CGROUP = "_shims";

export interface CgroupDriverOptions {
  layout: CgroupLayout;
  /** the daemon's parent cgroup, relative to every hierarchy's root (e.g. "aurae") */
  parent: string;
  fs?: CgroupFs;
}

interface Hierarchy {
  mount: string;
  version: "v1" | "v2";
  /** controllers whose limits are written in this hierarchy */
  controllers: ControllerName[];
  /** holds one leaf per executable and kills/waits for them */
  tracker: boolean;
}

const V2_CONTROLLERS: readonly ControllerName[] = ["cpu", "cpuset", "memory", "pids"];
const ALL: readonly ControllerName[] = ["cpu", "cpuacct", "cpuset", "memory", "pids"];

export class CgroupDriver {
  readonly layout: CgroupLayout;
  readonly mode: CgroupMode;
  /** true when every controller we use lives on cgroup v2 (Allocate's `cgroup_v2`) */
  readonly cgroupV2: boolean;
  readonly tracker: ProcessTracker;
  readonly parent: string;
  private readonly fs: CgroupFs;
  private readonly hierarchies: Hierarchy[] = [];
  private readonly trackerHierarchy: Hierarchy;
  /** "+cpu +memory ..." enabled in every cell of a v2 hierarchy with controllers */
  private subtreeEnable = "";
  /** directories init created, deepest last */
  private readonly created: string[] = [];

  constructor(opts: CgroupDriverOptions) {
    this.layout = opts.layout;
    this.mode = opts.layout.mode;
    this.fs = opts.fs ?? realCgroupFs;
    const parent = opts.parent.replace(/^\/+|\/+$/g, "");
    if (!parent || parent.split("/").some((s) => s === "" || s === "." || s === "..")) {
      throw new Error(`cgroup parent '${opts.parent}' must be a relative path below the hierarchy root`);
    }
    this.parent = parent;

    const byMount = new Map<string, Hierarchy>();
    const add = (mount: string, version: "v1" | "v2") => {
      let h = byMount.get(mount);
      if (!h) {
        h = { mount, version, controllers: [], tracker: false };
        byMount.set(mount, h);
        this.hierarchies.push(h);
      }
      return h;
    };
    const { v1, unified, v2Controllers } = opts.layout;
    for (const c of ALL) {
      const m = v1[c];
      if (m) add(m, "v1").controllers.push(c);
      else if (unified && (c === "cpuacct" || v2Controllers.includes(c))) add(unified, "v2").controllers.push(c);
    }
    if (unified) this.trackerHierarchy = add(unified, "v2");
    else if (v1.freezer) this.trackerHierarchy = add(v1.freezer, "v1");
    else throw new Error("no cgroup2 mount and no v1 freezer hierarchy: executables could not be tracked");
    this.trackerHierarchy.tracker = true;
    this.tracker = unified ? v2Tracker(this.fs) : freezerTracker(this.fs);
    const used = this.hierarchies.filter((h) => h.controllers.some((c) => c !== "cpuacct"));
    this.cgroupV2 = used.length > 0 && used.every((h) => h.version === "v2");
  }

  /** Where a controller lives: its hierarchy's version, or undefined when unavailable. */
  controllerVersion(c: ControllerName): "v1" | "v2" | undefined {
    return this.hierarchyOf(c)?.version;
  }

  /** The directory of a cell (or the parent with "") in the hierarchy holding `c`. */
  controllerDir(c: ControllerName, cellPath: string): string | undefined {
    const h = this.hierarchyOf(c);
    return h && this.dir(h, cellPath);
  }

  /** Every directory of a cell, one per hierarchy. */
  cellDirs(cellPath: string): string[] {
    return this.hierarchies.map((h) => this.dir(h, cellPath));
  }

  /** The cgroup.procs files an aurae-shim joins itself: `<parent>/_shims` of the tracker hierarchy. */
  shimJoinFiles(): string[] {
    return [path.join(this.dir(this.trackerHierarchy, ""), SHIMS_CGROUP, "cgroup.procs")];
  }

  /** A cell's directory (the parent's with "") in the tracker hierarchy. */
  trackerDir(cellPath: string): string {
    return this.dir(this.trackerHierarchy, cellPath);
  }

  /** The tracker leaf of one executable. */
  executableDir(cellPath: string, executable: string): string {
    return path.join(this.dir(this.trackerHierarchy, cellPath), PROCESS_LEAF, executable);
  }

  /**
   * Creates the daemon's parent cgroup in every hierarchy and prepares it for cells. What an
   * earlier daemon left below it is kept: re-adoption decides (see `subtree`, `removeLeftover`).
   */
  init(): void {
    for (const h of this.hierarchies) {
      const segs = this.parent.split("/");
      for (let i = 1; i <= segs.length; i++) {
        const d = path.join(h.mount, ...segs.slice(0, i));
        if (this.fs.exists(d)) continue;
        this.fs.mkdir(d);
        this.created.push(d);
        if (h.version === "v1" && h.controllers.includes("cpuset")) this.copyCpuset(d);
      }
      const top = this.dir(h, "");
      if (h.version === "v1" && h.controllers.includes("cpuset")) {
        this.copyCpuset(top);
        // New cpuset cgroups below copy their parent's cpus and mems (and this flag).
        this.fs.write(path.join(top, "cgroup.clone_children"), "1");
      }
      if (h.version === "v2" && h.controllers.some((c) => c !== "cpuacct")) {
        const wanted = h.controllers.filter((c) => V2_CONTROLLERS.includes(c));
        for (let i = 0; i <= segs.length; i++) {
          this.enableControllers(path.join(h.mount, ...segs.slice(0, i)), wanted);
        }
        this.subtreeEnable = wanted.map((c) => `+${c}`).join(" ");
      }
    }
    const shims = path.join(this.dir(this.trackerHierarchy, ""), SHIMS_CGROUP);
    if (!this.fs.exists(shims)) {
      this.fs.mkdir(shims);
      this.created.push(shims);
    }
  }

  /** Removes only the directories init created (nothing that existed before it). */
  undoInit(): void {
    for (const d of [...this.created].sort((a, b) => b.length - a.length)) {
      try { this.fs.rmdir(d); } catch { /* in use meanwhile */ }
    }
    this.created.length = 0;
  }

  /**
   * Every cgroup below the parent, as paths relative to it ("a", "a/_", "a/_/web"), in any
   * hierarchy, parents before children.
   */
  subtree(): string[] {
    const seen = new Set<string>();
    for (const h of this.hierarchies) {
      const top = this.dir(h, "");
      const walk = (rel: string) => {
        for (const sub of this.fs.subdirs(rel ? path.join(top, rel) : top)) {
          const r = rel ? `${rel}/${sub}` : sub;
          seen.add(r);
          walk(r);
        }
      };
      if (this.fs.exists(top)) walk("");
    }
    return [...seen].sort((a, b) => a.split("/").length - b.split("/").length || (a < b ? -1 : 1));
  }

  /**
   * Kills every process in the cgroup `rel` (relative to the parent, with its subtree) in every
   * hierarchy and removes the directories. Returns the pids it killed.
   */
  async removeLeftover(rel: string): Promise<number[]> {
    const killed = new Set<number>();
    const dirsOf = (h: Hierarchy) => {
      const root = path.join(this.dir(h, ""), rel);
      if (!this.fs.exists(root)) return [];
      const out = [root];
      for (let i = 0; i < out.length; i++) for (const d of this.fs.subdirs(out[i]!)) out.push(path.join(out[i]!, d));
      return out;
    };
    const tracked = dirsOf(this.trackerHierarchy);
    for (const d of tracked) for (const p of this.tracker.procs(d)) killed.add(p);
    for (const d of tracked.reverse()) {
      await this.tracker.killAll(d);
      await this.tracker.waitEmpty(d, 10_000);
    }
    for (const h of this.hierarchies) {
      for (const d of dirsOf(h).reverse()) {
        for (const p of this.tracker.procs(d)) {
          killed.add(p);
          try { process.kill(p, "SIGKILL"); } catch { /* gone */ }
        }
        try {
          this.fs.rmdir(d);
        } catch (err) {
          if ((err as CgroupFsError).code !== "ENOENT") throw err;
        }
      }
    }
    return [...killed];
  }

  hasDir(dir: string): boolean {
    return this.fs.exists(dir);
  }

  /** true when a process runs in the cgroup `rel` (relative to the parent) or below, in any hierarchy */
  populated(rel: string): boolean {
    return this.hierarchies.some((h) => {
      const root = path.join(this.dir(h, ""), rel);
      const stack = [root];
      while (stack.length) {
        const d = stack.pop()!;
        if (this.tracker.procs(d).length > 0) return true;
        try {
          for (const sub of this.fs.subdirs(d)) stack.push(path.join(d, sub));
        } catch {
          // gone meanwhile
        }
      }
      return false;
    });
  }

  /** true when the cell's cgroup exists in every hierarchy */
  cellExists(cellPath: string): boolean {
    return this.hierarchies.every((h) => this.fs.exists(this.dir(h, cellPath)));
  }

  /** Removes what init created (the parent cgroup), once it is empty. */
  destroy(): void {
    const dirs = new Set<string>(this.created);
    dirs.add(path.join(this.dir(this.trackerHierarchy, ""), SHIMS_CGROUP));
    for (const h of this.hierarchies) dirs.add(this.dir(h, ""));
    const ordered = [...dirs].sort((a, b) => b.length - a.length);
    let first: unknown;
    for (const d of ordered) {
      try {
        this.fs.rmdir(d);
      } catch (err) {
        if ((err as CgroupFsError).code !== "ENOENT") first ??= err;
      }
    }
    this.created.length = 0;
    if (first) throw first;
  }

  /**
   * Checks limits against the kernel's rules, this host's layout and the parent cell's
   * cgroups, without changing anything. Throws CgroupLimitError.
   */
  checkLimits(limits: CellLimits, parentCellPath: string): void {
    if (limits.cpu) checkCpu(limits.cpu);
    if (limits.cpuset) checkCpuset(limits.cpuset);
    if (limits.memory) checkMemory(limits.memory);
    if (limits.pids) checkPids(limits.pids);
    this.writesFor(limits);
    if (limits.cpuset) {
      const h = this.hierarchyOf("cpuset")!;
      const v2 = h.version === "v2";
      const parentDir = this.dir(h, parentCellPath);
      if (limits.cpuset.cpus !== undefined) {
        const eff = this.readUp(h, parentDir, v2 ? "cpuset.cpus.effective" : "cpuset.effective_cpus");
        if (eff !== undefined) checkWithinParent("cpuset.cpus", limits.cpuset.cpus, eff);
      }
      if (limits.cpuset.mems !== undefined) {
        const eff = this.readUp(h, parentDir, v2 ? "cpuset.mems.effective" : "cpuset.effective_mems");
        if (eff !== undefined) checkWithinParent("cpuset.mems", limits.cpuset.mems, eff);
      }
    }
    if (limits.cpu?.maxUs !== undefined && this.controllerVersion("cpu") === "v1") {
      checkV1RatioWithin(limits.cpu, this.nearestV1Quota(parentCellPath));
    }
  }

  /** Creates a cell's cgroups with its limits, in every hierarchy: all or nothing. */
  createCell(cellPath: string, limits: CellLimits): void {
    const writes = this.writesFor(limits);
    const made: string[] = [];
    try {
      for (const h of this.hierarchies) {
        const d = this.dir(h, cellPath);
        this.fs.mkdir(d);
        made.push(d);
        if (h.version === "v2" && this.subtreeEnable) this.fs.write(path.join(d, "cgroup.subtree_control"), this.subtreeEnable);
        for (const w of writes.filter((w) => h.controllers.includes(w.controller))) {
          try {
            this.fs.write(path.join(d, w.file), w.value);
          } catch (err) {
            if ((err as CgroupFsError).code === "EINVAL" || (err as CgroupFsError).code === "ERANGE") {
              throw new CgroupLimitError(w.field, "invalid", `the kernel refused ${w.file} = '${w.value}' (${(err as CgroupFsError).code})`);
            }
            throw err;
          }
        }
      }
    } catch (err) {
      for (const d of made.reverse()) {
        try { this.fs.rmdir(path.join(d, PROCESS_LEAF)); } catch { /* not created */ }
        try { this.fs.rmdir(d); } catch { /* nothing else can be done here */ }
      }
      throw err;
    }
  }

  /** Creates the cell's process leaf "_" in every hierarchy (idempotent). */
  ensureProcessLeaf(cellPath: string): void {
    for (const h of this.hierarchies) {
      try {
        this.fs.mkdir(path.join(this.dir(h, cellPath), PROCESS_LEAF));
      } catch (err) {
        if ((err as CgroupFsError).code !== "EEXIST") throw err;
      }
    }
  }

  /** Creates an executable's tracker leaf; an empty leaf left by a crash is replaced. */
  createExecutableLeaf(cellPath: string, executable: string): string {
    const d = this.executableDir(cellPath, executable);
    try {
      this.fs.mkdir(d);
    } catch (err) {
      if ((err as CgroupFsError).code !== "EEXIST") throw err;
      this.fs.rmdir(d); // EBUSY when something still runs there: the caller reports it
      this.fs.mkdir(d);
    }
    return d;
  }

  /**
   * The cgroup.procs files a process writes itself into to join the cell: its executable's
   * tracker leaf first, then the cell's "_" in every other hierarchy.
   */
  joinFiles(cellPath: string, executable: string): string[] {
    const files = [path.join(this.executableDir(cellPath, executable), "cgroup.procs")];
    for (const h of this.hierarchies) {
      if (!h.tracker) files.push(path.join(this.dir(h, cellPath), PROCESS_LEAF, "cgroup.procs"));
    }
    return files;
  }

  removeExecutableLeaf(cellPath: string, executable: string): void {
    try {
      this.fs.rmdir(this.executableDir(cellPath, executable));
    } catch (err) {
      if ((err as CgroupFsError).code !== "ENOENT") throw err;
    }
  }

  /**
   * Removes a cell's cgroups in every hierarchy (its children must be gone). ENOENT is fine.
   * `processLeaf: false` skips the "_" leaf when it was never created (saves a failing rmdir each).
   */
  removeCell(cellPath: string, opts: { processLeaf?: boolean } = {}): void {
    let first: unknown;
    for (const h of this.hierarchies) {
      const d = this.dir(h, cellPath);
      for (const p of opts.processLeaf === false ? [d] : [path.join(d, PROCESS_LEAF), d]) {
        try {
          this.fs.rmdir(p);
        } catch (err) {
          if ((err as CgroupFsError).code !== "ENOENT") first ??= err;
        }
      }
    }
    if (first) throw first;
  }

  /**
   * The cell (and executable leaf) of a host pid, from /proc/<pid>/cgroup; undefined when
   * the process is not in one of our cells (or is gone).
   */
  cellOfPid(hostPid: number): { cellPath: string; executable?: string } | undefined {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${hostPid}/cgroup`, "latin1");
    } catch {
      return undefined;
    }
    const h = this.trackerHierarchy;
    for (const line of text.split("\n")) {
      const first = line.indexOf(":");
      const second = line.indexOf(":", first + 1);
      if (first < 0 || second < 0) continue;
      const ctrls = line.slice(first + 1, second);
      const matches = h.version === "v2" ? line.startsWith("0::") : ctrls.split(",").includes("freezer");
      if (!matches) continue;
      return parseCellPath(line.slice(second + 1), this.parent);
    }
    return undefined;
  }

  private dir(h: Hierarchy, cellPath: string): string {
    return cellPath ? path.join(h.mount, this.parent, cellPath) : path.join(h.mount, this.parent);
  }

  private hierarchyOf(c: ControllerName): Hierarchy | undefined {
    return this.hierarchies.find((h) => h.controllers.includes(c));
  }

  /** The writes for `limits`, each tagged with its controller. Throws for what this host cannot do. */
  private writesFor(limits: CellLimits): CgroupWrite[] {
    const out: CgroupWrite[] = [];
    const need = (c: ControllerName, field: string) => {
      const h = this.hierarchyOf(c);
      if (!h) throw new CgroupLimitError(field, "unsupported", `${field} needs the ${c} controller, which this host does not offer (cgroup mode: ${this.mode})`);
      return h.version;
    };
    if (limits.cpu && Object.values(limits.cpu).some((v) => v !== undefined)) {
      out.push(...(need("cpu", "cpu") === "v2" ? cpuWritesV2(limits.cpu) : cpuWritesV1(limits.cpu)));
    }
    if (limits.cpuset && Object.values(limits.cpuset).some((v) => v !== undefined)) {
      need("cpuset", "cpuset");
      out.push(...cpusetWrites(limits.cpuset));
    }
    if (limits.memory && Object.values(limits.memory).some((v) => v !== undefined)) {
      out.push(...(need("memory", "memory") === "v2" ? memoryWritesV2(limits.memory) : memoryWritesV1(limits.memory, this.mode)));
    }
    if (limits.pids?.max !== undefined) {
      need("pids", "pids.max");
      out.push(...pidsWrites(limits.pids));
    }
    return out;
  }

  /** Reads `file` in `dir` or the nearest ancestor that has it (up to the mount). */
  private readUp(h: Hierarchy, dir: string, file: string): string | undefined {
    for (let d = dir; ; d = path.dirname(d)) {
      try {
        return this.fs.read(path.join(d, file)).trim();
      } catch {
        if (d === h.mount || d === path.dirname(d)) return undefined;
      }
    }
  }

  /** The nearest v1 cpu quota at or above the parent cell, as the kernel checks children against it. */
  private nearestV1Quota(parentCellPath: string): { quotaUs: number; periodUs: number } | undefined {
    const h = this.hierarchyOf("cpu")!;
    for (let d = this.dir(h, parentCellPath); ; d = path.dirname(d)) {
      try {
        const quota = Number(this.fs.read(path.join(d, "cpu.cfs_quota_us")).trim());
        if (quota > 0) {
          let period = CPU_PERIOD_DEFAULT_US;
          try {
            period = Number(this.fs.read(path.join(d, "cpu.cfs_period_us")).trim());
          } catch {
            /* a temp-dir stand-in where the default period was never written */
          }
          return { quotaUs: quota, periodUs: period };
        }
      } catch {
        /* no such file here (a temp-dir stand-in): keep walking */
      }
      if (d === h.mount || d === path.dirname(d)) return undefined;
    }
  }

  private copyCpuset(d: string): void {
    for (const f of ["cpuset.cpus", "cpuset.mems"]) {
      let own = "";
      try {
        own = this.fs.read(path.join(d, f)).trim();
      } catch {
        /* a temp-dir stand-in has no such file until written */
      }
      if (own) continue;
      this.fs.write(path.join(d, f), this.fs.read(path.join(path.dirname(d), f)).trim());
    }
  }

  private enableControllers(d: string, wanted: readonly ControllerName[]): void {
    let enabled: string[] = [];
    try {
      enabled = this.fs.read(path.join(d, "cgroup.subtree_control")).trim().split(/\s+/);
    } catch {
      /* a temp-dir stand-in without the file yet */
    }
    const missing = wanted.filter((c) => !enabled.includes(c));
    if (missing.length) this.fs.write(path.join(d, "cgroup.subtree_control"), missing.map((c) => `+${c}`).join(" "));
  }
}

/** "/<parent>/a/b/_/exe" -> { cellPath: "a/b", executable: "exe" }. */
export function parseCellPath(cgroupPath: string, parent: string): { cellPath: string; executable?: string } | undefined {
  const prefix = `/${parent}/`;
  if (!cgroupPath.startsWith(prefix)) return undefined;
  const segs = cgroupPath.slice(prefix.length).split("/");
  const leaf = segs.indexOf(PROCESS_LEAF);
  if (leaf <= 0) return undefined;
  return { cellPath: segs.slice(0, leaf).join("/"), executable: segs[leaf + 1] };
}
