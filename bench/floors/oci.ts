import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, copyFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A minimal OCI bundle (busybox-static as /bin/true and /bin/sh) for `runc run` / `crun run` of
 * `true`: the peers an executable Start is compared with.
 */
export interface OciPeer {
  name: "runc" | "crun";
  version: string;
  /** the command line of one run (a new container id each time), for the floor server to spawn */
  argv(): string[];
  /** removes the peer's state directory (--root) */
  cleanup(): void;
}

export function makeBundle(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), "aurae-bench-oci-"));
  const rootfs = join(dir, "rootfs");
  mkdirSync(join(rootfs, "bin"), { recursive: true });
  for (const d of ["proc", "dev", "sys", "tmp"]) mkdirSync(join(rootfs, d));
  copyFileSync("/bin/busybox", join(rootfs, "bin/busybox"));
  for (const t of ["true", "sh"]) symlinkSync("busybox", join(rootfs, "bin", t));
  execFileSync("runc", ["spec", "--bundle", dir]);
  const spec = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  spec.process.terminal = false;
  spec.process.args = ["/bin/true"];
  spec.root.readonly = true;
  writeFileSync(join(dir, "config.json"), JSON.stringify(spec));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

let seq = 0;
export function ociPeers(bundle: string): OciPeer[] {
  const peers: OciPeer[] = [];
  for (const name of ["runc", "crun"] as const) {
    const bin = execFileSyncSafe("which", [name]);
    if (!bin) continue;
    const version = (execFileSyncSafe(name, ["--version"]) ?? "").split("\n")[0] ?? "";
    const root = mkdtempSync(join(tmpdir(), `aurae-bench-${name}-root-`));
    // crun refuses the hybrid cgroup layout unless the unified mount is hidden (HOST.md):
    // run it in a private mount namespace with /sys/fs/cgroup/unified unmounted there.
    const wrap = name === "crun" && existsSync("/sys/fs/cgroup/unified")
      ? (args: string[]) => ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'umount /sys/fs/cgroup/unified && exec "$@"', "sh", ...args]
      : (args: string[]) => args;
    peers.push({
      name,
      version,
      argv: () => wrap([name, "--root", root, "run", "--bundle", bundle, `bench-${process.pid}-${++seq}`]),
      cleanup: () => rmSync(root, { recursive: true, force: true }),
    });
  }
  return peers;
}

function execFileSyncSafe(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return undefined;
  }
}
