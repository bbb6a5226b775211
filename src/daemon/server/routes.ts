import { CellServiceService } from "../../api/aurae/cells/v0/cells.js";
import { ObserveServiceService } from "../../api/aurae/observe/v0/observe.js";
import { VmServiceService } from "../../api/aurae/vms/v0/vms.js";
import type { DaemonContext, ServiceModule } from "../context.js";
import { createVmService } from "../vms/service.js";
import { unavailableModule } from "./unimplemented.js";

/**
 * Builds the Aurae services of one daemon, in dependency order: observe's output sinks feed
 * cells; cells' executable directory feeds observe; cells' domain runs VMs' QEMU processes.
 * A service whose implementation is not built in answers UNIMPLEMENTED, never crashes.
 */
export async function buildAuraeServices(ctx: DaemonContext): Promise<ServiceModule[]> {
  const modules: ServiceModule[] = [];
  const optional = async <T>(path: string): Promise<T | undefined> => {
    try {
      return (await import(path)) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND" && String(err).includes(path.split("/").slice(-2).join("/"))) return undefined;
      throw err;
    }
  };

  // Typed loosely until every service has landed; then these become static imports.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  type OutputMod = any; type CellsMod = any; type ObserveMod = any;
  const outputMod = await optional<OutputMod>("../observe/output-log.js");
  const cellsMod = await optional<CellsMod>("../cells/service.js");
  const observeMod = await optional<ObserveMod>("../observe/service.js");

  const outputs = outputMod?.createOutputSinkFactory();
  const cells = cellsMod && outputs ? cellsMod.createCellService(ctx, { outputs }) : undefined;
  modules.push(cells ?? unavailableModule("aurae.cells.v0.CellService", CellServiceService, "cells are not built into this daemon yet"));
  modules.push(
    observeMod && cells
      ? observeMod.createObserveService(ctx, { directory: cells.directory })
      : unavailableModule("aurae.observe.v0.ObserveService", ObserveServiceService, "observe is not built into this daemon yet"),
  );
  // Each VM's QEMU runs in a cell of its own; without the cells domain it would run unlimited,
  // which a daemon never does. The daemon shuts modules down in reverse order: VMs (powered
  // off and freed) before the cells they run in.
  modules.push(
    cells
      ? createVmService(ctx, { cells: cells.domain })
      : unavailableModule("aurae.vms.v0.VmService", VmServiceService, "micro-VMs need the cells domain, which is not built into this daemon"),
  );
  return modules;
}
