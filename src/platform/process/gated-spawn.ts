/**
 * Spawning a process that waits at a gate until the daemon has placed it in its cgroups,
 * so that the user's program never runs (or forks) outside them.
 *
 * Node cannot run code between fork and exec, so the child first runs a tiny shell that
 * blocks reading one line from fd 3 (a socket to the daemon). The daemon writes the pid into
 * every cgroup.procs (as root, whatever uid the child already runs as), then releases the
 * gate; the shell closes fd 3 and execs the real program in the same process, so the pid
 * Start reports stays the program's. If the gate is closed without release, the shell exits 125.
 *
 * uid and gid are always passed to spawn, so libuv clears supplementary groups (setgroups(0))
 * before setgid/setuid. The child gets its own session (setsid): a terminal's signals to the
 * daemon never reach it; stdin is /dev/null.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { Writable } from "node:stream";

export const GATE_FAILED_EXIT_CODE = 125;

const GATE = `read -r _ <&3 || exit ${GATE_FAILED_EXIT_CODE}; exec 3<&-; exec "$@"`;

export interface GatedSpawnOptions {
  /** program path and arguments; argv[0] is executed through PATH lookup by the shell */
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  uid: number;
  gid: number;
  /** "pipe" to read the channel, "ignore" for /dev/null */
  stdout: "pipe" | "ignore";
  stderr: "pipe" | "ignore";
}

export interface GatedProcess {
  child: ChildProcess;
  pid: number;
  /** Lets the program run. */
  release(): void;
  /** Closes the gate without releasing: the child exits 125 without running the program. */
  abort(): void;
}

/** Spawns a gated process; rejects when the kernel refuses the spawn (EAGAIN, ENOMEM, ...). */
export async function spawnGated(opts: GatedSpawnOptions): Promise<GatedProcess> {
  const child = spawn("/bin/sh", ["-c", GATE, "aurae-gate", ...opts.argv], {
    cwd: opts.cwd,
    env: opts.env,
    uid: opts.uid,
    gid: opts.gid,
    detached: true,
    stdio: ["ignore", opts.stdout, opts.stderr, "pipe"],
  });
  const gate = child.stdio[3] as Writable;
  // The gate socket never keeps the daemon alive and its errors (child gone) are expected.
  gate.on("error", () => {});
  const pid = child.pid;
  if (pid === undefined) {
    await new Promise((_, reject) => child.once("error", reject));
    throw new Error("spawn failed"); // not reached: the error event rejects first
  }
  // Later errors (a failed kill) must never become uncaught exceptions.
  child.on("error", () => {});
  return {
    child,
    pid,
    release: () => { gate.end("\n"); },
    abort: () => { gate.destroy(); },
  };
}
