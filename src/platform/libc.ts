/**
 * The few libc calls Node does not expose, bound with koffi. Loaded lazily on first use so
 * that importing this module never fails on a machine without glibc; each function throws
 * a `SyscallError` carrying the errno name on failure.
 */
import koffi from "koffi";

type KoffiFunction = ReturnType<ReturnType<typeof koffi.load>["func"]>;
import os from "node:os";

export class SyscallError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  constructor(syscall: string, errno: number) {
    const code = errnoName(errno);
    super(`${syscall}: ${code}`);
    this.name = "SyscallError";
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }
}

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(os.constants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

interface Bindings {
  prctl: KoffiFunction;
  prctlGetInt: KoffiFunction;
  waitpid: KoffiFunction;
  fallocate: KoffiFunction;
  lseek: KoffiFunction;
  flock: KoffiFunction;
  waitid: KoffiFunction;
}

let bindings: Bindings | undefined;
function libc(): Bindings {
  if (!bindings) {
    const lib = koffi.load("libc.so.6");
    bindings = {
      // prctl is variadic in libc; every option we use passes four unsigned longs.
      prctl: lib.func("int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)"),
      prctlGetInt: lib.func("int prctl(int option, _Out_ int *value, unsigned long a3, unsigned long a4, unsigned long a5)"),
      waitpid: lib.func("int waitpid(int pid, _Out_ int *status, int options)"),
      fallocate: lib.func("int fallocate(int fd, int mode, int64_t offset, int64_t len)"),
      lseek: lib.func("int64_t lseek(int fd, int64_t offset, int whence)"),
      flock: lib.func("int flock(int fd, int operation)"),
      waitid: lib.func("int waitid(int idtype, int id, _Out_ uint8_t *info, int options)"),
    };
  }
  return bindings;
}

const PR_SET_CHILD_SUBREAPER = 36;
const PR_GET_CHILD_SUBREAPER = 37;
export const WNOHANG = 1;

/** Makes the calling process a child subreaper: orphaned descendants are reparented to it. */
export function setChildSubreaper(on: boolean): void {
  if (libc().prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0) !== 0) {
    throw new SyscallError("prctl(PR_SET_CHILD_SUBREAPER)", koffi.errno());
  }
}

export function isChildSubreaper(): boolean {
  const out = [0];
  if (libc().prctlGetInt(PR_GET_CHILD_SUBREAPER, out, 0, 0, 0) !== 0) throw new SyscallError("prctl(PR_GET_CHILD_SUBREAPER)", koffi.errno());
  return out[0] !== 0;
}

export interface WaitResult {
  pid: number;
  /** exit code when the process exited normally */
  code: number | null;
  /** signal number when the process was killed by a signal */
  signal: number | null;
}

/**
 * `waitpid(pid, &status, WNOHANG)`: undefined when the child has not exited yet or is not our
 * child (ECHILD), the decoded status otherwise.
 */
export function waitpidNoHang(pid: number): WaitResult | undefined {
  const status = [0];
  const r = libc().waitpid(pid, status, WNOHANG) as number;
  if (r === 0) return undefined;
  if (r < 0) {
    const e = koffi.errno();
    if (e === os.constants.errno.ECHILD) return undefined;
    throw new SyscallError("waitpid", e);
  }
  const s = status[0]!;
  const termsig = s & 0x7f;
  if (termsig === 0) return { pid: r, code: (s >> 8) & 0xff, signal: null };
  return { pid: r, code: null, signal: termsig };
}

const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;

/**
 * Frees the storage of `[offset, offset+length)` of an open file without changing its size
 * (reads there return zeros). Supported by tmpfs, ext4, xfs and btrfs; throws SyscallError
 * (EOPNOTSUPP elsewhere).
 */
export function punchHole(fd: number, offset: number, length: number): void {
  if (length <= 0) return;
  if (libc().fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) !== 0) {
    throw new SyscallError("fallocate(PUNCH_HOLE)", koffi.errno());
  }
}

const SEEK_DATA = 3;

/**
 * The first offset at or after `offset` that holds data (not a hole), or `undefined` when only
 * holes follow (ENXIO). Where the filesystem does not track holes it answers `offset`.
 */
export function seekData(fd: number, offset: number): number | undefined {
  const r = Number(libc().lseek(fd, offset, SEEK_DATA));
  if (r >= 0) return r;
  const e = koffi.errno();
  if (e === os.constants.errno.ENXIO) return undefined;
  throw new SyscallError("lseek(SEEK_DATA)", e);
}

const LOCK_EX = 2;
const LOCK_NB = 4;

/** `flock(fd, LOCK_EX | LOCK_NB)`: true when taken, false when another open file holds it. */
export function flockExclusive(fd: number): boolean {
  if (libc().flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
  const e = koffi.errno();
  if (e === os.constants.errno.EWOULDBLOCK) return false;
  throw new SyscallError("flock", e);
}

const P_ALL = 0;
const WEXITED = 4;
const WNOWAIT = 0x01000000;
const SIGINFO_BYTES = 128;
const siginfo = new Uint8Array(SIGINFO_BYTES);

/**
 * The pid of one child that has exited and is waiting to be reaped, without reaping it
 * (`waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)`); undefined when there is none.
 */
export function peekExitedChild(): number | undefined {
  siginfo.fill(0);
  if (libc().waitid(P_ALL, 0, siginfo, WEXITED | WNOHANG | WNOWAIT) !== 0) {
    const e = koffi.errno();
    if (e === os.constants.errno.ECHILD) return undefined;
    throw new SyscallError("waitid", e);
  }
  // siginfo_t: si_signo, si_errno, si_code (3 ints), padding to 8, then si_pid at offset 16
  const pid = new DataView(siginfo.buffer).getInt32(16, true);
  return pid > 0 ? pid : undefined;
}
