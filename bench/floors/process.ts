import { spawn } from "node:child_process";

/** Resolves with the exit code of `argv` spawned from Node with stdio ignored. */
export function spawnWait(argv: string[], opts: { cwd?: string } = {}): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const c = spawn(argv[0]!, argv.slice(1), { stdio: "ignore", cwd: opts.cwd });
    c.once("error", reject);
    c.once("exit", (code) => resolve(code));
  });
}

/** The namespace floor for isolated cells (HOST.md): unshare of pid+mount(proc)+uts+ipc [+net]. */
export function unshareArgv(net: boolean): string[] {
  return ["unshare", "--pid", "--fork", "--mount-proc", "--uts", "--ipc", ...(net ? ["--net"] : []), "true"];
}
