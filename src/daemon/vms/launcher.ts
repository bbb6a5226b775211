/**
 * Where a VM's QEMU process runs. In the daemon it runs inside a cell of its own
 * (`_vms/<id>`), so the cell's cgroup limits bind it and Free of the cell leaves nothing;
 * without a cells domain (unit tests, benchmarks, hosts without cgroups) it runs as a plain
 * child.
 *
 * The rest of the VM service sees only VmmProcess: a pid, an exit promise, stop() and the tail
 * of QEMU's stderr. How the process is spawned and how its output is collected (in a cell:
 * through aurae-shim, output in files; as a plain child: pipes) stays in this file.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { CellLimits } from "../../platform/cgroups/limits.js";
import type { CellSpec } from "../cells/spec.js";

export interface VmmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running QEMU, as the VM service uses it. */
export interface VmmProcess {
  /** QEMU's pid on the host */
  readonly pid: number;
  /** settles once QEMU has exited, for whatever reason */
  readonly exited: Promise<VmmExit>;
  /** SIGTERM, a grace period, SIGKILL; resolves when nothing of it runs and its name is released */
  stop(): Promise<void>;
  /** the last few KB QEMU wrote to stderr (trimmed), for error messages */
  stderrTail(): string;
}

/** A process in a cell, as the cells domain hands it out (its CellProcess). */
export interface CellVmmProcess {
  pid: number;
  hostPid: number;
  exited: Promise<VmmExit>;
  stop(): Promise<void>;
  stderrTail(maxBytes?: number): string;
}

/** What the VM service needs from the cells domain (CellDomain satisfies it). */
export interface VmCells {
  allocate(spec: CellSpec, opts?: { internal?: boolean }): Promise<unknown>;
  free(name: string): Promise<void>;
  hasCell(name: string): boolean;
  childCells(name: string): string[];
  adoptedProcess(cellName: string, name: string): CellVmmProcess | undefined;
  spawnInCell(cellName: string, argv: string[], opts?: { name?: string; description?: string }): Promise<CellVmmProcess>;
}

export interface VmmLauncher {
  /** where the VMs' QEMU processes run, for logs and docs */
  readonly kind: "cell" | "process";
  /** Reserves the VM's resources (its cell) with these limits. */
  prepare(id: string, limits: CellLimits): Promise<void>;
  launch(id: string, argv: string[], run: number): Promise<VmmProcess>;
  /** Releases what prepare reserved. */
  release(id: string): Promise<void>;
  /** The VMs whose resources an earlier daemon prepared and this one re-adopted (their ids). */
  prepared?(): string[];
  /** A QEMU an earlier daemon launched for `id` as executable `name` (re-adopted), if it is known. */
  adopt?(id: string, name: string): VmmProcess | undefined;
  /** Releases what the launcher itself holds (the `_vms` parent cell). */
  close(): Promise<void>;
}

export const VMS_CELL = "_vms";
export const vmCellName = (id: string) => `${VMS_CELL}/${id}`;

/** How much of QEMU's stderr is kept for error messages. */
const STDERR_TAIL_BYTES = 4096;

/** A VmmProcess over a Node child with piped stdout/stderr: stderr's tail is kept, stdout is drained. */
function childVmm(child: ChildProcess, pid: number, stop: () => Promise<void>): VmmProcess {
  let tail = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    tail = (tail + d).slice(-STDERR_TAIL_BYTES);
  });
  child.stdout?.resume();
  const own = new Promise<VmmExit>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  return { pid, exited: own, stop, stderrTail: () => tail.trim() };
}

/** A QEMU running in its VM's cell, as the VM service sees it. */
function vmmOf(p: CellVmmProcess): VmmProcess {
  return { pid: p.hostPid, exited: p.exited, stop: () => p.stop(), stderrTail: () => p.stderrTail(STDERR_TAIL_BYTES).trim() };
}

export function cellLauncher(cells: VmCells): VmmLauncher {
  return {
    kind: "cell",
    async prepare(id, limits) {
      if (!cells.hasCell(VMS_CELL)) {
        await cells.allocate({ name: VMS_CELL, limits: {}, isolateProcess: false, isolateNetwork: false }, { internal: true });
      }
      await cells.allocate({ name: vmCellName(id), limits, isolateProcess: false, isolateNetwork: false }, { internal: true });
    },
    async launch(id, argv, run) {
      return vmmOf(await cells.spawnInCell(vmCellName(id), argv, { name: `qemu-${run}`, description: `QEMU of vm '${id}'` }));
    },
    async release(id) {
      if (cells.hasCell(vmCellName(id))) await cells.free(vmCellName(id));
    },
    prepared() {
      return cells.childCells(VMS_CELL).map((c) => c.slice(VMS_CELL.length + 1));
    },
    adopt(id, name) {
      const p = cells.adoptedProcess(vmCellName(id), name);
      return p && vmmOf(p);
    },
    async close() {
      if (cells.hasCell(VMS_CELL)) await cells.free(VMS_CELL);
    },
  };
}

/** QEMU as a plain child process (no cgroup limits); `graceMs` between SIGTERM and SIGKILL. */
export function processLauncher(graceMs = 5000): VmmLauncher {
  return {
    kind: "process",
    async prepare() {},
    async launch(_id, argv) {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", resolve);
        child.once("error", reject);
      });
      const vmm: VmmProcess = childVmm(child, child.pid!, async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await vmm.exited;
        clearTimeout(timer);
      });
      return vmm;
    },
    async release() {},
    prepared: () => [],
    adopt: () => undefined,
    async close() {},
  };
}
