/**
 * The kernel calls only pid 1 makes: power off, ctrl-alt-del routing, module loading and
 * the hostname. (They live here rather than in src/platform because only the init path uses them.)
 */
import koffi from "koffi";
import { readFileSync, writeFileSync } from "node:fs";
import { SyscallError } from "../../platform/libc.js";

type KoffiFunction = ReturnType<ReturnType<typeof koffi.load>["func"]>;

const RB_POWER_OFF = 0x4321fedc;
const RB_DISABLE_CAD = 0;

let fns: { reboot: KoffiFunction; sync: KoffiFunction; initModule: KoffiFunction } | undefined;
function libc() {
  if (!fns) {
    const lib = koffi.load("libc.so.6");
    fns = {
      reboot: lib.func("int reboot(int cmd)"),
      sync: lib.func("void sync(void)"),
      initModule: lib.func("int init_module(const uint8_t *image, unsigned long len, const char *params)"),
    };
  }
  return fns;
}

/**
 * Flushes filesystems and powers the machine off: reboot(RB_POWER_OFF). As pid 1 of a pid
 * namespace this ends the namespace instead. Never returns; should the call fail (not
 * permitted), the process exits, which as a VM's pid 1 makes the kernel panic and QEMU
 * (-no-reboot, panic=-1) stop. A process that is not pid 1 only exits: it must never power
 * off the machine it merely runs on.
 */
export function powerOff(): never {
  if (process.pid !== 1) process.exit(0);
  try {
    libc().sync();
    libc().reboot(RB_POWER_OFF);
  } catch {
    /* fall through */
  }
  process.exit(0);
}

/**
 * Routes ctrl-alt-del to pid 1 as SIGINT instead of an immediate reboot. Refused (EINVAL) in a
 * pid namespace other than the initial one: ignored there.
 */
export function routeCtrlAltDelToInit(): void {
  try {
    libc().reboot(RB_DISABLE_CAD);
  } catch {
    /* not critical */
  }
}

/** Loads a kernel module from a `.ko` file; already loaded (EEXIST) is success. */
export function loadModule(path: string): "loaded" | "present" {
  const image = readFileSync(path);
  if (libc().initModule(image, image.length, "") === 0) return "loaded";
  const err = new SyscallError(`init_module ${path}`, koffi.errno());
  if (err.code === "EEXIST") return "present";
  throw err;
}

export function setHostname(name: string): void {
  writeFileSync("/proc/sys/kernel/hostname", name);
}
