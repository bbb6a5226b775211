/**
 * The gRPC adapter of aurae.vms.v0.VmService: parse and validate, call the domain, build the
 * response. Errors are AuraeErrors, mapped to status codes once by rpc.ts.
 */
import {
  VmServiceService,
  type VirtualMachineSummary,
  type VmServiceAllocateRequest,
  type VmServiceAllocateResponse,
  type VmServiceFreeRequest,
  type VmServiceFreeResponse,
  type VmServiceListRequest,
  type VmServiceListResponse,
  type VmServiceStartRequest,
  type VmServiceStartResponse,
  type VmServiceStopRequest,
  type VmServiceStopResponse,
} from "../../api/aurae/vms/v0/vms.js";
import type { DaemonContext, ServiceModule } from "../context.js";
import { unary } from "../server/rpc.js";
import type { Accelerator } from "../../platform/qemu/argv.js";
import { cellLauncher, processLauncher, type VmCells, type VmmLauncher } from "./launcher.js";
import type { VmView } from "./spec.js";
import { checkVmId, parseVirtualMachine } from "./validation.js";
import { VmDomain } from "./vm-domain.js";
import { VmStore } from "./vm-store.js";

export interface VmServiceDeps {
  /** the cells domain: each VM's QEMU runs in its own cell `_vms/<id>` (without it: plain child processes) */
  cells?: VmCells;
  /** overrides cells (tests) */
  launcher?: VmmLauncher;
  /** how long Start waits for the guest's auraed (default 120000 ms) */
  bootTimeoutMs?: number;
  /** how long Stop waits for the guest's power-off before killing QEMU (default 20000 ms) */
  powerdownTimeoutMs?: number;
  /** default: the AURAE_VM_ACCEL environment variable (kvm|tcg), else detected */
  accel?: Accelerator;
  /** default: `<runtime>/state/vms` when QEMU runs in cells */
  store?: VmStore;
}

export interface VmsModule extends ServiceModule {
  domain: VmDomain;
}

export function summary(v: VmView): VirtualMachineSummary {
  return {
    id: v.spec.id,
    status: v.status,
    memSizeMb: v.spec.memMiB,
    vcpuCount: v.spec.vcpus,
    kernelImgPath: v.spec.kernel,
    rootDirPath: v.spec.initramfs,
    auraedAddress: v.auraedAddress,
  };
}

function accelFromEnv(): Accelerator | undefined {
  const v = process.env.AURAE_VM_ACCEL;
  return v === "kvm" || v === "tcg" ? v : undefined;
}

export function createVmService(ctx: DaemonContext, deps: VmServiceDeps = {}): VmsModule {
  const log = ctx.logger;
  const launcher = deps.launcher ?? (deps.cells ? cellLauncher(deps.cells) : processLauncher(ctx.stopGraceMs));
  if (launcher.kind === "process") log.warn("vms: no cells domain given: QEMU processes run without cgroup limits");
  const domain = new VmDomain({
    launcher,
    runtimeDir: ctx.runtimeDir,
    caCrt: ctx.tls.caCrt,
    logger: log,
    bootTimeoutMs: deps.bootTimeoutMs,
    powerdownTimeoutMs: deps.powerdownTimeoutMs,
    accel: deps.accel ?? accelFromEnv(),
    // recorded for a restarted daemon when QEMU runs in cells (which the cells domain re-adopts)
    store: deps.store ?? (launcher.kind === "cell" ? new VmStore(ctx.runtimeDir) : undefined),
  });

  const implementation = {
    allocate: unary<VmServiceAllocateRequest, VmServiceAllocateResponse>(log, "Allocate", async (req) => ({
      vmId: await domain.allocate(parseVirtualMachine(req.machine)),
    })),
    free: unary<VmServiceFreeRequest, VmServiceFreeResponse>(log, "Free", async (req) => {
      checkVmId("free vm", req.vmId);
      await domain.free(req.vmId);
      return {};
    }),
    start: unary<VmServiceStartRequest, VmServiceStartResponse>(log, "Start", async (req) => {
      checkVmId("start vm", req.vmId);
      return { auraedAddress: await domain.start(req.vmId) };
    }),
    stop: unary<VmServiceStopRequest, VmServiceStopResponse>(log, "Stop", async (req) => {
      checkVmId("stop vm", req.vmId);
      await domain.stop(req.vmId);
      return {};
    }),
    list: unary<VmServiceListRequest, VmServiceListResponse>(log, "List", async () => ({
      machines: (await domain.list()).map(summary),
    })),
  };

  return {
    name: "aurae.vms.v0.VmService",
    definition: VmServiceService,
    implementation,
    domain,
    shutdown: () => domain.shutdown({ keepWorkloads: ctx.keepWorkloads }),
    abandon: () => domain.shutdown({ keepWorkloads: true }),
  };
}
