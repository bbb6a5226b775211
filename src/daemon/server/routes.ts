import { status } from "@grpc/grpc-js";
import { VmServiceService } from "../../api/aurae/vms/v0/vms.js";
import type { DaemonContext, ServiceModule } from "../context.js";
import { createCellService } from "../cells/service.js";
import { createObserveService } from "../observe/service.js";
import { unavailableModule } from "./unimplemented.js";

/**
 * Builds the Aurae services of one daemon, in dependency order: cells first (it re-adopts
 * what an earlier daemon left running), observe on cells' executable directory, VMs on cells'
 * domain (their QEMU processes run in cells). A service whose implementation is not built in
 * answers UNIMPLEMENTED, never crashes.
 */
export async function buildAuraeServices(ctx: DaemonContext): Promise<ServiceModule[]> {
  const cells = await createCellService(ctx);
  return [
    cells,
    createObserveService(ctx, { directory: cells.directory }),
    unavailableModule("aurae.vms.v0.VmService", VmServiceService, "micro-VMs are not built into this daemon yet", status.UNIMPLEMENTED),
  ];
}
