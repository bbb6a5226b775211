/**
 * Requests of aurae.cells.v0.CellService parsed into domain specs. Everything a client can
 * send is checked here (names, value ranges the kernel would refuse, sizes); what depends on
 * the host or on other cells (ancestors, the parent's cpuset, v1 limits) is checked by the domain.
 * Every refusal is INVALID_ARGUMENT naming the field.
 */
import type {
  Cell,
  CellServiceAllocateRequest,
  CellServiceFreeRequest,
  CellServiceStartRequest,
  CellServiceStopRequest,
} from "../../api/aurae/cells/v0/cells.js";
import { invalidArgument } from "../errors.js";
import { CgroupLimitError, type CellLimits } from "../../platform/cgroups/limits.js";
import { checkCpu } from "../../platform/cgroups/controllers/cpu.js";
import { checkCpuset } from "../../platform/cgroups/controllers/cpuset.js";
import { checkMemory } from "../../platform/cgroups/controllers/memory.js";
import { checkPids } from "../../platform/cgroups/controllers/pids.js";
import { checkCellName, checkExecutableName, clip } from "./names.js";
import type { CellSpec, StartSpec } from "./spec.js";

/** The kernel's limit on one argument string (MAX_ARG_STRLEN, including its NUL). */
export const COMMAND_MAX_BYTES = 131071;
export const DESCRIPTION_MAX_BYTES = 65536;
/** setuid/setgid refuse (uid_t)-1 */
export const ID_MAX = 4294967294;

/** Cell message -> CellSpec; `allowReserved` is for the daemon's own cells. */
export function parseCell(action: string, cell: Cell | undefined, opts: { allowReserved?: boolean } = {}): CellSpec {
  if (!cell) throw invalidArgument(`${action}: cell is required`);
  checkCellName(action, "cell.name", cell.name, opts);
  const act = `${action} '${cell.name}'`;
  const limits: CellLimits = {};
  if (cell.cpu) limits.cpu = { weight: cell.cpu.weight, maxUs: cell.cpu.max, periodUs: cell.cpu.period };
  if (cell.cpuset) limits.cpuset = { cpus: cell.cpuset.cpus, mems: cell.cpuset.mems };
  if (cell.memory) {
    limits.memory = { minBytes: cell.memory.min, lowBytes: cell.memory.low, highBytes: cell.memory.high, maxBytes: cell.memory.max };
  }
  if (cell.pids) limits.pids = { max: cell.pids.max };
  try {
    if (limits.cpu) checkCpu(limits.cpu);
    if (limits.cpuset) checkCpuset(limits.cpuset);
    if (limits.memory) checkMemory(limits.memory);
    if (limits.pids) checkPids(limits.pids);
  } catch (err) {
    if (err instanceof CgroupLimitError) throw invalidArgument(`${act}: cell.${err.message}`);
    throw err;
  }
  return { name: cell.name, limits, isolateProcess: cell.isolateProcess, isolateNetwork: cell.isolateNetwork };
}

export function parseAllocateRequest(req: CellServiceAllocateRequest): CellSpec {
  return parseCell("allocate cell", req.cell);
}

export function parseFreeRequest(req: CellServiceFreeRequest): string {
  checkCellName("free cell", "cell_name", req.cellName);
  return req.cellName;
}

function checkId(action: string, field: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > ID_MAX)) {
    throw invalidArgument(`${action}: ${field} ${v} is outside 0..${ID_MAX}`);
  }
}

/** An empty cell_name means "no cell" (the daemon's executables cell), like an absent one. */
function optionalCell(name: string | undefined): string | undefined {
  return name === undefined || name === "" ? undefined : name;
}

export function parseStartRequest(req: CellServiceStartRequest): StartSpec {
  req = { ...req, cellName: optionalCell(req.cellName) };
  const exe = req.executable;
  const where = req.cellName !== undefined ? ` in cell '${clip(req.cellName)}'` : "";
  if (!exe) throw invalidArgument(`start executable${where}: executable is required`);
  const action = `start executable '${clip(exe.name)}'${where}`;
  if (req.cellName !== undefined) checkCellName(action, "cell_name", req.cellName);
  checkExecutableName(action, "executable.name", exe.name);
  if (exe.command.trim() === "") throw invalidArgument(`${action}: executable.command must not be empty`);
  if (exe.command.includes("\0")) throw invalidArgument(`${action}: executable.command must not contain NUL bytes`);
  if (Buffer.byteLength(exe.command) > COMMAND_MAX_BYTES) {
    throw invalidArgument(`${action}: executable.command is longer than ${COMMAND_MAX_BYTES} bytes`);
  }
  if (Buffer.byteLength(exe.description) > DESCRIPTION_MAX_BYTES) {
    throw invalidArgument(`${action}: executable.description is longer than ${DESCRIPTION_MAX_BYTES} bytes`);
  }
  checkId(action, "uid", req.uid);
  checkId(action, "gid", req.gid);
  return { cellName: req.cellName, name: exe.name, command: exe.command, description: exe.description, uid: req.uid, gid: req.gid };
}

export function parseStopRequest(req: CellServiceStopRequest): { cellName?: string; name: string } {
  req = { ...req, cellName: optionalCell(req.cellName) };
  const where = req.cellName !== undefined ? ` in cell '${clip(req.cellName)}'` : "";
  const action = `stop executable '${clip(req.executableName)}'${where}`;
  if (req.cellName !== undefined) checkCellName(action, "cell_name", req.cellName);
  checkExecutableName(action, "executable_name", req.executableName);
  return { cellName: req.cellName, name: req.executableName };
}
