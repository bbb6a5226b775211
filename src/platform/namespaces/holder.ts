/**
 * The namespace holder of an isolated cell: a tiny init that creates and holds the cell's
 * namespaces for as long as the cell lives, the way a Kubernetes pod's pause process does.
 *
 * It is built from Debian's standard tools, run through aurae-shim like an executable:
 *
 *   unshare --pid --fork --mount-proc --uts --ipc [--net] --kill-child --propagation private \
 *     -- /bin/sh -c 'echo LEAF > /proc/sys/kernel/hostname && [aurae-shim --lo-up &&] echo ready && exec catatonit -P'
 *
 * - `unshare` makes the namespaces (a private mount namespace: the host's propagation is never
 *   changed; `--mount-proc` gives it a /proc showing only the cell's processes) and forks the
 *   namespace's pid 1; `--kill-child` kills that pid 1, and with it every process of the cell,
 *   if unshare itself is killed.
 * - The shell names the host (the cell's leaf name; written to /proc/sys/kernel/hostname, which
 *   names the writer's UTS namespace, with the shell's own echo: `hostname` would cost a fork and
 *   an exec, about 2-3 ms of each Allocate here), brings `lo` up in a new network namespace
 *   (`aurae-shim --lo-up`, what `ip link set lo up` does, from a static binary: about 4 ms less
 *   than loading ip) and says "ready" on its stdout before it becomes catatonit.
 * - `catatonit -P` is pid 1 of the cell: it reaps every orphan there and quits on SIGTERM or
 *   SIGINT (then the kernel kills what is left in the pid namespace).
 *
 * With only `isolate_network` there is no pid namespace: unshare execs the shell directly and
 * catatonit reaps as a child subreaper. Executables join the holder's namespaces through
 * aurae-shim's `--ns <init pid>:<types>`.
 */
import fs from "node:fs";
import type { NamespaceType } from "../process/shim.js";

export const HOLDER_READY_LINE = "ready";

export interface Isolation {
  process: boolean;
  network: boolean;
}

/**
 * The holder's program (run with a clean PATH) for a cell whose last label is `leaf`; `shim` is
 * aurae-shim's path (its `--lo-up` brings a new network namespace's loopback up).
 */
export function holderArgv(leaf: string, iso: Isolation, shim: string): string[] {
  const flags = iso.process ? ["--pid", "--fork", "--mount-proc", "--uts", "--ipc"] : [];
  if (iso.network) flags.push("--net");
  const steps: string[] = [];
  if (iso.process) steps.push('echo "$1" > /proc/sys/kernel/hostname');
  if (iso.network) steps.push('"$2" --lo-up');
  steps.push(`echo ${HOLDER_READY_LINE}`, "exec catatonit -P");
  const tail = iso.process ? ["--kill-child", "--propagation", "private"] : [];
  return ["unshare", ...flags, ...tail, "--", "/bin/sh", "-c", steps.join(" && "), "aurae-holder", leaf, shim];
}

/** The namespaces an executable of a cell with this isolation enters. */
export function namespaceTypes(iso: Isolation): NamespaceType[] {
  const t: NamespaceType[] = [];
  if (iso.process) t.push("pid", "mnt", "uts", "ipc");
  if (iso.network) t.push("net");
  return t;
}

/**
 * The host pid of the process holding the namespaces, given the holder's main process
 * (unshare): its child, the namespace's pid 1, with a pid namespace; unshare itself (which
 * became catatonit) without one. Undefined when it is not there (any more).
 */
export function holderInitPid(unsharePid: number, iso: Isolation): number | undefined {
  if (!iso.process) return unsharePid;
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, "latin1");
  } catch {
    return undefined;
  }
  const first = Number(text.trim().split(/\s+/)[0]);
  return first > 0 ? first : undefined;
}
