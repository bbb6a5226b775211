/**
 * Telling one process from another that later got the same pid.
 *
 * A process is identified by its pid plus its start time (field 22 of /proc/<pid>/stat, clock
 * ticks since boot) within one boot (/proc/sys/kernel/random/boot_id). A recorded identity
 * matches a live process only when all three agree, so a pid reused by an unrelated process is
 * never mistaken for the one we started.
 */
import fs from "node:fs";

export interface ProcessIdentity {
  pid: number;
  /** clock ticks after boot at which the process started */
  startTime: number;
}

let bootIdCache: string | undefined;

/** This boot's id: identities from another boot never match. */
export function bootId(): string {
  bootIdCache ??= fs.readFileSync("/proc/sys/kernel/random/boot_id", "latin1").trim();
  return bootIdCache;
}

/**
 * The start time of a running process, or undefined when it is gone. A zombie counts as gone
 * unless `zombies` is set (its pid cannot be reused until it is reaped, so its identity holds).
 */
export function processStartTime(pid: number, opts: { zombies?: boolean } = {}): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: fields after it follow the last ')'.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state); field 22 is rest[19].
  if (rest[0] === "X" || (rest[0] === "Z" && !opts.zombies)) return undefined;
  const start = Number(rest[19]);
  return Number.isFinite(start) ? start : undefined;
}

/**
 * The identity of a process just started (a zombie still has one), or undefined when it is
 * gone already.
 */
export function identify(pid: number): ProcessIdentity | undefined {
  const startTime = processStartTime(pid, { zombies: true });
  return startTime === undefined ? undefined : { pid, startTime };
}

/** true when `id` still names the same live process. */
export function isAlive(id: ProcessIdentity): boolean {
  return processStartTime(id.pid) === id.startTime;
}
