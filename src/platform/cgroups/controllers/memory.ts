/**
 * The memory controller, in bytes.
 *
 * v2: memory.min, memory.low, memory.high, memory.max as given.
 * v1: max -> memory.limit_in_bytes; low -> memory.soft_limit_in_bytes (v1's best-effort
 *     reclaim target under pressure, the nearest equivalent of v2's low); min and high have no
 *     v1 equivalent and are refused as "unsupported".
 */
import { CgroupLimitError, checkInteger, type CgroupWrite, type MemoryLimits } from "../limits.js";

const MEMORY_MAX_BYTES = Number.MAX_SAFE_INTEGER;

export function checkMemory(memory: MemoryLimits): void {
  if (memory.minBytes !== undefined) checkInteger("memory.min", memory.minBytes, 0, MEMORY_MAX_BYTES, " bytes");
  if (memory.lowBytes !== undefined) checkInteger("memory.low", memory.lowBytes, 0, MEMORY_MAX_BYTES, " bytes");
  if (memory.highBytes !== undefined) checkInteger("memory.high", memory.highBytes, 0, MEMORY_MAX_BYTES, " bytes");
  if (memory.maxBytes !== undefined) checkInteger("memory.max", memory.maxBytes, 0, MEMORY_MAX_BYTES, " bytes");
}

export function memoryWritesV2(memory: MemoryLimits): CgroupWrite[] {
  const w: CgroupWrite[] = [];
  const add = (field: string, v: number | undefined) => {
    if (v !== undefined) w.push({ controller: "memory", file: field, value: String(v), field });
  };
  add("memory.min", memory.minBytes);
  add("memory.low", memory.lowBytes);
  add("memory.high", memory.highBytes);
  add("memory.max", memory.maxBytes);
  return w;
}

/** `mode` names the host's cgroup mode in the refusal ("v1" or "hybrid"). */
export function memoryWritesV1(memory: MemoryLimits, mode: string): CgroupWrite[] {
  for (const [field, v] of [["memory.min", memory.minBytes], ["memory.high", memory.highBytes]] as const) {
    if (v !== undefined) {
      throw new CgroupLimitError(field, "unsupported", `${field} has no cgroup v1 equivalent (host cgroup mode: ${mode}, memory controller on v1)`);
    }
  }
  const w: CgroupWrite[] = [];
  if (memory.lowBytes !== undefined) w.push({ controller: "memory", file: "memory.soft_limit_in_bytes", value: String(memory.lowBytes), field: "memory.low" });
  if (memory.maxBytes !== undefined) w.push({ controller: "memory", file: "memory.limit_in_bytes", value: String(memory.maxBytes), field: "memory.max" });
  return w;
}
