/**
 * Starting a program through aurae-shim (src/platform/native/aurae-shim.c): the shim forks the
 * program, which joins its cgroups and namespaces and takes its credentials before exec, and
 * stays its parent, recording the exit status in a file. The program's stdout and stderr are
 * files (not pipes into the daemon), so it never notices the daemon dying.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";

/** Where build.sh puts the shim: $AURAE_SHIM, else <repo>/build/native/aurae-shim (from src/ or dist/). */
export function shimPath(): string {
  if (process.env.AURAE_SHIM) return process.env.AURAE_SHIM;
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
  return path.join(root, "build/native/aurae-shim");
}

export type NamespaceType = "pid" | "mnt" | "uts" | "ipc" | "net";

export interface ShimSpawnOptions {
  /** program and arguments (argv[0] is looked up in PATH) */
  argv: string[];
  env: Record<string, string>;
  /** inside the mount namespace, default "/" */
  cwd?: string;
  uid?: number;
  gid?: number;
  /** cgroup.procs files the program joins before exec, in order */
  join: string[];
  /** cgroup.procs files the shim itself joins first (the shims' own cgroup) */
  selfJoin?: string[];
  /** namespaces of a live process to enter before exec; with startTime, only if the pid is still that process */
  namespaces?: { pid: number; types: NamespaceType[]; startTime?: number };
  /** files for the program's stdout and stderr (created, appended to) */
  stdoutPath: string;
  stderrPath: string;
  /** written by the shim when the program exits (see parseExitFile) */
  exitPath: string;
}

export interface ShimProcess {
  /**
   * the shim's pid: not our child_process child (that one exits at once) but an orphan
   * reparented to us, which the reaper reaps (the daemon must be a child subreaper)
   */
  shimPid: number;
  /** the program's pid on the host */
  pid: number;
  /** the program's pid in its own pid namespace (equal to pid outside isolated cells) */
  nsPid: number;
  /** the program's start time (clock ticks after boot), read by the shim before it could be reaped; -1 if unknown */
  startTime: number;
}

/** Entering the cell failed before the program ran; `stage` names the step ("setuid", a cgroup.procs path...). */
export class ShimStartError extends Error {
  readonly stage: string;
  readonly reason: string;
  constructor(stage: string, reason: string) {
    super(`${stage}: ${reason}`);
    this.name = "ShimStartError";
    this.stage = stage;
    this.reason = reason;
  }

  /** The kernel ran out of something (processes, memory, files), not a problem of the request. */
  get exhausted(): boolean {
    return /Resource temporarily unavailable|Cannot allocate memory|Too many open files/.test(this.reason);
  }
}

/** The program's end as the shim recorded it. */
export interface ExitRecord {
  code: number | null;
  signal: number | null;
  /** ms since the epoch */
  at: number;
}

/** Parses the exit file ("exited <code> <ms>" / "signaled <signo> <ms>"); undefined when malformed. */
export function parseExitFile(text: string): ExitRecord | undefined {
  const m = /^(exited|signaled) (\d+) (\d+)\n?$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[2]);
  return { code: m[1] === "exited" ? n : null, signal: m[1] === "signaled" ? n : null, at: Number(m[3]) };
}

/** Reads an exit file; undefined while it does not exist (or is malformed). */
export function readExitFile(file: string): ExitRecord | undefined {
  try {
    return parseExitFile(fs.readFileSync(file, "latin1"));
  } catch {
    return undefined;
  }
}

/** The shim's arguments for these options (without the program name). */
export function shimArgs(o: ShimSpawnOptions): string[] {
  const args: string[] = [];
  for (const j of o.selfJoin ?? []) args.push("--self-join", j);
  for (const j of o.join) args.push("--join", j);
  const ns = o.namespaces;
  if (ns && ns.types.length > 0) args.push("--ns", `${ns.pid}:${ns.types.join(",")}${ns.startTime !== undefined ? `:${ns.startTime}` : ""}`);
  if (o.uid !== undefined) args.push("--uid", String(o.uid));
  if (o.gid !== undefined) args.push("--gid", String(o.gid));
  if (o.cwd) args.push("--cwd", o.cwd);
  args.push("--exit-file", o.exitPath, "--", ...o.argv);
  return args;
}

/** Reads the shim's one report line from fd 3. */
function readReport(stream: Readable): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    stream.setEncoding("latin1");
    stream.on("data", (d: string) => {
      text += d;
    });
    stream.on("error", () => { /* close follows */ });
    stream.once("close", () => resolve(text));
  });
}

/**
 * Starts the program through the shim; resolves once it has exec'd (inside its cell). Rejects
 * with ShimStartError when entering the cell failed (nothing of the program ran), or with the
 * spawn error when the kernel refused to start the shim (EAGAIN, ENOMEM...).
 */
export async function spawnThroughShim(o: ShimSpawnOptions): Promise<ShimProcess> {
  const out = fs.openSync(o.stdoutPath, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o600);
  let err: number | undefined;
  let shim: ChildProcess;
  try {
    err = fs.openSync(o.stderrPath, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o600);
    shim = spawn(shimPath(), shimArgs(o), { env: o.env, detached: true, stdio: ["ignore", out, err, "pipe"] });
  } finally {
    fs.closeSync(out);
    if (err !== undefined) fs.closeSync(err);
  }
  // Later errors (a failed kill) must never become uncaught exceptions.
  const spawned = new Promise<void>((resolve, reject) => {
    shim.once("spawn", resolve);
    shim.once("error", reject);
  });
  shim.on("error", () => {});
  await spawned;
  const line = await readReport(shim.stdio[3] as Readable);
  if (!line.startsWith("ok ")) {
    await new Promise((r) => (shim.exitCode !== null || shim.signalCode !== null ? r(undefined) : shim.once("exit", r)));
  }
  return parseReport(line || `error shim: exited (${shim.exitCode ?? shim.signalCode}) without a report\n`);
}

/** A shim's report line as a ShimProcess; throws ShimStartError for an error report. */
export function parseReport(line: string): ShimProcess {
  const ok = /^ok (\d+) (\d+) (-?\d+) (\d+)\n$/.exec(line);
  if (ok) return { shimPid: Number(ok[4]), pid: Number(ok[1]), nsPid: Number(ok[2]), startTime: Number(ok[3]) };
  const failed = /^error (.*?): (.*)\n?$/.exec(line);
  if (failed) throw new ShimStartError(failed[1]!, failed[2]!);
  throw new ShimStartError("shim", `unexpected report '${line.trim()}'`);
}
