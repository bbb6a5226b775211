/**
 * The cells domain: the tree of cells (cgroups) and the executables running in them.
 *
 * Lifecycle of a cell:  allocated --Free--> freeing --(children freed, executables stopped,
 * cgroups removed)--> gone. Start and Allocate of a child are refused while it is freeing; a
 * second Free joins the first.
 *
 * Lifecycle of an executable: see executable.ts. Each runs in its own leaf of the tracker
 * hierarchy, so Stop reaches everything it started (setsid and double forks included).
 *
 * Executables started without a cell run in the daemon's executables cell `_executables`,
 * allocated on first use with no limits of its own (it still sits under the daemon's parent
 * cgroup). List shows it last, and only while it holds executables.
 *
 * All cgroupfs work is synchronous (it is cheaper than a thread-pool round trip), so every
 * check-then-act sequence below runs without interleaving; only waiting for processes yields.
 */
import path from "node:path";
import { alreadyExists, failedPrecondition, internal, invalidArgument, notFound, unavailable, unimplemented } from "../errors.js";
import type { Logger } from "../logger.js";
import type { ExecutableDirectory, ObservedExecutable, OutputSinkFactory } from "../observe/ports.js";
import type { CgroupDriver } from "../../platform/cgroups/driver.js";
import { spawnGated, type GatedProcess } from "../../platform/process/gated-spawn.js";
import { executableEnvironment, lookupUid } from "../../platform/process/environment.js";
import { readProcessIds } from "../../platform/process/proc-status.js";
import type { Reaper } from "../../platform/reaper.js";
import { ancestorNames, cellNameProblem, checkExecutableName, parentName } from "./names.js";
import { toAuraeError } from "./errors.js";
import { DISCARD, Executable, type ExitStatus } from "./executable.js";
import type { CellSpec, CellView, StartResult, StartSpec } from "./spec.js";
import type { ChildProcess } from "node:child_process";

/** The cell of executables started without a cell name. */
export const EXECUTABLES_CELL = "_executables";

/** How long SIGKILLed processes may take to disappear before Stop reports a failure. */
const KILL_TIMEOUT_MS = 10_000;

export interface CellDomainOptions {
  driver: CgroupDriver;
  outputs: OutputSinkFactory;
  /** grace period between SIGTERM and SIGKILL */
  stopGraceMs: number;
  /** swept after each Stop so that orphans are reaped promptly */
  reaper?: Reaper;
  logger?: Logger;
}

export interface AllocateResult {
  cellName: string;
  cgroupV2: boolean;
}

/** Options of spawnInCell (for other services: e.g. a VMM process in a VM's cell). */
export interface SpawnInCellOptions {
  /** unique in the cell; default "<basename of argv[0]>-<n>" */
  name?: string;
  /** default: the clean executable environment (PATH, HOME) */
  env?: Record<string, string>;
  /** default "/" */
  cwd?: string;
  /** default: the daemon's own */
  uid?: number;
  gid?: number;
  /**
   * "sinks" (default): stdout/stderr go to the observe sinks like an executable's;
   * "pipe": the caller reads child.stdout/child.stderr itself; "ignore": /dev/null.
   */
  output?: "sinks" | "pipe" | "ignore";
  /** shown in List's executables */
  description?: string;
}

/** A process started by spawnInCell. */
export interface CellProcess {
  cellName: string;
  name: string;
  pid: number;
  hostPid: number;
  child: ChildProcess;
  /** the main process's exit status (after it has been reaped) */
  exited: Promise<ExitStatus>;
  /** SIGTERM to everything it started, the grace period, SIGKILL; resolves when nothing remains */
  stop(): Promise<void>;
}

interface CellRecord {
  name: string;
  spec: CellSpec;
  internal: boolean;
  parent: CellRecord | undefined;
  children: Map<string, CellRecord>;
  executables: Map<string, Executable>;
  /** names of executables being started (their spawn is in flight) */
  starting: Set<string>;
  pending: Set<Promise<unknown>>;
  processLeaf: boolean;
  freeing: Promise<void> | undefined;
}

const byName = <T>(key: (t: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

export class CellDomain implements ExecutableDirectory {
  private readonly driver: CgroupDriver;
  private readonly outputs: OutputSinkFactory;
  private readonly stopGraceMs: number;
  private readonly reaper: Reaper | undefined;
  private readonly logger: Logger | undefined;
  private readonly cells = new Map<string, CellRecord>();
  private closed = false;
  private spawnCounter = 0;

  constructor(opts: CellDomainOptions) {
    this.driver = opts.driver;
    this.outputs = opts.outputs;
    this.stopGraceMs = opts.stopGraceMs;
    this.reaper = opts.reaper;
    this.logger = opts.logger;
  }

  get cgroupV2(): boolean {
    return this.driver.cgroupV2;
  }

  /**
   * Creates a cell. `internal` cells (for the daemon's own use) may have labels starting with
   * "_" and are hidden from List. Throws AuraeError.
   */
  allocate(spec: CellSpec, opts: { internal?: boolean } = {}): AllocateResult {
    const name = spec.name;
    const action = `allocate cell '${name}'`;
    this.checkOpen(action);
    const problem = cellNameProblem(name, { allowReserved: opts.internal });
    if (problem) throw invalidArgument(`${action}: cell.name ${problem}`);
    const existing = this.cells.get(name);
    if (existing) {
      throw existing.freeing ? failedPrecondition(`${action}: the cell is being freed`) : alreadyExists(`${action}: already exists`);
    }
    for (const a of ancestorNames(name)) {
      const anc = this.cells.get(a);
      if (!anc) throw notFound(`${action}: ancestor cell '${a}' not found`);
      if (anc.freeing) throw failedPrecondition(`${action}: ancestor cell '${a}' is being freed`);
    }
    if (spec.isolateProcess) throw unimplemented(`${action}: cell.isolate_process is not implemented yet`);
    if (spec.isolateNetwork) throw unimplemented(`${action}: cell.isolate_network is not implemented yet`);
    const parent = this.cells.get(parentName(name));
    try {
      this.driver.checkLimits(spec.limits, parent?.name ?? "");
      this.driver.createCell(name, spec.limits);
    } catch (err) {
      throw toAuraeError(action, err);
    }
    const record: CellRecord = {
      name,
      spec,
      internal: !!opts.internal,
      parent,
      children: new Map(),
      executables: new Map(),
      starting: new Set(),
      pending: new Set(),
      processLeaf: false,
      freeing: undefined,
    };
    this.cells.set(name, record);
    parent?.children.set(name, record);
    return { cellName: name, cgroupV2: this.driver.cgroupV2 };
  }

  /** Frees a cell: its children first, then its executables, then every cgroup directory. */
  free(name: string): Promise<void> {
    const cell = this.cells.get(name);
    if (!cell) return Promise.reject(notFound(`free cell '${name}': not found`));
    return this.freeCell(cell);
  }

  /** Starts an executable (`sh -c command`) in a cell; see StartSpec. */
  async start(spec: StartSpec): Promise<StartResult> {
    const where = spec.cellName === undefined ? "" : ` in cell '${spec.cellName}'`;
    const action = `start executable '${spec.name}'${where}`;
    this.checkOpen(action);
    const cell = spec.cellName === undefined ? this.executablesCell(action) : this.cells.get(spec.cellName);
    if (!cell) throw notFound(`${action}: cell not found`);
    const uid = spec.uid ?? process.getuid?.() ?? 0;
    const gid = spec.gid ?? (spec.uid !== undefined ? lookupUid(spec.uid)?.gid ?? spec.uid : process.getgid?.() ?? 0);
    const exe = await this.launch(cell, action, {
      name: spec.name,
      command: spec.command,
      description: spec.description,
      argv: ["/bin/sh", "-c", spec.command],
      env: executableEnvironment(uid),
      cwd: "/",
      uid,
      gid,
      output: "sinks",
    });
    return { pid: exe.pid, hostPid: exe.hostPid, uid: exe.uid, gid: exe.gid };
  }

  /** Stops an executable and releases its name; succeeds for one that already exited. */
  stop(cellName: string | undefined, name: string): Promise<void> {
    const where = cellName === undefined ? "" : ` in cell '${cellName}'`;
    const action = `stop executable '${name}'${where}`;
    const cell = this.cells.get(cellName ?? EXECUTABLES_CELL);
    if (!cell) return Promise.reject(notFound(`${action}: ${cellName === undefined ? "executable" : "cell"} not found`));
    const exe = cell.executables.get(name);
    if (!exe) return Promise.reject(notFound(`${action}: executable not found`));
    return this.stopExecutable(cell, exe);
  }

  /** The user's cells as a tree (sorted by name at each level), then the executables cell if it is in use. */
  list(): CellView[] {
    const view = (c: CellRecord): CellView => ({
      spec: c.spec,
      children: [...c.children.values()].sort(byName((x) => x.name)).map(view),
      executables: [...c.executables.values()].sort(byName((x) => x.executableName)).map((e) => e.view()),
    });
    const top = [...this.cells.values()].filter((c) => !c.parent && !c.internal).sort(byName((x) => x.name));
    const out = top.map(view);
    const exes = this.cells.get(EXECUTABLES_CELL);
    if (exes && exes.executables.size > 0) out.push(view(exes));
    return out;
  }

  /**
   * Starts a long-running process (argv, no shell) in a cell, e.g. a VMM in a VM's cell.
   * It is an executable of that cell: Free stops it, List shows it, observe can stream it.
   */
  async spawnInCell(cellName: string, argv: string[], opts: SpawnInCellOptions = {}): Promise<CellProcess> {
    const name = opts.name ?? `${path.basename(argv[0] ?? "process")}-${++this.spawnCounter}`;
    const action = `spawn '${name}' in cell '${cellName}'`;
    this.checkOpen(action);
    if (argv.length === 0 || !argv[0]) throw invalidArgument(`${action}: argv must not be empty`);
    checkExecutableName(action, "name", name);
    const cell = this.cells.get(cellName);
    if (!cell) throw notFound(`${action}: cell not found`);
    const uid = opts.uid ?? process.getuid?.() ?? 0;
    const gid = opts.gid ?? process.getgid?.() ?? 0;
    const exe = await this.launch(cell, action, {
      name,
      command: argv.join(" "),
      description: opts.description ?? "",
      argv,
      env: opts.env ?? executableEnvironment(uid),
      cwd: opts.cwd ?? "/",
      uid,
      gid,
      output: opts.output ?? "sinks",
    });
    return {
      cellName,
      name,
      pid: exe.pid,
      hostPid: exe.hostPid,
      child: exe.child,
      exited: exe.exited,
      stop: () => this.stopExecutable(cell, exe),
    };
  }

  /** Stops every executable and frees every cell (children first); removes the daemon's parent cgroup. */
  async shutdown(): Promise<void> {
    this.closed = true;
    const top = [...this.cells.values()].filter((c) => !c.parent);
    const results = await Promise.allSettled(top.map((c) => this.freeCell(c)));
    for (const r of results) {
      if (r.status === "rejected") this.logger?.error(`Failed to free a cell during shutdown: ${(r.reason as Error).message}`);
    }
    try {
      this.driver.destroy();
    } catch (err) {
      this.logger?.error(`Failed to remove the daemon's cgroup parent: ${(err as Error).message}`);
    }
  }

  // --- ExecutableDirectory -------------------------------------------------------------

  findByPid(pid: number, cellName?: string): ObservedExecutable | undefined {
    const found: Executable[] = [];
    const cells = cellName === undefined ? [...this.cells.values()] : [this.cells.get(cellName)].filter((c): c is CellRecord => !!c);
    for (const c of cells) for (const e of c.executables.values()) if (e.pid === pid) found.push(e);
    if (found.length > 1) {
      throw invalidArgument(`process ${pid} is ambiguous: it names executables in cells ${found.map((e) => `'${e.cellName}'`).join(", ")}; name the cell`);
    }
    return found[0];
  }

  hasCell(cellName: string): boolean {
    return this.cells.has(cellName);
  }

  describeHostPid(hostPid: number): { cellName: string; reportedPid: number } | undefined {
    const where = this.driver.cellOfPid(hostPid);
    if (!where || !this.cells.has(where.cellPath)) return undefined;
    return { cellName: where.cellPath, reportedPid: hostPid };
  }

  // --- internals -----------------------------------------------------------------------

  private checkOpen(action: string): void {
    if (this.closed) throw unavailable(`${action}: the daemon is shutting down`);
  }

  private executablesCell(action: string): CellRecord {
    const existing = this.cells.get(EXECUTABLES_CELL);
    if (existing) return existing;
    try {
      this.allocate({ name: EXECUTABLES_CELL, limits: {}, isolateProcess: false, isolateNetwork: false }, { internal: true });
    } catch (err) {
      throw toAuraeError(`${action}: allocating the executables cell`, err);
    }
    return this.cells.get(EXECUTABLES_CELL)!;
  }

  private async launch(
    cell: CellRecord,
    action: string,
    p: {
      name: string;
      command: string;
      description: string;
      argv: string[];
      env: Record<string, string>;
      cwd: string;
      uid: number;
      gid: number;
      output: "sinks" | "pipe" | "ignore";
    },
  ): Promise<Executable> {
    if (cell.freeing) throw failedPrecondition(`${action}: the cell is being freed`);
    if (cell.executables.has(p.name) || cell.starting.has(p.name)) throw alreadyExists(`${action}: an executable with this name exists in the cell`);
    cell.starting.add(p.name);
    const work = this.launchReserved(cell, action, p);
    cell.pending.add(work);
    try {
      return await work;
    } finally {
      cell.pending.delete(work);
      cell.starting.delete(p.name);
    }
  }

  private async launchReserved(
    cell: CellRecord,
    action: string,
    p: Parameters<CellDomain["launch"]>[2],
  ): Promise<Executable> {
    try {
      if (!cell.processLeaf) {
        this.driver.ensureProcessLeaf(cell.name);
        cell.processLeaf = true;
      }
      this.driver.createExecutableLeaf(cell.name, p.name);
    } catch (err) {
      throw toAuraeError(action, err);
    }
    let gated: GatedProcess;
    try {
      gated = await spawnGated({
        argv: p.argv,
        env: p.env,
        cwd: p.cwd,
        uid: p.uid,
        gid: p.gid,
        stdout: p.output === "ignore" ? "ignore" : "pipe",
        stderr: p.output === "ignore" ? "ignore" : "pipe",
      });
    } catch (err) {
      this.driver.removeExecutableLeaf(cell.name, p.name);
      throw toAuraeError(action, err);
    }
    try {
      this.driver.joinExecutable(gated.pid, cell.name, p.name);
    } catch (err) {
      gated.abort();
      gated.child.kill("SIGKILL");
      await new Promise((r) => gated.child.once("exit", r));
      try { this.driver.removeExecutableLeaf(cell.name, p.name); } catch { /* reported below */ }
      throw toAuraeError(action, err);
    }
    // libuv fails the spawn when setgid/setuid fail; these are the ids the kernel reports.
    const ids = readProcessIds(gated.pid);
    const owner = { cellName: cell.name, executableName: p.name };
    const sinks = p.output === "sinks";
    const exe = new Executable(
      {
        cellName: cell.name,
        name: p.name,
        command: p.command,
        description: p.description,
        child: gated.child,
        hostPid: gated.pid,
        pid: gated.pid,
        uid: ids?.uid ?? p.uid,
        gid: ids?.gid ?? p.gid,
        stdout: sinks ? this.outputs("stdout", owner) : DISCARD,
        stderr: sinks ? this.outputs("stderr", owner) : DISCARD,
      },
      { pumpOutput: sinks },
    );
    cell.executables.set(p.name, exe);
    gated.release();
    return exe;
  }

  private stopExecutable(cell: CellRecord, exe: Executable): Promise<void> {
    if (!exe.stopping) {
      const action = `stop executable '${exe.executableName}' in cell '${cell.name}'`;
      exe.stopping = this.terminate(cell, exe).then(
        () => {
          cell.executables.delete(exe.executableName);
        },
        (err: unknown) => {
          exe.stopping = undefined;
          throw toAuraeError(action, err);
        },
      );
    }
    return exe.stopping;
  }

  /** SIGTERM to the executable's whole leaf, the grace period, SIGKILL; then removes the leaf. */
  private async terminate(cell: CellRecord, exe: Executable): Promise<void> {
    const dir = this.driver.executableDir(cell.name, exe.executableName);
    const tracker = this.driver.tracker;
    if (exe.state === "running" || tracker.procs(dir).length > 0) {
      tracker.signalAll(dir, "SIGTERM");
      const deadline = Date.now() + this.stopGraceMs;
      let empty = await tracker.waitEmpty(dir, this.stopGraceMs);
      if (!empty) {
        await tracker.killAll(dir);
        empty = await tracker.waitEmpty(dir, KILL_TIMEOUT_MS);
        if (!empty) throw internal(`processes ${tracker.procs(dir).join(", ")} survived SIGKILL`);
      }
      // The main process can only be outside its leaf if it moved itself (as root).
      if (exe.state === "running") {
        const left = Math.max(0, deadline - Date.now());
        const timer = new Promise((r) => setTimeout(r, left).unref());
        await Promise.race([exe.exited, timer]);
        if (exe.state === "running") {
          try { process.kill(exe.hostPid, "SIGKILL"); } catch { /* gone meanwhile */ }
        }
      }
    }
    await exe.exited;
    this.driver.removeExecutableLeaf(cell.name, exe.executableName);
    this.reaper?.sweep();
  }

  private freeCell(cell: CellRecord): Promise<void> {
    if (!cell.freeing) {
      const action = `free cell '${cell.name}'`;
      cell.freeing = (async () => {
        await Promise.allSettled([...cell.pending]);
        const results = await Promise.allSettled([
          ...[...cell.children.values()].map((c) => this.freeCell(c)),
          ...[...cell.executables.values()].map((e) => this.stopExecutable(cell, e)),
        ]);
        const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
        if (failed) throw failed.reason;
        try {
          this.driver.removeCell(cell.name, { processLeaf: cell.processLeaf });
        } catch (err) {
          throw toAuraeError(action, err);
        }
        this.cells.delete(cell.name);
        cell.parent?.children.delete(cell.name);
      })();
      cell.freeing.catch(() => {
        cell.freeing = undefined;
      });
    }
    return cell.freeing;
  }
}
