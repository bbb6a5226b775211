/**
 * The resource limits of one cell, as validated domain values (units in the names' docs),
 * and the error controllers raise for values the kernel would refuse or cannot express.
 */

export interface CpuLimits {
  /** relative weight 1..10000 (cgroup v2 cpu.weight) */
  weight?: number;
  /** quota in µs of CPU time per period */
  maxUs?: number;
  /** period in µs (default 100000) */
  periodUs?: number;
}

export interface CpusetLimits {
  /** cpu list, e.g. "0-3,8" */
  cpus?: string;
  /** memory node list, e.g. "0" */
  mems?: string;
}

export interface MemoryLimits {
  minBytes?: number;
  lowBytes?: number;
  highBytes?: number;
  maxBytes?: number;
}

export interface PidsLimits {
  max?: number;
}

export interface CellLimits {
  cpu?: CpuLimits;
  cpuset?: CpusetLimits;
  memory?: MemoryLimits;
  pids?: PidsLimits;
}

export type ControllerName = "cpu" | "cpuacct" | "cpuset" | "memory" | "pids";

/** One file write in a cell's cgroup. `field` names the limit it comes from (e.g. "cpu.max"). */
export interface CgroupWrite {
  controller: ControllerName;
  file: string;
  value: string;
  field: string;
}

/**
 * A limit the kernel would refuse ("invalid") or that this host cannot express ("unsupported").
 * `field` is the limit's name as in the API (`cpu.max`, `memory.min`, `pids.max`).
 */
export class CgroupLimitError extends Error {
  readonly field: string;
  readonly reason: "invalid" | "unsupported";
  constructor(field: string, reason: "invalid" | "unsupported", message: string) {
    super(message);
    this.name = "CgroupLimitError";
    this.field = field;
    this.reason = reason;
  }
}

export function checkInteger(field: string, value: number, min: number, max: number, unit = ""): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new CgroupLimitError(field, "invalid", `${field} ${value}${unit} is outside ${min}..${max}${unit}`);
  }
}
