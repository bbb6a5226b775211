/**
 * Which accelerator boots a stock kernel here: KVM when a real one works, TCG otherwise.
 *
 * `/dev/kvm` existing is not enough: some hosts expose a paravirtual KVM (e.g. `kvm_pvm`) that
 * runs trivial guest code but hangs a stock kernel. So we try: boot the guest kernel under KVM
 * with the serial console on stdout and no init, and take KVM if the kernel prints its banner
 * ("Linux version") within the probe timeout (a broken KVM here fails in ~50 ms: QEMU aborts
 * setting MSRs). The verdict is memoised per process, keyed by kernel, QEMU binary and /dev/kvm.
 */
import { spawn } from "node:child_process";
import { closeSync, constants, openSync, readFileSync, statSync } from "node:fs";
import { QEMU_BINARY, type Accelerator } from "./argv.js";

export interface AccelVerdict {
  accel: Accelerator;
  /** why, in a few words (logged by the daemon) */
  reason: string;
  /** true when an earlier probe of this process answered */
  cached?: boolean;
}

export interface DetectOptions {
  kernel: string;
  binary?: string;
  /** how long the KVM boot probe may take to print the kernel banner (default 4000 ms) */
  probeTimeoutMs?: number;
  /** forced choice (the AURAE_VM_ACCEL environment variable sets it for the daemon) */
  force?: Accelerator;
}

function kvmUsable(): string | undefined {
  try {
    closeSync(openSync("/dev/kvm", constants.O_RDWR));
    return undefined;
  } catch (err) {
    return `/dev/kvm cannot be opened (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
}

function cacheKey(o: DetectOptions): string {
  const st = (p: string) => {
    try {
      const s = statSync(p);
      return `${s.size}:${Math.round(s.mtimeMs)}:${s.rdev}`;
    } catch {
      return "missing";
    }
  };
  let boot = "";
  try {
    boot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    /* no procfs: key without it */
  }
  return [boot, o.kernel, st(o.kernel), o.binary ?? QEMU_BINARY, st("/dev/kvm")].join("|");
}

/** Boots `kernel` under KVM until it prints its banner; resolves with whether it did. */
export function probeKvmBoot(kernel: string, binary = QEMU_BINARY, timeoutMs = 4000): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const child = spawn(binary, [
      "-accel", "kvm", "-M", "microvm,pit=on,rtc=on", "-cpu", "host", "-m", "128M", "-smp", "1",
      "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-no-reboot",
      "-serial", "stdio", "-kernel", kernel,
      "-append", "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 rdinit=/nonexistent init=/nonexistent",
    ], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let done = false;
    const finish = (ok: boolean, detail: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      resolve({ ok, detail });
    };
    const timer = setTimeout(() => finish(false, `no kernel banner within ${timeoutMs} ms under KVM`), timeoutMs);
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (out.includes("Linux version")) finish(true, "the kernel booted under KVM");
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => { err += d; });
    child.on("error", (e) => finish(false, `cannot run ${binary}: ${e.message}`));
    child.on("exit", (code) => finish(false, `qemu exited (${code}) under KVM: ${err.trim().split("\n").pop() ?? ""}`));
  });
}

const memo = new Map<string, Promise<AccelVerdict>>();

/** Chooses the accelerator for `kernel` (see the module comment); memoised per process. */
export function detectAccelerator(o: DetectOptions): Promise<AccelVerdict> {
  if (o.force) return Promise.resolve({ accel: o.force, reason: "forced" });
  const noKvm = kvmUsable();
  if (noKvm) return Promise.resolve({ accel: "tcg", reason: noKvm });
  const key = cacheKey(o);
  const hit = memo.get(key);
  if (hit) return hit.then((v) => ({ ...v, cached: true }));
  const p = probeKvmBoot(o.kernel, o.binary, o.probeTimeoutMs).then((probe): AccelVerdict =>
    probe.ok ? { accel: "kvm", reason: probe.detail } : { accel: "tcg", reason: `KVM unusable: ${probe.detail}` });
  memo.set(key, p);
  return p;
}

/**
 * The host's TSC frequency in kHz, from /proc/cpuinfo (bogomips/2 is the TSC rate when the
 * kernel calibrated its delay loop from the TSC; else "cpu MHz"); undefined when unknown.
 */
export function hostTscKhz(cpuinfo?: string): number | undefined {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/cpuinfo", "utf8");
    } catch {
      return undefined;
    }
  }
  const bogo = /^bogomips\s*:\s*([\d.]+)/m.exec(text);
  if (bogo) return Math.round((Number(bogo[1]) / 2) * 1000);
  const mhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(text);
  if (mhz) return Math.round(Number(mhz[1]) * 1000);
  return undefined;
}

/**
 * Kernel parameters a guest needs under an accelerator. Under TCG the guest kernel's TSC
 * calibration against the emulated PIT fails about half the time and the boot then hangs in
 * the delay-loop calibration (measured: 5 hangs in 8 boots); telling it the TSC rate (TCG's
 * TSC runs at the host's rate) made 18 of 18 boots succeed.
 */
export function acceleratorKernelArgs(accel: Accelerator, tscKhz = hostTscKhz()): string[] {
  if (accel !== "tcg" || !tscKhz) return [];
  return [`tsc_early_khz=${tscKhz}`, "tsc=reliable"];
}
