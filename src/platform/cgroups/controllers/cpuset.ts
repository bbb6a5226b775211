/**
 * The cpuset controller: `cpuset.cpus` and `cpuset.mems` (same file names on v1 and v2).
 * Lists must parse, be non-empty and lie within the parent's effective set; a v1 cpuset
 * cgroup starts empty, so the driver makes new ones inherit their parent's (clone_children).
 */
import { CgroupLimitError, type CgroupWrite, type CpusetLimits } from "../limits.js";
import { formatCpuList, isSubset, parseCpuList } from "../cpulist.js";

function checkList(field: string, text: string): void {
  let ranges;
  try {
    ranges = parseCpuList(text);
  } catch (err) {
    throw new CgroupLimitError(field, "invalid", `${field} '${text}' is not a valid list: ${(err as Error).message}`);
  }
  if (ranges.length === 0) throw new CgroupLimitError(field, "invalid", `${field} must not be empty`);
}

export function checkCpuset(cpuset: CpusetLimits): void {
  if (cpuset.cpus !== undefined) checkList("cpuset.cpus", cpuset.cpus);
  if (cpuset.mems !== undefined) checkList("cpuset.mems", cpuset.mems);
}

/** Throws unless `text` lies within `parentEffective` (both in list syntax). */
export function checkWithinParent(field: string, text: string, parentEffective: string): void {
  const parent = parseCpuList(parentEffective);
  if (!isSubset(parseCpuList(text), parent)) {
    throw new CgroupLimitError(field, "invalid", `${field} '${text}' is not within the parent's set '${formatCpuList(parent)}'`);
  }
}

export function cpusetWrites(cpuset: CpusetLimits): CgroupWrite[] {
  const w: CgroupWrite[] = [];
  // Normalised so that the kernel sees exactly what we validated.
  if (cpuset.cpus !== undefined) w.push({ controller: "cpuset", file: "cpuset.cpus", value: formatCpuList(parseCpuList(cpuset.cpus)), field: "cpuset.cpus" });
  if (cpuset.mems !== undefined) w.push({ controller: "cpuset", file: "cpuset.mems", value: formatCpuList(parseCpuList(cpuset.mems)), field: "cpuset.mems" });
  return w;
}
