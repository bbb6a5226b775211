/**
 * The pids controller: `pids.max` on v1 and v2. The kernel accepts 0..PID_MAX_LIMIT
 * (4194304 on 64-bit).
 */
import { checkInteger, type CgroupWrite, type PidsLimits } from "../limits.js";

export const PIDS_MAX_LIMIT = 4_194_304;

export function checkPids(pids: PidsLimits): void {
  if (pids.max !== undefined) checkInteger("pids.max", pids.max, 0, PIDS_MAX_LIMIT);
}

export function pidsWrites(pids: PidsLimits): CgroupWrite[] {
  return pids.max === undefined ? [] : [{ controller: "pids", file: "pids.max", value: String(pids.max), field: "pids.max" }];
}
