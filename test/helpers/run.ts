import { spawn, type ChildProcess } from "node:child_process";

export interface Run {
  /** exit status; null when the process was killed by a signal (also by the timeout) */
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** variables added to this process's environment */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** SIGKILL after this long (default 30 s), so a hanging process fails its test instead of the suite */
  timeoutMs?: number;
  /** called once the child is spawned */
  onSpawn?: (child: ChildProcess) => void;
  /** called with all stdout so far after each chunk */
  onStdout?: (stdout: string, child: ChildProcess) => void;
}

/** Runs a program to its end and collects its output. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (b) => {
      stdout += b;
      opts.onStdout?.(stdout, child);
    });
    child.stderr!.on("data", (b) => (stderr += b));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
    opts.onSpawn?.(child);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs one of the repository's Node binaries (bin/aer.js...) with this Node. */
export function runNode(script: string, args: string[], opts: RunOptions = {}): Promise<Run> {
  return run(process.execPath, [script, ...args], opts);
}
