/**
 * The cpu controller: weight, quota and period.
 *
 * v2: `cpu.weight` as given; `cpu.max` = "<quota|max> <period>".
 * v1: `cpu.shares` from the weight with the kernel's own v2 mapping
 *     (shares = round(weight * 1024 / 100), so the defaults 100 and 1024 agree);
 *     `cpu.cfs_period_us` (only when not the default 100000, which a new cgroup has) then
 *     `cpu.cfs_quota_us`.
 * Bounds are the kernel's (kernel/sched/core.c): period 1 ms..1 s, quota >= 1 ms and
 * <= 2^44-1 µs. On v1 the kernel also refuses a child quota/period ratio above its nearest
 * limited ancestor's (`v1RatioExceeds`).
 */
import { CgroupLimitError, checkInteger, type CgroupWrite, type CpuLimits } from "../limits.js";

export const CPU_WEIGHT_MIN = 1;
export const CPU_WEIGHT_MAX = 10000;
export const CPU_PERIOD_MIN_US = 1000;
export const CPU_PERIOD_MAX_US = 1_000_000;
export const CPU_PERIOD_DEFAULT_US = 100_000;
export const CPU_QUOTA_MIN_US = 1000;
export const CPU_QUOTA_MAX_US = 2 ** 44 - 1;

export function checkCpu(cpu: CpuLimits): void {
  if (cpu.weight !== undefined) checkInteger("cpu.weight", cpu.weight, CPU_WEIGHT_MIN, CPU_WEIGHT_MAX);
  if (cpu.maxUs !== undefined) checkInteger("cpu.max", cpu.maxUs, CPU_QUOTA_MIN_US, CPU_QUOTA_MAX_US, " µs");
  if (cpu.periodUs !== undefined) checkInteger("cpu.period", cpu.periodUs, CPU_PERIOD_MIN_US, CPU_PERIOD_MAX_US, " µs");
}

/** The kernel's v1 cpu.shares for a v2 weight (sched_weight_from_cgroup). */
export function weightToShares(weight: number): number {
  return Math.round((weight * 1024) / 100);
}

export function cpuWritesV2(cpu: CpuLimits): CgroupWrite[] {
  const w: CgroupWrite[] = [];
  if (cpu.weight !== undefined) w.push({ controller: "cpu", file: "cpu.weight", value: String(cpu.weight), field: "cpu.weight" });
  if (cpu.maxUs !== undefined || cpu.periodUs !== undefined) {
    const quota = cpu.maxUs === undefined ? "max" : String(cpu.maxUs);
    const period = cpu.periodUs ?? CPU_PERIOD_DEFAULT_US;
    w.push({ controller: "cpu", file: "cpu.max", value: `${quota} ${period}`, field: cpu.maxUs !== undefined ? "cpu.max" : "cpu.period" });
  }
  return w;
}

export function cpuWritesV1(cpu: CpuLimits): CgroupWrite[] {
  const w: CgroupWrite[] = [];
  if (cpu.weight !== undefined) w.push({ controller: "cpu", file: "cpu.shares", value: String(weightToShares(cpu.weight)), field: "cpu.weight" });
  // The period goes first: the quota is checked against it. A new cgroup already has the
  // default period, and each bandwidth write costs the kernel a walk of every cpu (~0.2 ms).
  if (cpu.periodUs !== undefined && cpu.periodUs !== CPU_PERIOD_DEFAULT_US) {
    w.push({ controller: "cpu", file: "cpu.cfs_period_us", value: String(cpu.periodUs), field: "cpu.period" });
  }
  if (cpu.maxUs !== undefined) w.push({ controller: "cpu", file: "cpu.cfs_quota_us", value: String(cpu.maxUs), field: "cpu.max" });
  return w;
}

/** The kernel's bandwidth ratio (to_ratio): quota/period in 2^-20 units. */
export function bandwidthRatio(quotaUs: number, periodUs: number): bigint {
  return (BigInt(quotaUs) << 20n) / BigInt(periodUs);
}

/**
 * v1 only: throws when the quota/period ratio exceeds the nearest limited ancestor's, which
 * the v1 kernel refuses with EINVAL (tg_cfs_schedulable_down).
 */
export function checkV1RatioWithin(cpu: CpuLimits, ancestor: { quotaUs: number; periodUs: number } | undefined): void {
  if (cpu.maxUs === undefined || !ancestor) return;
  const period = cpu.periodUs ?? CPU_PERIOD_DEFAULT_US;
  if (bandwidthRatio(cpu.maxUs, period) > bandwidthRatio(ancestor.quotaUs, ancestor.periodUs)) {
    throw new CgroupLimitError(
      "cpu.max",
      "invalid",
      `cpu.max ${cpu.maxUs}/${period} µs exceeds the parent's quota of ${ancestor.quotaUs}/${ancestor.periodUs} µs (cgroup v1 refuses it)`,
    );
  }
}
