import { mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";

/**
 * Creates `dir` and its missing parents, like `mkdir -p`, and fails with a message naming the
 * directory that could not be made.
 *
 * Why not `mkdirSync(dir, { recursive: true })`: Node's recursive mkdir (20 and 22) retries for
 * ever, at 100% CPU, when mkdir answers ENOENT although the parent exists, which is what procfs
 * and sysfs do (`/proc/x`), and what a dangling symlink does. Here each level is tried once.
 *
 * @example ensureDir("/etc/aurae/pki", 0o755);
 */
export function ensureDir(dir: string, mode = 0o777): void {
  const path = resolve(dir);
  const missing: string[] = [];
  for (let p = path; ; p = dirname(p)) {
    if (isDirectory(p)) break;
    missing.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const p of missing) {
    try {
      mkdirSync(p, { mode });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === "EEXIST" && isDirectory(p)) continue;
      const why =
        e.code === "EEXIST" ? "it exists and is not a directory"
        : e.code === "ENOENT" ? `'${dirname(p)}' does not accept new directories`
        : e.code === "EACCES" || e.code === "EPERM" ? "permission denied"
        : e.code === "EROFS" ? "read-only file system"
        : e.message;
      throw Object.assign(new Error(`cannot create directory '${p}': ${why}`), { code: e.code, path: p, cause: err });
    }
  }
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
