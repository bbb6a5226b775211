/**
 * auraed as pid 1: boots the machine (or the namespace) it was started as init of.
 *
 *   1. mount what is missing: /proc, /sys, /dev (devtmpfs), /dev/pts, /dev/shm, /run, and
 *      cgroup2 at /sys/fs/cgroup; what exists and serves is left alone, never an error
 *   2. network and drive configuration: options given here, else the environment
 *      (AURAED_IFACE, AURAED_ADDRESS, AURAED_GATEWAY), else `aurae.*` kernel parameters
 *      (boot-config.ts; drives only from there)
 *   3. load the kernel modules listed in /etc/aurae/modules (the guest image writes it)
 *   4. bring `lo` up, then the configured interface with its address and default route
 *   5. mount the configured drives by virtio serial
 *   6. reap every orphan (platform/reaper), and turn power events into a graceful shutdown:
 *      the ACPI power button (QEMU `system_powerdown`) and SIGPWR become SIGTERM to ourselves;
 *      ctrl-alt-del arrives as SIGINT. The daemon's own SIGTERM/SIGINT handling shuts down
 *      gracefully and then calls powerOff() instead of exiting (exiting would panic the kernel).
 */
import { existsSync, lstatSync, readFileSync, readlinkSync } from "node:fs";
import { Logger } from "../logger.js";
import { ensureMounted, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RELATIME, type MountEntry, type MountSpec } from "../../platform/mounts.js";
import { addAddress, addDefaultRoute, interfaceExists, linkUp } from "../../platform/netlink-or-ip.js";
import { startReaper, type Reaper } from "../../platform/reaper.js";
import { parseBootConfig, type BootConfig } from "./boot-config.js";
import { mountDrive } from "./drives.js";
import { loadModule, routeCtrlAltDelToInit, setHostname } from "./kernel.js";
import { watchPowerButton, type PowerButtonWatch } from "./power-button.js";

import { powerOff } from "./kernel.js";

export { powerOff };

export const MODULE_LIST = "/etc/aurae/modules";

export interface Pid1Options {
  logger: Logger;
  /** interface to configure (default: $AURAED_IFACE, else kernel parameter aurae.iface) */
  iface?: string;
  /** its address in CIDR form (default: $AURAED_ADDRESS, else aurae.address) */
  address?: string;
  /** default gateway (default: $AURAED_GATEWAY, else aurae.gateway) */
  gateway?: string;
  /** the kernel command line to read (default: /proc/cmdline) */
  cmdline?: string;
  /** how long to wait for the interface to appear after loading its driver (default 5000) */
  ifaceWaitMs?: number;
}

interface Pid1State {
  reaper: Reaper;
  buttons: PowerButtonWatch[];
  onPwr: () => void;
}

let booted: Pid1State | undefined;

function isCharDevice(path: string): boolean {
  try {
    return lstatSync(path).isCharacterDevice();
  } catch {
    return false;
  }
}

/** A /proc belongs to our pid namespace when /proc/self names our own pid. */
function procIsOurs(m: MountEntry | undefined): boolean {
  if (m?.fstype !== "proc") return false;
  try {
    return readlinkSync("/proc/self") === String(process.pid);
  } catch {
    return false;
  }
}

const BOOT_MOUNTS: { spec: MountSpec; ok: (m: MountEntry | undefined) => boolean }[] = [
  { spec: { source: "proc", target: "/proc", fstype: "proc", flags: MS_NOSUID | MS_NODEV | MS_NOEXEC }, ok: procIsOurs },
  { spec: { source: "sysfs", target: "/sys", fstype: "sysfs", flags: MS_NOSUID | MS_NODEV | MS_NOEXEC }, ok: (m) => m?.fstype === "sysfs" },
  // A mounted /dev that has device nodes serves (a container's tmpfs /dev); an empty one, or
  // the bare directory of an initramfs, gets devtmpfs.
  { spec: { source: "devtmpfs", target: "/dev", fstype: "devtmpfs", flags: MS_NOSUID, data: "mode=0755" }, ok: (m) => m?.fstype === "devtmpfs" || (m !== undefined && isCharDevice("/dev/null")) },
  { spec: { source: "devpts", target: "/dev/pts", fstype: "devpts", flags: MS_NOSUID | MS_NOEXEC, data: "mode=0620,ptmxmode=0666" }, ok: (m) => m?.fstype === "devpts" },
  { spec: { source: "shm", target: "/dev/shm", fstype: "tmpfs", flags: MS_NOSUID | MS_NODEV, data: "mode=1777" }, ok: (m) => m !== undefined },
  { spec: { source: "tmpfs", target: "/run", fstype: "tmpfs", flags: MS_NOSUID | MS_NODEV, data: "mode=0755" }, ok: (m) => m !== undefined },
  // Anything at /sys/fs/cgroup (cgroup2, or a tmpfs of v1 hierarchies on a hybrid host) serves.
  { spec: { source: "cgroup2", target: "/sys/fs/cgroup", fstype: "cgroup2", flags: MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME, data: "nsdelegate" }, ok: (m) => m !== undefined },
];

function uptimeMs(): number | undefined {
  try {
    return Math.round(Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]) * 1000);
  } catch {
    return undefined;
  }
}

/** Step 1: the mounts; returns what was mounted (the rest was present). */
export function mountEssentials(logger: Logger): string[] {
  const mounted: string[] = [];
  for (const { spec, ok } of BOOT_MOUNTS) {
    try {
      if (ensureMounted(spec, ok) === "mounted") mounted.push(spec.target);
    } catch (err) {
      // e.g. cgroup2 unsupported by the kernel: the daemon still runs, the cause is logged once.
      logger.warn(`failed to mount ${spec.fstype} at ${spec.target}: ${(err as Error).message}, ignoring`);
    }
  }
  return mounted;
}

function loadModules(logger: Logger): number {
  if (!existsSync(MODULE_LIST)) return 0;
  let loaded = 0;
  for (const path of readFileSync(MODULE_LIST, "utf8").split("\n").map((l) => l.trim()).filter(Boolean)) {
    try {
      if (loadModule(path) === "loaded") loaded++;
    } catch (err) {
      logger.warn(`failed to load kernel module ${path}: ${(err as Error).message}, ignoring`);
    }
  }
  return loaded;
}

async function waitForInterface(name: string, timeoutMs: number): Promise<boolean> {
  // Drivers register their netdev while init_module runs; a bounded wait covers slow probes.
  const deadline = Date.now() + timeoutMs;
  while (!interfaceExists(name)) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

async function configureNetwork(cfg: BootConfig, logger: Logger, waitMs: number): Promise<void> {
  linkUp("lo");
  if (!cfg.iface) return;
  if (!(await waitForInterface(cfg.iface, waitMs))) {
    logger.error(`failed to configure interface '${cfg.iface}': it does not exist after ${waitMs} ms`);
    return;
  }
  linkUp(cfg.iface);
  if (cfg.address) addAddress(cfg.iface, cfg.address);
  if (cfg.gateway) addDefaultRoute(cfg.gateway, cfg.iface);
}

/**
 * Boots as pid 1. Idempotent: a second call does nothing. Failures of optional steps are
 * logged and the boot goes on, so that the daemon comes up and can be inspected.
 */
export async function bootPid1(opts: Pid1Options): Promise<void> {
  if (booted) return;
  const { logger } = opts;
  const started = performance.now();
  const mounted = mountEssentials(logger);

  let cmdline = opts.cmdline;
  if (cmdline === undefined) {
    try {
      cmdline = readFileSync("/proc/cmdline", "utf8");
    } catch {
      cmdline = "";
    }
  }
  const fromKernel = parseBootConfig(cmdline);
  const env = process.env;
  const cfg: BootConfig = {
    ...fromKernel,
    iface: opts.iface ?? env.AURAED_IFACE ?? fromKernel.iface,
    address: opts.address ?? env.AURAED_ADDRESS ?? fromKernel.address,
    gateway: opts.gateway ?? env.AURAED_GATEWAY ?? fromKernel.gateway,
  };

  if (cfg.hostname) {
    try {
      setHostname(cfg.hostname);
    } catch (err) {
      logger.warn(`failed to set hostname '${cfg.hostname}': ${(err as Error).message}, ignoring`);
    }
  }
  const modules = loadModules(logger);
  try {
    await configureNetwork(cfg, logger, opts.ifaceWaitMs ?? 5000);
  } catch (err) {
    logger.error(`failed to configure the network: ${(err as Error).message}`);
  }
  for (const m of cfg.mounts) {
    try {
      mountDrive(m);
    } catch (err) {
      logger.error(`failed to mount drive '${m.serial}' (${m.fsType}) at ${m.path}: ${(err as Error).message}`);
    }
  }

  const reaper = startReaper();
  routeCtrlAltDelToInit();
  const shutdown = (why: string) => {
    logger.info(`${why}: shutting down`);
    process.kill(process.pid, "SIGTERM");
  };
  const onPwr = () => shutdown("SIGPWR received");
  process.on("SIGPWR", onPwr);
  let buttons: PowerButtonWatch[] = [];
  try {
    buttons = watchPowerButton(() => shutdown("power button pressed"));
  } catch (err) {
    logger.warn(`failed to watch the power button: ${(err as Error).message}, ignoring`);
  }
  booted = { reaper, buttons, onPwr };
  logger.info("booted as pid 1", {
    mounted,
    modules,
    iface: cfg.iface,
    address: cfg.address,
    drives: cfg.mounts.map((m) => m.path),
    powerButtons: buttons.map((b) => b.device),
    ms: Math.round(performance.now() - started),
    // where the boot time goes: the machine's uptime now, and how long node has run
    uptimeMs: uptimeMs(),
    processUptimeMs: Math.round(process.uptime() * 1000),
  });
}

/**
 * The whole life of auraed as pid 1: boot, run the daemon until its graceful shutdown, power
 * off. `run` resolves with the daemon's exit code once it has shut down (main.ts's runDaemon).
 * Never returns and never exits: a fatal error is logged and the machine powered off too.
 */
export async function runPid1(run: () => Promise<number>, opts: Partial<Pid1Options> = {}): Promise<never> {
  const logger = opts.logger ?? new Logger();
  // Node's default for these is to exit, which as pid 1 panics the kernel: power off instead.
  const fatal = (what: string) => (err: unknown) => {
    logger.error(`auraed failed as pid 1 (${what}): ${(err as Error)?.stack ?? String(err)}`);
    powerOff();
  };
  process.on("uncaughtException", fatal("uncaught exception"));
  process.on("unhandledRejection", fatal("unhandled rejection"));
  try {
    await bootPid1({ ...opts, logger });
    const code = await run();
    logger.info("powering off", { code });
  } catch (err) {
    logger.error(`auraed failed as pid 1: ${(err as Error).stack ?? String(err)}`);
  }
  return powerOff();
}
