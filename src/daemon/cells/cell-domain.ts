/**
 * The cells domain: the tree of cells (cgroups, optionally namespaces) and the executables
 * running in them.
 *
 * Lifecycle of a cell:  allocating --(cgroups made, namespace holder ready)--> allocated
 * --Free--> freeing --(children freed, executables stopped, holder stopped, cgroups removed)-->
 * gone. Start and Allocate of a child wait while it is allocating and are refused while it is
 * freeing; a second Free joins the first.
 *
 * Lifecycle of an executable: see executable.ts. Each runs through its own aurae-shim in its
 * own leaf of the tracker hierarchy, so Stop reaches everything it started (setsid and double
 * forks included).
 *
 * Isolated cells (isolate_process, isolate_network) get a namespace holder, started like an
 * executable named ".holder" (platform/namespaces/holder.ts); every executable of the cell and
 * of its nested cells enters the nearest holder's namespaces before exec. A nested cell that
 * asks for isolation itself gets its own holder, made inside its ancestor's namespaces.
 *
 * Executables started without a cell run in the daemon's executables cell `_executables`,
 * allocated on first use with no limits of its own (it still sits under the daemon's parent
 * cgroup). List shows it last, and only while it holds executables.
 *
 * Everything the domain owns is recorded in the state store (store.ts) as it is made, so a
 * restarted daemon re-adopts it (adopt.ts).
 *
 * All cgroupfs work is synchronous (it is cheaper than a thread-pool round trip), so every
 * check-then-act sequence below runs without interleaving; only waiting for processes yields.
 */
import path from "node:path";
import { AuraeError, alreadyExists, failedPrecondition, internal, invalidArgument, notFound, unavailable } from "../errors.js";
import type { Logger } from "../logger.js";
import type { ExecutableDirectory } from "../observe/ports.js";
import type { CgroupDriver } from "../../platform/cgroups/driver.js";
import type { ChannelFileOptions } from "../../platform/output/channel-file.js";
import { HOLDER_READY_LINE, holderArgv, holderInitPid, namespaceTypes, type Isolation } from "../../platform/namespaces/holder.js";
import { executableEnvironment, EXECUTABLE_PATH, lookupUid } from "../../platform/process/environment.js";
import { bootId, identify, isAlive, type ProcessIdentity } from "../../platform/process/identity.js";
import { readProcessIds } from "../../platform/process/proc-status.js";
import { ShimStartError, shimPath, type NamespaceType, type ShimProcess } from "../../platform/process/shim.js";
import { Spawner } from "../../platform/process/spawner.js";
import type { Reaper } from "../../platform/reaper.js";
import { ancestorNames, cellNameProblem, checkExecutableName, parentName } from "./names.js";
import { toAuraeError } from "./errors.js";
import { Executable, type ExitStatus } from "./executable.js";
import type { StateStore, StoredCell, StoredExecutable } from "./store.js";
import type { CellSpec, CellView, StartResult, StartSpec } from "./spec.js";

/** The cell of executables started without a cell name. */
export const EXECUTABLES_CELL = "_executables";
/** The internal executable holding an isolated cell's namespaces (user names cannot start with "."). */
export const HOLDER_NAME = ".holder";

/** How long SIGKILLed processes may take to disappear before Stop reports a failure. */
const KILL_TIMEOUT_MS = 10_000;
/** How long a namespace holder may take to say it is ready. */
const HOLDER_READY_TIMEOUT_MS = 10_000;
/** How long Stop waits for a shim to finish after its leaf emptied (it exits right after). */
const SHIM_EXIT_TIMEOUT_MS = 5_000;

export interface CellDomainOptions {
  driver: CgroupDriver;
  store: StateStore;
  /** grace period between SIGTERM and SIGKILL */
  stopGraceMs: number;
  /** swept after each Stop so that orphans are reaped promptly */
  reaper?: Reaper;
  logger?: Logger;
  /** retention and line limits of executables' output */
  output?: ChannelFileOptions;
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
  /** shown in List's executables */
  description?: string;
}

/** A process started by spawnInCell. */
export interface CellProcess {
  cellName: string;
  name: string;
  pid: number;
  hostPid: number;
  /** the main process's exit status */
  exited: Promise<ExitStatus>;
  /** The last `maxBytes` of its stderr (for error messages). */
  stderrTail(maxBytes?: number): string;
  /** SIGTERM to everything it started, the grace period, SIGKILL; resolves when nothing remains */
  stop(): Promise<void>;
}

/** @internal shared with adopt.ts */
export interface CellRecord {
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
  /** settles when Allocate has finished (the holder of an isolated cell is ready) */
  ready: Promise<void>;
  freeing: Promise<void> | undefined;
  /** isolated cells: the process holding the namespaces, and its init (whose namespaces executables enter) */
  holder?: Executable;
  nsInit?: ProcessIdentity;
}

interface LaunchParams {
  name: string;
  command: string;
  description: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  uid: number;
  gid: number;
  internal: boolean;
  /** the namespaces to enter (default: the cell's) */
  namespaces?: { pid: number; types: NamespaceType[] } | null;
}

const byName = <T>(key: (t: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

/** The isolation a cell's executables live in: its own flags or any ancestor's. */
export function effectiveIsolation(cell: CellRecord | undefined): Isolation {
  const iso: Isolation = { process: false, network: false };
  for (let c = cell; c; c = c.parent) {
    iso.process ||= c.spec.isolateProcess;
    iso.network ||= c.spec.isolateNetwork;
  }
  return iso;
}

const isIsolated = (spec: CellSpec) => spec.isolateProcess || spec.isolateNetwork;

export class CellDomain implements ExecutableDirectory {
  /** @internal */ readonly driver: CgroupDriver;
  /** @internal */ readonly store: StateStore;
  /** @internal */ readonly logger: Logger | undefined;
  /** @internal */ readonly cells = new Map<string, CellRecord>();
  /** @internal */ readonly output: ChannelFileOptions | undefined;
  private readonly stopGraceMs: number;
  private readonly reaper: Reaper | undefined;
  /** forks every shim (the daemon never forks itself: platform/process/spawner.ts) */
  private readonly spawner: Spawner;
  private closed = false;
  private spawnCounter = 0;

  constructor(opts: CellDomainOptions) {
    this.driver = opts.driver;
    this.store = opts.store;
    this.stopGraceMs = opts.stopGraceMs;
    this.reaper = opts.reaper;
    this.logger = opts.logger;
    this.output = opts.output;
    this.spawner = new Spawner(this.driver.shimJoinFiles());
  }

  get cgroupV2(): boolean {
    return this.driver.cgroupV2;
  }

  /**
   * Creates a cell: its cgroups with their limits, and for an isolated cell its namespaces.
   * All or nothing. `internal` cells (for the daemon's own use) may have labels starting with
   * "_" and are hidden from List. Throws AuraeError.
   */
  async allocate(spec: CellSpec, opts: { internal?: boolean } = {}): Promise<AllocateResult> {
    const name = spec.name;
    const action = `allocate cell '${name}'`;
    this.checkOpen(action);
    const problem = cellNameProblem(name, { allowReserved: opts.internal });
    if (problem) throw invalidArgument(`${action}: cell.name ${problem}`);
    // An ancestor still being allocated (its namespace holder starting) is waited for first;
    // everything below then runs without interleaving.
    await this.cells.get(parentName(name))?.ready;
    this.checkOpen(action);
    const existing = this.cells.get(name);
    if (existing) {
      throw existing.freeing ? failedPrecondition(`${action}: the cell is being freed`) : alreadyExists(`${action}: already exists`);
    }
    for (const a of ancestorNames(name)) {
      const anc = this.cells.get(a);
      if (!anc) throw notFound(`${action}: ancestor cell '${a}' not found`);
      if (anc.freeing) throw failedPrecondition(`${action}: ancestor cell '${a}' is being freed`);
    }
    const parent = this.cells.get(parentName(name));
    try {
      this.driver.checkLimits(spec.limits, parent?.name ?? "");
      this.driver.createCell(name, spec.limits);
    } catch (err) {
      throw toAuraeError(action, err);
    }
    let done!: () => void;
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
      ready: new Promise<void>((r) => (done = r)),
      freeing: undefined,
    };
    this.cells.set(name, record);
    parent?.children.set(name, record);
    try {
      this.store.saveCell(storedCell(record));
      if (isIsolated(spec)) await this.startHolder(record, action);
    } catch (err) {
      await this.undoAllocate(record);
      throw toAuraeError(action, err);
    } finally {
      done();
    }
    return { cellName: name, cgroupV2: this.driver.cgroupV2 };
  }

  /** Frees a cell: its children first, then its executables and holder, then every cgroup directory. */
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
    const cell = spec.cellName === undefined ? await this.executablesCell(action) : this.cells.get(spec.cellName);
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
      internal: false,
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
      internal: false,
    });
    return this.processOf(cell, exe);
  }

  /** An executable as a CellProcess (what services that run processes in cells hold). */
  private processOf(cell: CellRecord, exe: Executable): CellProcess {
    return {
      cellName: cell.name,
      name: exe.executableName,
      pid: exe.pid,
      hostPid: exe.hostPid,
      exited: exe.exited,
      stderrTail: (maxBytes) => exe.stderr.tail(maxBytes),
      stop: () => this.stopExecutable(cell, exe),
    };
  }

  /**
   * Graceful shutdown. By default stops every executable and frees every cell (children
   * first) and removes the daemon's parent cgroup. With `keepWorkloads` it only lets go:
   * every process keeps running, every cgroup and record stays, for the next daemon to adopt.
   */
  async shutdown(opts: { keepWorkloads?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (opts.keepWorkloads) {
      await this.spawner.close();
      for (const c of this.cells.values()) {
        for (const e of c.executables.values()) e.release();
        c.holder?.release();
      }
      if (this.cells.size > 0) {
        this.logger?.info("cells: left running for the next daemon", {
          cells: this.cells.size,
          executables: [...this.cells.values()].reduce((n, c) => n + c.executables.size, 0),
        });
        return;
      }
      // nothing to keep: the parent cgroup need not stay either (an empty one is removed)
      try { this.driver.destroy(); } catch { /* something else still uses it */ }
      return;
    }
    // The spawner stays until the cells are freed: it is the parent of every shim and reaps
    // each by the pid its SIGCHLD names. Closed first, it would leave thousands of exiting
    // shims to this process (a subreaper), whose waitid(P_ALL) walks all its children for
    // each one reaped: 10,000 executables took 10 s of CPU in those walks alone.
    const top = [...this.cells.values()].filter((c) => !c.parent);
    const results = await Promise.allSettled(top.map((c) => this.freeCell(c)));
    for (const r of results) {
      if (r.status === "rejected") this.logger?.error(`Failed to free a cell during shutdown: ${(r.reason as Error).message}`);
    }
    await this.spawner.close();
    try {
      this.driver.destroy();
    } catch (err) {
      this.logger?.error(`Failed to remove the daemon's cgroup parent: ${(err as Error).message}`);
    }
  }

  // --- ExecutableDirectory -------------------------------------------------------------

  /**
   * The executable Start reported as `pid`. A pid is reused: within one cell the one running
   * wins, else the one started last; across cells (isolated cells have pid namespaces of their
   * own) a pid that names several is ambiguous without the cell.
   */
  findByPid(pid: number, cellName?: string): Executable | undefined {
    const cells = cellName === undefined ? [...this.cells.values()] : [this.cells.get(cellName)].filter((c): c is CellRecord => !!c);
    const found: Executable[] = [];
    for (const c of cells) {
      let best: Executable | undefined;
      for (const e of c.executables.values()) {
        if (e.pid !== pid) continue;
        if (!best || (best.state !== "running" && (e.state === "running" || e.startedAt > best.startedAt))) best = e;
      }
      if (best) found.push(best);
    }
    if (found.length > 1) {
      throw invalidArgument(`process ${pid} is ambiguous: it names executables in cells ${found.map((e) => `'${e.cellName}'`).join(", ")}; name the cell`);
    }
    return found[0];
  }

  hasCell(cellName: string): boolean {
    return this.cells.has(cellName);
  }

  /** The names of a cell's child cells (for services that own internal cells). */
  childCells(cellName: string): string[] {
    return [...(this.cells.get(cellName)?.children.keys() ?? [])].sort();
  }

  /**
   * An executable already in a cell (one re-adopted after a restart), as spawnInCell would
   * have returned it; undefined when there is none of that name.
   */
  adoptedProcess(cellName: string, name: string): CellProcess | undefined {
    const cell = this.cells.get(cellName);
    const exe = cell?.executables.get(name);
    return cell && exe ? this.processOf(cell, exe) : undefined;
  }

  describeHostPid(hostPid: number): { cellName: string; reportedPid: number } | undefined {
    const where = this.driver.cellOfPid(hostPid);
    if (!where || !this.cells.has(where.cellPath)) return undefined;
    const exe = where.executable ? this.cells.get(where.cellPath)!.executables.get(where.executable) : undefined;
    return { cellName: where.cellPath, reportedPid: exe && exe.hostPid === hostPid ? exe.pid : hostPid };
  }

  // --- internals (some shared with adopt.ts) --------------------------------------------

  private checkOpen(action: string): void {
    if (this.closed) throw unavailable(`${action}: the daemon is shutting down`);
  }

  private async waitReady(cell: CellRecord, action: string): Promise<void> {
    await cell.ready;
    if (!this.cells.has(cell.name)) throw notFound(`${action}: cell '${cell.name}' not found`);
  }

  private async executablesCell(action: string): Promise<CellRecord> {
    const existing = this.cells.get(EXECUTABLES_CELL);
    if (existing) return existing;
    try {
      await this.allocate({ name: EXECUTABLES_CELL, limits: {}, isolateProcess: false, isolateNetwork: false }, { internal: true });
    } catch (err) {
      if (!this.cells.has(EXECUTABLES_CELL)) throw toAuraeError(`${action}: allocating the executables cell`, err);
    }
    return this.cells.get(EXECUTABLES_CELL)!;
  }

  /**
   * @internal The namespaces executables of `cell` enter: those of the nearest isolated cell
   * at or above it. Throws FAILED_PRECONDITION when that cell's namespaces are gone (its holder
   * exited): an executable must never start outside the isolation it was promised.
   */
  namespacesOf(cell: CellRecord): { pid: number; types: NamespaceType[]; startTime: number } | undefined {
    for (let c: CellRecord | undefined = cell; c; c = c.parent) {
      if (!isIsolated(c.spec)) continue;
      if (!c.holder || !c.nsInit || !isAlive(c.nsInit)) {
        throw failedPrecondition(`cell '${c.name}' has lost its namespaces (its namespace holder is gone); free it and allocate it again`);
      }
      return { pid: c.nsInit.pid, types: namespaceTypes(effectiveIsolation(c)), startTime: c.nsInit.startTime };
    }
    return undefined;
  }

  /** @internal Starts an isolated cell's namespace holder (inside its ancestors' namespaces) and waits until it is ready. */
  async startHolder(cell: CellRecord, action: string): Promise<void> {
    const leaf = cell.name.slice(cell.name.lastIndexOf("/") + 1);
    const iso: Isolation = { process: cell.spec.isolateProcess, network: cell.spec.isolateNetwork };
    const exe = await this.launch(cell, `${action}: starting its namespace holder`, {
      name: HOLDER_NAME,
      command: "",
      description: "namespace holder",
      argv: holderArgv(leaf, iso, shimPath()),
      env: { PATH: EXECUTABLE_PATH },
      cwd: "/",
      uid: 0,
      gid: 0,
      internal: true,
      namespaces: cell.parent ? this.namespacesOf(cell.parent) ?? null : null,
    });
    cell.holder = exe;
    const ready = await waitForLine(exe, HOLDER_READY_LINE, HOLDER_READY_TIMEOUT_MS);
    const initPid = ready ? holderInitPid(exe.hostPid, iso) : undefined;
    const init = initPid === undefined ? undefined : identify(initPid);
    if (!init) {
      const why = exe.stderr.tail(1024).trim() || (ready ? "its init process is missing" : `not ready within ${HOLDER_READY_TIMEOUT_MS} ms`);
      throw failedPrecondition(`${action}: the namespace holder failed: ${why}`);
    }
    cell.nsInit = init;
    this.watchHolder(cell, exe);
  }

  /** @internal Says so when an isolated cell's namespaces die under it (its init was killed). */
  watchHolder(cell: CellRecord, holder: Executable): void {
    void holder.exited.then(() => {
      if (cell.holder === holder && !cell.freeing && !this.closed) {
        this.logger?.warn(`cell '${cell.name}' lost its namespaces: its namespace holder exited; Start in it is refused until it is freed and allocated again`);
      }
    });
  }

  private async launch(cell: CellRecord, action: string, p: LaunchParams): Promise<Executable> {
    if (cell.freeing) throw failedPrecondition(`${action}: the cell is being freed`);
    if (!p.internal) await this.waitReady(cell, action);
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

  private async launchReserved(cell: CellRecord, action: string, p: LaunchParams): Promise<Executable> {
    const namespaces = p.namespaces === undefined ? this.namespacesOf(cell) : p.namespaces ?? undefined;
    try {
      if (!cell.processLeaf) {
        this.driver.ensureProcessLeaf(cell.name);
        cell.processLeaf = true;
      }
      this.driver.createExecutableLeaf(cell.name, p.name);
    } catch (err) {
      throw toAuraeError(action, err);
    }
    let dir: string | undefined;
    let started: ShimProcess | undefined;
    try {
      dir = this.store.createExecutableDir(cell.name, p.name);
      started = await this.spawner.start({
        argv: p.argv,
        env: p.env,
        cwd: p.cwd,
        uid: p.uid,
        gid: p.gid,
        join: this.driver.joinFiles(cell.name, p.name),
        namespaces,
        stdoutPath: path.join(dir, "stdout"),
        stderrPath: path.join(dir, "stderr"),
        exitPath: path.join(dir, "exit"),
      });
      // The real ids as the kernel reports them (the program may have exited already).
      const ids = readProcessIds(started.pid);
      const record: StoredExecutable = {
        format: 1,
        cellName: cell.name,
        name: p.name,
        command: p.command,
        description: p.description,
        argv: p.argv,
        uid: ids?.uid ?? p.uid,
        gid: ids?.gid ?? p.gid,
        pid: started.nsPid,
        process: started.startTime >= 0 ? { pid: started.pid, startTime: started.startTime } : { pid: started.pid, startTime: 0 },
        shim: identify(started.shimPid) ?? { pid: started.shimPid, startTime: 0 },
        bootId: bootId(),
        startedAt: Date.now(),
        internal: p.internal,
      };
      const exe = this.executableFromRecord(record, dir);
      try {
        this.store.saveExecutable(dir, record);
      } catch (err) {
        this.logger?.error(`Failed to record executable '${p.name}' in cell '${cell.name}': ${(err as Error).message}; a restarted daemon will remove it as a leftover`);
      }
      if (!p.internal) cell.executables.set(p.name, exe);
      return exe;
    } catch (err) {
      // Nothing of a failed Start stays: its processes (if it got that far), leaf and files.
      await this.discardLeaf(cell.name, p.name);
      if (dir) this.store.removeExecutable(dir);
      if (err instanceof ShimStartError) {
        const why = `${action}: entering the cell failed at ${err.message}`;
        throw err.exhausted ? new AuraeError("resource_exhausted", why) : failedPrecondition(why);
      }
      throw toAuraeError(action, err);
    }
  }

  /** Kills whatever runs in an executable's leaf and removes it; logs instead of throwing. */
  private async discardLeaf(cellName: string, name: string): Promise<void> {
    const leaf = this.driver.executableDir(cellName, name);
    try {
      if (this.driver.tracker.procs(leaf).length > 0) {
        await this.driver.tracker.killAll(leaf);
        await this.driver.tracker.waitEmpty(leaf, KILL_TIMEOUT_MS);
      }
      this.driver.removeExecutableLeaf(cellName, name);
    } catch (err) {
      this.logger?.error(`Failed to remove the leaf of executable '${name}' in cell '${cellName}': ${(err as Error).message}`);
    }
  }

  /** @internal */
  executableFromRecord(rec: StoredExecutable, dir: string): Executable {
    return new Executable({
      cellName: rec.cellName,
      name: rec.name,
      command: rec.command,
      description: rec.description,
      uid: rec.uid,
      gid: rec.gid,
      pid: rec.pid,
      process: rec.process,
      shim: rec.shim,
      dir,
      leafDir: this.driver.executableDir(rec.cellName, rec.name),
      startedAt: rec.startedAt,
      tracker: this.driver.tracker,
      internal: rec.internal,
      output: this.output,
    });
  }

  private stopExecutable(cell: CellRecord, exe: Executable): Promise<void> {
    if (!exe.stopping) {
      const action = `stop executable '${exe.executableName}' in cell '${cell.name}'`;
      exe.stopping = this.terminate(cell, exe).then(
        () => {
          if (cell.executables.get(exe.executableName) === exe) cell.executables.delete(exe.executableName);
          if (cell.holder === exe) {
            cell.holder = undefined;
            cell.nsInit = undefined;
          }
        },
        (err: unknown) => {
          exe.stopping = undefined;
          throw toAuraeError(action, err);
        },
      );
    }
    return exe.stopping;
  }

  /** SIGTERM to the executable's whole leaf, the grace period, SIGKILL; then removes the leaf and its files. */
  private async terminate(cell: CellRecord, exe: Executable): Promise<void> {
    const dir = this.driver.executableDir(cell.name, exe.executableName);
    const tracker = this.driver.tracker;
    // A namespace holder is stopped last, with nothing left to be graceful to; SIGTERM could
    // even be lost (its shell, pid 1 of the namespace before it becomes catatonit, ignores it).
    const grace = cell.holder === exe ? 0 : this.stopGraceMs;
    if (exe.state === "running" || tracker.procs(dir).length > 0) {
      if (grace > 0) tracker.signalAll(dir, "SIGTERM");
      const deadline = Date.now() + grace;
      let empty = grace > 0 && (await tracker.waitEmpty(dir, grace));
      if (!empty) {
        await tracker.killAll(dir);
        empty = await tracker.waitEmpty(dir, KILL_TIMEOUT_MS);
        if (!empty) throw internal(`stop executable '${exe.executableName}' in cell '${cell.name}': processes ${tracker.procs(dir).join(", ")} survived SIGKILL`);
      }
      // The program can only be outside its leaf if it moved itself (as root); it is signalled
      // only while it is still the process we started (never a pid reused by another).
      if (exe.state === "running") {
        const left = Math.max(0, deadline - Date.now());
        await Promise.race([exe.exited, delay(left)]);
        if (exe.programAlive) {
          try { process.kill(exe.hostPid, "SIGKILL"); } catch { /* gone meanwhile */ }
        }
      }
    }
    const gone = await Promise.race([exe.gone.then(() => true), delay(SHIM_EXIT_TIMEOUT_MS).then(() => false)]);
    if (!gone) this.logger?.warn(`executable '${exe.executableName}' in cell '${cell.name}': its shim did not finish after the program ended, ignoring`);
    exe.release();
    this.driver.removeExecutableLeaf(cell.name, exe.executableName);
    this.store.removeExecutable(exe.dir);
    this.reaper?.sweep();
  }

  private freeCell(cell: CellRecord): Promise<void> {
    if (!cell.freeing) {
      const action = `free cell '${cell.name}'`;
      cell.freeing = (async () => {
        await cell.ready;
        await Promise.allSettled([...cell.pending]);
        const results = await Promise.allSettled([
          ...[...cell.children.values()].map((c) => this.freeCell(c)),
          ...[...cell.executables.values()].map((e) => this.stopExecutable(cell, e)),
        ]);
        const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
        if (failed) throw failed.reason;
        if (cell.holder) await this.stopExecutable(cell, cell.holder);
        try {
          this.driver.removeCell(cell.name, { processLeaf: cell.processLeaf });
        } catch (err) {
          throw toAuraeError(action, err);
        }
        this.store.removeCell(cell.name);
        this.cells.delete(cell.name);
        cell.parent?.children.delete(cell.name);
      })();
      cell.freeing.catch(() => {
        cell.freeing = undefined;
      });
    }
    return cell.freeing;
  }

  /** Undoes a failed Allocate: the holder if it started, the cgroups, the record. Never throws. */
  private async undoAllocate(cell: CellRecord): Promise<void> {
    const steps: [string, () => unknown][] = [
      ["stop its namespace holder", () => cell.holder && this.stopExecutable(cell, cell.holder)],
      ["remove its cgroups", () => this.driver.removeCell(cell.name, { processLeaf: cell.processLeaf })],
      ["remove its record", () => this.store.removeCell(cell.name)],
    ];
    for (const [what, step] of steps) {
      try {
        await step();
      } catch (err) {
        this.logger?.error(`Failed to undo allocating cell '${cell.name}': cannot ${what}: ${(err as Error).message}`);
      }
    }
    this.cells.delete(cell.name);
    cell.parent?.children.delete(cell.name);
  }
}

/** The stored form of a cell record. */
export function storedCell(c: CellRecord): StoredCell {
  return {
    format: 1,
    name: c.name,
    limits: c.spec.limits,
    isolateProcess: c.spec.isolateProcess,
    isolateNetwork: c.spec.isolateNetwork,
    internal: c.internal,
    allocatedAt: Date.now(),
  };
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** Resolves true once `line` appears on the executable's stdout, false when it exits first or after `timeoutMs`. */
async function waitForLine(exe: Executable, line: string, timeoutMs: number): Promise<boolean> {
  const reader = exe.openReader("stdout");
  const deadline = Date.now() + timeoutMs;
  let timer: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      const lines = reader.take(16);
      if (lines === null) return false;
      if (lines.some((l) => l.line === line)) return true;
      if (lines.length > 0) continue;
      if (exe.state === "exited" && !isAlive(exe.identity)) {
        // it may have written the line just before exiting: one last look
        const rest = reader.take(16);
        return !!rest && rest.some((l) => l.line === line);
      }
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await Promise.race([reader.wait(), exe.exited, new Promise<void>((r) => (timer = setTimeout(r, left)))]);
      clearTimeout(timer);
    }
  } finally {
    clearTimeout(timer);
    reader.close();
  }
}
