import type { DaemonContext, ServiceModule } from "../context.js";
import { createCellService } from "../cells/service.js";
import { createObserveService } from "../observe/service.js";
import { createVmService } from "../vms/service.js";

/**
 * Builds the Aurae services of one daemon, in dependency order: cells first (it re-adopts
 * what an earlier daemon left running), observe on cells' executable directory, VMs on cells'
 * domain (each VM's QEMU runs in a cell of its own; the VMs it recorded are restored once those
 * cells are adopted). The daemon shuts modules down in reverse
 * order: VMs (powered off and freed) before the cells they run in.
 */
export async function buildAuraeServices(ctx: DaemonContext): Promise<ServiceModule[]> {
  const cells = await createCellService(ctx);
  const vms = createVmService(ctx, { cells: cells.domain });
  // the VMs an earlier daemon recorded, now that their cells (and QEMU processes) are adopted
  const r = await vms.domain.restore();
  if (r.running + r.stopped + r.problems + r.freed.length > 0) ctx.logger.info("state: vms re-adopted", r);
  return [cells, createObserveService(ctx, { directory: cells.directory }), vms];
}
