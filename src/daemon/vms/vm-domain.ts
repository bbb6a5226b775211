/**
 * The VMs of one daemon and their lifecycle (spec.ts):
 *
 *   Allocate: validated spec recorded, its cell (`_vms/<id>`, limits: memory and CPU) created
 *   Start:    allocated|stopped -> starting -> running (the guest's auraed answers TLS)
 *   Stop:     running -> stopping (ACPI power-off, kill after a timeout) -> stopped;
 *             starting -> stopped at once (the Start call fails); stopped: no-op
 *   Free:     allocated|stopped -> gone (cell freed, runtime files removed)
 *   QEMU exiting by itself (guest power-off, crash, `quit`) makes a running VM stopped.
 *
 * Status in List comes from QEMU (QMP query-status) whenever QEMU runs.
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { AuraeError, alreadyExists, failedPrecondition, notFound, unavailable } from "../errors.js";
import type { Logger } from "../logger.js";
import type { CellLimits } from "../../platform/cgroups/limits.js";
import { detectAccelerator, type AccelVerdict } from "../../platform/qemu/accel.js";
import type { Accelerator } from "../../platform/qemu/argv.js";
import { QmpError } from "../../platform/qemu/qmp.js";
import type { VmmLauncher, VmmProcess } from "./launcher.js";
import { MachineRun, StartError } from "./machine.js";
import type { VmSpec, VmState, VmView } from "./spec.js";
import type { StoredVm, StoredVmRun, VmStore } from "./vm-store.js";

export interface VmDomainOptions {
  launcher: VmmLauncher;
  /** per-VM runtime files live in `<runtimeDir>/vms/<id>` */
  runtimeDir: string;
  /** the daemon's CA certificate path: guests must present a certificate it signed */
  caCrt: string;
  logger?: Logger;
  /** how long Start waits for the guest's auraed (default 120000) */
  bootTimeoutMs?: number;
  /** how long Stop waits for the guest to power off before killing QEMU (default 20000) */
  powerdownTimeoutMs?: number;
  /** force an accelerator instead of detecting one */
  accel?: Accelerator;
  qemuBinary?: string;
  /** memory QEMU may use beyond the guest's RAM (cgroup memory.max headroom; default 384 MiB) */
  overheadMiB?: number;
  /** where VMs are recorded for a restarted daemon (restore()); without it they are not */
  store?: VmStore;
}

interface VmRecord {
  spec: VmSpec;
  state: VmState;
  run?: MachineRun;
  starting?: AbortController;
  /** settles when the current Start attempt has finished (either way) */
  startSettled?: Promise<unknown>;
  stopping?: Promise<void>;
  runs: number;
  lastExit?: string;
  /** the accelerator of the current run (recorded with it) */
  accel?: Accelerator;
}

/** The cgroup limits of a VM's cell: guest RAM plus QEMU's overhead; one CPU per vCPU plus half for I/O. */
export function vmCellLimits(spec: VmSpec, overheadMiB: number): CellLimits {
  return {
    memory: { maxBytes: (spec.memMiB + overheadMiB) * 1048576 },
    cpu: { maxUs: spec.vcpus * 100_000 + 50_000, periodUs: 100_000 },
  };
}

export class VmDomain {
  private readonly vms = new Map<string, VmRecord>();
  private closed = false;
  /** shutdown with keepWorkloads: QEMU processes are let go, not watched (a closed monitor is not an exit) */
  private lettingGo = false;
  private readonly o: Required<Pick<VmDomainOptions, "bootTimeoutMs" | "powerdownTimeoutMs" | "overheadMiB">> & VmDomainOptions;

  constructor(opts: VmDomainOptions) {
    // `??` per field: an option given as undefined (createVmService passes its deps through) keeps the default.
    this.o = {
      ...opts,
      bootTimeoutMs: opts.bootTimeoutMs ?? 120_000,
      powerdownTimeoutMs: opts.powerdownTimeoutMs ?? 20_000,
      overheadMiB: opts.overheadMiB ?? 384,
    };
  }

  private get(id: string, action: string): VmRecord {
    const vm = this.vms.get(id);
    if (!vm) throw notFound(`${action} vm '${id}': not found`);
    return vm;
  }

  async allocate(spec: VmSpec): Promise<string> {
    const action = `allocate vm '${spec.id}'`;
    if (this.closed) throw unavailable(`${action}: the daemon is shutting down`);
    if (this.vms.has(spec.id)) throw alreadyExists(`${action}: already exists`);
    const vm: VmRecord = { spec, state: "allocated", runs: 0 };
    this.vms.set(spec.id, vm); // reserve the id while the cell is created
    try {
      await this.o.launcher.prepare(spec.id, vmCellLimits(spec, this.o.overheadMiB));
    } catch (err) {
      this.vms.delete(spec.id);
      if (err instanceof AuraeError) throw new AuraeError(err.kind, `${action}: ${err.message}`);
      throw err;
    }
    this.record(vm);
    return spec.id;
  }

  start(id: string): Promise<string> {
    const vm = this.get(id, "start");
    if (this.closed) throw unavailable(`start vm '${id}': the daemon is shutting down`);
    if (vm.state !== "allocated" && vm.state !== "stopped") throw failedPrecondition(`start vm '${id}': it is ${vm.state}`);
    vm.state = "starting";
    const p = this.doStart(vm, id);
    vm.startSettled = p.catch(() => {});
    return p;
  }

  private async doStart(vm: VmRecord, id: string): Promise<string> {
    await vm.stopping; // the previous run's QEMU is released first
    const abort = new AbortController();
    vm.starting = abort;
    const runNo = ++vm.runs;
    this.record(vm); // a restarted daemon then knows which QEMU an unfinished Start left
    let verdict: AccelVerdict;
    try {
      verdict = await detectAccelerator({ kernel: vm.spec.kernel, binary: this.o.qemuBinary, force: this.o.accel });
      if (!verdict.cached) this.o.logger?.info(`vm accelerator: ${verdict.accel}`, { reason: verdict.reason });
      const run = await MachineRun.start({
        spec: vm.spec,
        accel: verdict.accel,
        dir: this.runDir(id),
        launcher: this.o.launcher,
        run: runNo,
        caCrt: readFileSync(this.o.caCrt),
        bootTimeoutMs: this.o.bootTimeoutMs,
        qemuBinary: this.o.qemuBinary,
        signal: abort.signal,
      });
      vm.run = run;
      vm.state = "running";
      vm.starting = undefined;
      vm.accel = verdict.accel;
      this.record(vm);
      this.o.logger?.info(`vm '${id}' running`, { address: run.address, accel: verdict.accel, bootMs: Math.round(performance.now() - run.startedAt) });
      void run.ended().then((how) => this.onExit(vm, run, how));
      return run.address;
    } catch (err) {
      vm.starting = undefined;
      vm.state = "stopped";
      vm.lastExit = (err as Error).message;
      this.record(vm);
      if (err instanceof StartError) {
        const m = `start vm '${id}': ${err.message}`;
        switch (err.reason) {
          case "aborted": throw failedPrecondition(m);
          case "trust": throw failedPrecondition(m);
          case "guest": throw new AuraeError("deadline_exceeded", m);
          default: throw unavailable(m);
        }
      }
      throw err;
    }
  }

  private onExit(vm: VmRecord, run: MachineRun, how: string): void {
    if (vm.run !== run || this.lettingGo) return;
    vm.lastExit = how;
    if (vm.state === "running") {
      this.o.logger?.warn(`vm '${vm.spec.id}' stopped by itself (${how})`);
      // Release QEMU's process record in its cell; the VM stays allocated.
      vm.stopping = run.kill().catch(() => {}).finally(() => { vm.stopping = undefined; });
    }
    vm.run = undefined;
    if (vm.state !== "stopping") vm.state = "stopped";
    this.record(vm);
  }

  async stop(id: string): Promise<void> {
    const vm = this.get(id, "stop");
    switch (vm.state) {
      case "allocated":
        throw failedPrecondition(`stop vm '${id}': it was never started`);
      case "starting":
        vm.starting?.abort();
        await vm.startSettled;
        return;
      case "stopped":
        await vm.stopping;
        return;
      case "stopping":
        return vm.stopping;
      case "running":
        break;
    }
    const run = vm.run!;
    vm.state = "stopping";
    vm.stopping = (async () => {
      const clean = await run.powerdown(this.o.powerdownTimeoutMs);
      if (!clean) this.o.logger?.warn(`vm '${id}' did not power off within ${this.o.powerdownTimeoutMs} ms: killing QEMU`);
      await run.kill();
    })().finally(() => {
      vm.run = undefined;
      vm.state = "stopped";
      vm.stopping = undefined;
      this.record(vm);
    });
    return vm.stopping;
  }

  async free(id: string): Promise<void> {
    const vm = this.get(id, "free");
    if (vm.state !== "allocated" && vm.state !== "stopped") throw failedPrecondition(`free vm '${id}': it is ${vm.state}; stop it first`);
    await vm.stopping;
    this.vms.delete(id);
    try {
      await this.o.launcher.release(id);
    } finally {
      rmSync(this.runDir(id), { recursive: true, force: true });
      this.o.store?.remove(id);
    }
  }

  async list(): Promise<VmView[]> {
    const out: VmView[] = [];
    for (const vm of [...this.vms.values()].sort((a, b) => (a.spec.id < b.spec.id ? -1 : 1))) {
      let status: string = vm.state;
      const run = vm.run;
      if (run?.qmp) {
        // QEMU closes its monitor only when it exits: a closed QMP is a stopped VM even if the
        // exit itself has not been processed yet.
        if (run.qmp.closed) status = "stopped";
        else {
          try {
            status = (await run.qmp.queryStatus(2000)).status;
          } catch (err) {
            status = err instanceof QmpError && err.errorClass === "Disconnected" ? "stopped" : "unresponsive";
          }
        }
      }
      out.push({ spec: vm.spec, state: vm.state, status, auraedAddress: vm.state === "running" && status !== "stopped" && vm.run ? vm.run.address : "" });
    }
    return out;
  }

  /**
   * Stops every VM (ACPI power-off, then kill) and frees them all. With `keepWorkloads` it only
   * lets go: every QEMU keeps running and every record stays, for the next daemon to adopt.
   */
  async shutdown(opts: { keepWorkloads?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (opts.keepWorkloads) {
      this.lettingGo = true;
      for (const vm of this.vms.values()) {
        vm.starting?.abort(); // a Start in progress fails; the VM is recorded as stopped
        vm.run?.qmp?.close();
      }
      await Promise.allSettled([...this.vms.values()].map((vm) => vm.startSettled));
      return;
    }
    const ids = [...this.vms.keys()];
    await Promise.allSettled(ids.map((id) => this.stop(id).catch(() => {})));
    const results = await Promise.allSettled(ids.map((id) => this.free(id)));
    for (const r of results) if (r.status === "rejected") this.o.logger?.error(`failed to free a vm during shutdown: ${(r.reason as Error).message}`);
    try {
      await this.o.launcher.close();
    } catch (err) {
      this.o.logger?.error(`failed to free the vms cell: ${(err as Error).message}`);
    }
  }

  private runDir(id: string): string {
    return join(this.o.runtimeDir, "vms", id);
  }

  /** Writes the VM's record (what a restarted daemon needs); logs instead of failing the call. */
  private record(vm: VmRecord): void {
    const store = this.o.store;
    if (!store || !this.vms.has(vm.spec.id)) return;
    const run = vm.state === "running" && vm.run ? vm.run : undefined;
    const rec: StoredVm = {
      format: 1,
      spec: vm.spec,
      runs: vm.runs,
      ...(run ? { run: { executable: `qemu-${vm.runs}`, port: run.port, accel: vm.accel ?? "tcg" } } : {}),
    };
    try {
      store.save(rec);
    } catch (err) {
      this.o.logger?.error(`vm '${vm.spec.id}': cannot record it (${(err as Error).message}); a restarted daemon will not know it`);
    }
  }

  /** Takes over a recorded run whose QEMU was re-adopted; false when its monitor does not answer (QEMU gone or hung). */
  private async adoptRun(vm: VmRecord, rec: StoredVmRun, vmm: VmmProcess): Promise<boolean> {
    const id = vm.spec.id;
    try {
      const run = await MachineRun.adopt({ spec: vm.spec, accel: rec.accel, dir: this.runDir(id), launcher: this.o.launcher, run: vm.runs, caCrt: readFileSync(this.o.caCrt), qemuBinary: this.o.qemuBinary }, vmm, rec.port);
      vm.run = run;
      vm.state = "running";
      vm.accel = rec.accel;
      void run.ended().then((how) => this.onExit(vm, run, how));
      this.o.logger?.info(`state: vm '${id}' re-adopted, running`, { address: run.address, pid: vmm.pid });
      return true;
    } catch (err) {
      this.o.logger?.debug(`state: vm '${id}': monitor: ${(err as Error).message}`);
      return false;
    }
  }

  /**
   * Rebuilds the VMs an earlier daemon recorded (after a crash, or an upgrade with
   * --keep-workloads), once the cells domain has re-adopted their cells:
   * - a VM whose QEMU still runs is running again: its monitor reconnected, its address the
   *   same; one whose QEMU does not answer its monitor is killed and shown stopped;
   * - a VM whose QEMU ended while no daemon watched is stopped (Start boots it again), and so
 *   is one that was starting (its QEMU is stopped: the Start call that asked for it is gone);
   * - a VM whose cell is gone gets a new one;
   * - a record that cannot be read is reported, and its cell left alone;
   * - a VM cell that no record explains is freed (its QEMU stopped).
   */
  async restore(): Promise<{ running: number; stopped: number; problems: number; freed: string[] }> {
    const store = this.o.store;
    const report = { running: 0, stopped: 0, problems: 0, freed: [] as string[] };
    if (!store) return report;
    const loaded = store.load();
    const log = this.o.logger;
    for (const p of loaded.problems) {
      report.problems++;
      log?.error(`state: ${p.file} cannot be read (${p.error}): vm '${p.id}' and its cell are left as they are`);
    }
    const prepared = new Set(this.o.launcher.prepared?.() ?? []);
    for (const rec of loaded.vms) {
      const id = rec.spec.id;
      const vm: VmRecord = { spec: rec.spec, state: "stopped", runs: rec.runs };
      this.vms.set(id, vm);
      if (!prepared.has(id)) {
        try {
          await this.o.launcher.prepare(id, vmCellLimits(rec.spec, this.o.overheadMiB));
        } catch (err) {
          log?.error(`state: vm '${id}': cannot re-create its cell: ${(err as Error).message}`);
        }
      }
      // the QEMU of its last run: the one it ran, or the one an unfinished Start left
      const exe = rec.run?.executable ?? (rec.runs > 0 ? `qemu-${rec.runs}` : undefined);
      const vmm = exe ? this.o.launcher.adopt?.(id, exe) : undefined;
      if (rec.run && vmm && (await this.adoptRun(vm, rec.run, vmm))) {
        report.running++;
        continue;
      }
      if (vmm) {
        log?.warn(
          rec.run
            ? `state: vm '${id}': its QEMU (pid ${vmm.pid}) ended or does not answer its monitor: stopped`
            : `state: vm '${id}' was starting when the daemon stopped: stopping its QEMU (pid ${vmm.pid})`,
        );
        vm.lastExit = "ended while the daemon was down";
        await vmm.stop().catch(() => {}); // kills what is left and releases its executable record
      } else if (rec.run) {
        log?.warn(`state: vm '${id}': its QEMU is not known any more: stopped`);
      }
      if (rec.runs === 0) vm.state = "allocated";
      report.stopped++;
      this.record(vm);
    }
    const unreadable = new Set(loaded.problems.map((p) => p.id));
    for (const id of prepared) {
      if (this.vms.has(id) || unreadable.has(id)) continue;
      log?.warn(`state: vm cell '${id}' has no record: freeing it`);
      try {
        await this.o.launcher.release(id);
        report.freed.push(id);
      } catch (err) {
        log?.error(`state: cannot free vm cell '${id}': ${(err as Error).message}`);
      }
    }
    return report;
  }
}
