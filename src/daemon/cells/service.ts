/**
 * The gRPC adapter of aurae.cells.v0.CellService: parse and validate, call the domain,
 * build the response. Errors are AuraeErrors mapped to status codes by server/rpc.ts.
 */
import {
  CellServiceService,
  type Cell,
  type CellGraphNode,
  type CellServiceAllocateRequest,
  type CellServiceAllocateResponse,
  type CellServiceFreeRequest,
  type CellServiceFreeResponse,
  type CellServiceListRequest,
  type CellServiceListResponse,
  type CellServiceStartRequest,
  type CellServiceStartResponse,
  type CellServiceStopRequest,
  type CellServiceStopResponse,
  type ExecutableStatus,
} from "../../api/aurae/cells/v0/cells.js";
import type { DaemonContext, ServiceModule } from "../context.js";
import type { ExecutableDirectory } from "../observe/ports.js";
import { unary } from "../server/rpc.js";
import { CgroupDriver } from "../../platform/cgroups/driver.js";
import { detectCgroupLayout, type CgroupLayout } from "../../platform/cgroups/layout.js";
import { startReaper } from "../../platform/reaper.js";
import { adopt } from "./adopt.js";
import { CellDomain } from "./cell-domain.js";
import { StateStore } from "./store.js";
import { tryLock, type Lock } from "../../platform/fs/lock.js";
import type { CellSpec, CellView, ExecutableView } from "./spec.js";
import { parseAllocateRequest, parseFreeRequest, parseStartRequest, parseStopRequest } from "./validation.js";
import { unavailable } from "../errors.js";

export interface CellsModule extends ServiceModule {
  directory: ExecutableDirectory;
  domain: CellDomain;
}

export interface CellServiceDeps {
  /** default: detected from /proc/self/mountinfo */
  layout?: CgroupLayout;
}

/** The Cell message as allocated (echoed by List). */
export function cellToProto(spec: CellSpec): Cell {
  const l = spec.limits;
  return {
    name: spec.name,
    cpu: l.cpu && { weight: l.cpu.weight, max: l.cpu.maxUs, period: l.cpu.periodUs },
    cpuset: l.cpuset && { cpus: l.cpuset.cpus, mems: l.cpuset.mems },
    memory: l.memory && { min: l.memory.minBytes, low: l.memory.lowBytes, high: l.memory.highBytes, max: l.memory.maxBytes },
    pids: l.pids && { max: l.pids.max },
    isolateProcess: spec.isolateProcess,
    isolateNetwork: spec.isolateNetwork,
  };
}

function executableToProto(e: ExecutableView): ExecutableStatus {
  return {
    name: e.name,
    command: e.command,
    description: e.description,
    pid: e.pid,
    hostPid: e.hostPid,
    state: e.state,
    exitCode: e.exitCode,
    exitSignal: e.exitSignal,
    uid: e.uid,
    gid: e.gid,
  };
}

function nodeToProto(v: CellView): CellGraphNode {
  return { cell: cellToProto(v.spec), children: v.children.map(nodeToProto), executables: v.executables.map(executableToProto) };
}

/**
 * Builds the cells service: detects the cgroup layout, prepares the daemon's parent cgroup,
 * and re-adopts what an earlier daemon left running (adopt.ts).
 */
export async function createCellService(ctx: DaemonContext, deps: CellServiceDeps = {}): Promise<CellsModule> {
  let layout: CgroupLayout;
  let driver: CgroupDriver;
  try {
    layout = deps.layout ?? detectCgroupLayout();
    driver = new CgroupDriver({ layout, parent: ctx.cgroupParent });
    driver.init();
  } catch (err) {
    throw unavailable(`cells: cgroups are not usable here: ${(err as Error).message}`);
  }
  const store = new StateStore(ctx.runtimeDir);
  const storeProblem = store.open();
  // One daemon per state store and per cgroup parent: a second one would take the first's
  // workloads for leftovers. The kernel drops these locks when the daemon dies.
  const locks: Lock[] = [];
  for (const path of [store.dir, driver.trackerDir("")]) {
    const lock = tryLock(path);
    if (!lock) {
      for (const l of locks) l.release();
      // only what init made just now: the rest belongs to the other daemon
      driver.undoInit();
      throw unavailable(`cells: another auraed owns ${path}; stop it first, or give this one another --runtime-dir and --cgroup-parent`);
    }
    locks.push(lock);
  }
  const reaper = startReaper({
    onReap: (r) => ctx.logger.debug("reaped an orphan", { pid: r.pid, code: r.code, signal: r.signal }),
  });
  const domain = new CellDomain({
    driver,
    store,
    stopGraceMs: ctx.stopGraceMs,
    reaper,
    logger: ctx.logger,
    output: ctx.outputRetentionBytes ? { retainBytes: ctx.outputRetentionBytes } : undefined,
  });
  const log = ctx.logger;
  ctx.logger.info("cells: cgroups ready", { mode: driver.mode, cgroupV2: driver.cgroupV2, parent: driver.parent });
  if (storeProblem) {
    throw unavailable(`cells: the state store ${storeProblem.file} ${storeProblem.reason}; move it away (nothing it records was touched) or run with another --runtime-dir`);
  }
  const report = await adopt(domain, store.load(), ctx.logger);
  if (report.cells || report.leftovers.length || report.problems) ctx.logger.info("cells: re-adopted the earlier daemon's workloads", { ...report, leftovers: report.leftovers.length });

  const implementation = {
    allocate: unary<CellServiceAllocateRequest, CellServiceAllocateResponse>(log, "Allocate", async (req) => {
      const r = await domain.allocate(parseAllocateRequest(req));
      return { cellName: r.cellName, cgroupV2: r.cgroupV2 };
    }),
    free: unary<CellServiceFreeRequest, CellServiceFreeResponse>(log, "Free", async (req) => {
      await domain.free(parseFreeRequest(req));
      return {};
    }),
    start: unary<CellServiceStartRequest, CellServiceStartResponse>(log, "Start", async (req) => {
      const r = await domain.start(parseStartRequest(req));
      return { pid: r.pid, uid: r.uid, gid: r.gid, hostPid: r.hostPid };
    }),
    stop: unary<CellServiceStopRequest, CellServiceStopResponse>(log, "Stop", async (req) => {
      const r = parseStopRequest(req);
      await domain.stop(r.cellName, r.name);
      return {};
    }),
    list: unary<CellServiceListRequest, CellServiceListResponse>(log, "List", async () => ({ cells: domain.list().map(nodeToProto) })),
  };

  return {
    name: "aurae.cells.v0.CellService",
    definition: CellServiceService,
    implementation,
    directory: domain,
    domain,
    async shutdown() {
      try {
        await domain.shutdown({ keepWorkloads: ctx.keepWorkloads });
      } finally {
        reaper.stop();
        for (const l of locks) l.release();
      }
    },
    async abandon() {
      try {
        await domain.shutdown({ keepWorkloads: true });
      } finally {
        reaper.stop();
        for (const l of locks) l.release();
      }
    },
  };
}
