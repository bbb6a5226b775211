/**
 * Where a VM's QEMU process runs. In the daemon it runs inside a cell of its own
 * (`_vms/<id>`), so the cell's cgroup limits bind it and Free of the cell leaves nothing;
 * without a cells domain (unit tests, hosts without cgroups) it runs as a plain child.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { CellLimits } from "../../platform/cgroups/limits.js";
import type { CellSpec } from "../cells/spec.js";

export interface VmmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface VmmProcess {
  pid: number;
  child: ChildProcess;
  exited: Promise<VmmExit>;
  /** SIGTERM, a grace period, SIGKILL; resolves when nothing of it runs and its name is released */
  stop(): Promise<void>;
}

/** What the VM service needs from the cells domain (CellDomain satisfies it). */
export interface VmCells {
  allocate(spec: CellSpec, opts?: { internal?: boolean }): unknown;
  free(name: string): Promise<void>;
  hasCell(name: string): boolean;
  spawnInCell(
    cellName: string,
    argv: string[],
    opts?: { name?: string; output?: "sinks" | "pipe" | "ignore"; description?: string },
  ): Promise<{ pid: number; hostPid: number; child: ChildProcess; exited: Promise<VmmExit>; stop(): Promise<void> }>;
}

export interface VmmLauncher {
  /** where the VMs' QEMU processes run, for logs and docs */
  readonly kind: "cell" | "process";
  /** Reserves the VM's resources (its cell) with these limits. */
  prepare(id: string, limits: CellLimits): Promise<void>;
  launch(id: string, argv: string[], run: number): Promise<VmmProcess>;
  /** Releases what prepare reserved. */
  release(id: string): Promise<void>;
  /** Releases what the launcher itself holds (the `_vms` parent cell). */
  close(): Promise<void>;
}

export const VMS_CELL = "_vms";
export const vmCellName = (id: string) => `${VMS_CELL}/${id}`;

export function cellLauncher(cells: VmCells): VmmLauncher {
  return {
    kind: "cell",
    async prepare(id, limits) {
      if (!cells.hasCell(VMS_CELL)) {
        cells.allocate({ name: VMS_CELL, limits: {}, isolateProcess: false, isolateNetwork: false }, { internal: true });
      }
      cells.allocate({ name: vmCellName(id), limits, isolateProcess: false, isolateNetwork: false }, { internal: true });
    },
    async launch(id, argv, run) {
      const p = await cells.spawnInCell(vmCellName(id), argv, { name: `qemu-${run}`, output: "pipe", description: `QEMU of vm '${id}'` });
      return { pid: p.hostPid, child: p.child, exited: p.exited, stop: () => p.stop() };
    },
    async release(id) {
      if (cells.hasCell(vmCellName(id))) await cells.free(vmCellName(id));
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
      const exited = new Promise<VmmExit>((r) => child.once("exit", (code, signal) => r({ code, signal })));
      return {
        pid: child.pid!,
        child,
        exited,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill("SIGTERM");
            const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
            await exited;
            clearTimeout(timer);
          }
        },
      };
    },
    async release() {},
    async close() {},
  };
}
