/**
 * The namespace holder of an isolated cell: a tiny init that creates and holds the cell's
 * namespaces for as long as the cell lives, the way a Kubernetes pod's pause process does.
 *
 * It is built from Debian's standard tools, run through aurae-shim like an executable:
 *
 *   unshare --pid --fork --mount-proc --uts --ipc [--net] --kill-child --propagation private \
 *     -- aurae-shim --holder [--hostname LEAF] [--lo-up] -- catatonit -P
 *
 * - `unshare` makes the namespaces (a private mount namespace: the host's propagation is never
 *   changed; `--mount-proc` gives it a /proc showing only the cell's processes) and forks the
 *   namespace's pid 1; `--kill-child` kills that pid 1, and with it every process of the cell,
 *   if unshare itself is killed.
 * - `aurae-shim --holder` (src/platform/native/holder-init.c) names the host (the cell's leaf
 *   name), brings `lo` up in a new network namespace and says "ready" on its stdout before it
 *   execs catatonit: the static shim does what a shell running `hostname` and `ip link set lo
 *   up` did, without loading a shell, hostname and ip (Allocate 17.3 -> 12 ms here).
 * - `catatonit -P` is pid 1 of the cell: it reaps every orphan there and quits on SIGTERM or
 *   SIGINT (then the kernel kills what is left in the pid namespace).
 *
 * With only `isolate_network` there is no pid namespace: unshare execs the shell directly and
 * catatonit reaps as a child subreaper. Executables join the holder's namespaces through
 * aurae-shim's `--ns <init pid>:<types>`.
 */
import fs from "node:fs";
import type { NamespaceType } from "../process/shim.js";

/** what `aurae-shim --holder` writes once the namespaces are set up (holder-init.c) */
export const HOLDER_READY_LINE = "ready";

export interface Isolation {
  process: boolean;
  network: boolean;
}

/** The holder's program (run with a clean PATH) for a cell whose last label is `leaf`; `shim` is aurae-shim's path. */
export function holderArgv(leaf: string, iso: Isolation, shim: string): string[] {
  const flags = iso.process ? ["--pid", "--fork", "--mount-proc", "--uts", "--ipc"] : [];
  if (iso.network) flags.push("--net");
  const tail = iso.process ? ["--kill-child", "--propagation", "private"] : [];
  const init = [shim, "--holder", ...(iso.process ? ["--hostname", leaf] : []), ...(iso.network ? ["--lo-up"] : []), "--", "catatonit", "-P"];
  return ["unshare", ...flags, ...tail, "--", ...init];
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
