/**
 * Mounting filesystems: mount(2)/umount2(2) through koffi, and the mount table of the calling
 * process from /proc/self/mountinfo (or a given text).
 */
import koffi from "koffi";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { SyscallError } from "./libc.js";
import { ensureDir } from "./fs/ensure-dir.js";

type KoffiFunction = ReturnType<ReturnType<typeof koffi.load>["func"]>;

export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_RELATIME = 0x200000;
export const MNT_DETACH = 0x2;

let fns: { mount: KoffiFunction; umount2: KoffiFunction } | undefined;
function libc() {
  if (!fns) {
    const lib = koffi.load("libc.so.6");
    fns = {
      mount: lib.func("int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)"),
      umount2: lib.func("int umount2(const char *target, int flags)"),
    };
  }
  return fns;
}

/** mount(2). Throws SyscallError (code EBUSY, ENODEV...) naming the target on failure. */
export function mount(source: string, target: string, fstype: string, flags = 0, data: string | null = null): void {
  if (libc().mount(source, target, fstype, flags, data) !== 0) {
    const err = new SyscallError(`mount ${fstype} on ${target}`, koffi.errno());
    throw err;
  }
}

/** umount2(2); EINVAL/ENOENT (not mounted) are ignored. */
export function unmount(target: string, flags = 0): void {
  if (libc().umount2(target, flags) !== 0) {
    const e = new SyscallError(`umount ${target}`, koffi.errno());
    if (e.code === "EINVAL" || e.code === "ENOENT") return;
    throw e;
  }
}

export interface MountEntry {
  id: number;
  parent: number;
  /** st_dev of the mounted filesystem as "major:minor" */
  dev: string;
  /** where it is mounted, with octal escapes decoded */
  target: string;
  fstype: string;
  source: string;
  options: string;
}

/** Parses mountinfo text (proc(5)). */
export function parseMountInfo(text: string): MountEntry[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const l = left.split(" ");
    const r = right.split(" ");
    out.push({ id: Number(l[0]), parent: Number(l[1]), dev: l[2] ?? "", target: unescape(l[4] ?? ""), options: l[5] ?? "", fstype: r[0] ?? "", source: unescape(r[1] ?? "") });
  }
  return out;
}

/** The mount table of this process, or [] when /proc is not mounted yet. */
export function currentMounts(): MountEntry[] {
  try {
    return parseMountInfo(readFileSync("/proc/self/mountinfo", "utf8"));
  } catch {
    return [];
  }
}

function devOf(path: string): { dev: string; raw: bigint } | undefined {
  try {
    const raw = statSync(path, { bigint: true }).dev;
    const major = ((raw >> 8n) & 0xfffn) | ((raw >> 32n) & ~0xfffn);
    const minor = (raw & 0xffn) | ((raw >> 12n) & ~0xffn);
    return { dev: `${major}:${minor}`, raw };
  } catch {
    return undefined;
  }
}

/**
 * The mount visible at exactly `target`, if `target` is a mount point. Mounts hidden under a
 * later mount on the same or a parent path (e.g. the host's /dev/pts under a fresh /dev) do
 * not count: the visible one is the last entry at `target` whose device is what stat(2) sees.
 */
export function mountAt(target: string, mounts: MountEntry[] = currentMounts()): MountEntry | undefined {
  const here = devOf(target);
  if (!here) return undefined;
  if (target !== "/") {
    const parent = devOf(dirname(target));
    if (parent && parent.raw === here.raw) return undefined; // same filesystem as the parent: not a mount point
  }
  let found: MountEntry | undefined;
  for (const m of mounts) if (m.target === target && m.dev === here.dev) found = m;
  return found;
}

export interface MountSpec {
  source: string;
  target: string;
  fstype: string;
  flags?: number;
  data?: string;
  mode?: number;
}

export type EnsureResult = "mounted" | "present";

/**
 * Mounts `spec` unless `isSatisfied(existing)` says what is at the target already serves
 * (default: something of the same fstype). Creates the target directory when missing.
 */
export function ensureMounted(spec: MountSpec, isSatisfied: (m: MountEntry | undefined) => boolean = (m) => m?.fstype === spec.fstype): EnsureResult {
  if (isSatisfied(mountAt(spec.target))) return "present";
  if (!existsSync(spec.target)) ensureDir(spec.target, spec.mode ?? 0o755);
  mount(spec.source, spec.target, spec.fstype, spec.flags ?? 0, spec.data ?? null);
  return "mounted";
}
