/**
 * The command line of a QEMU micro-VM: `-M microvm` booting a kernel (PVH entry for an ELF
 * vmlinux) and an initramfs, virtio-mmio devices only, no firmware menus, no default devices.
 */
export type Accelerator = "kvm" | "tcg";

export interface QemuDrive {
  /** unique id, also the QEMU drive id */
  id: string;
  path: string;
  readOnly: boolean;
  /** virtio-blk serial (at most 20 bytes): how the guest finds the disk */
  serial: string;
}

export interface HostForward {
  /** host address to bind; only loopback is allowed */
  hostAddress: "127.0.0.1";
  /** 0: QEMU picks a free port (read it back over QMP: parseHostForwardPort) */
  hostPort: number;
  guestAddress: string;
  guestPort: number;
}

export interface QemuMachineSpec {
  binary?: string;
  accel: Accelerator;
  memMiB: number;
  vcpus: number;
  kernel: string;
  initrd?: string;
  cmdline: string;
  drives: QemuDrive[];
  /** user-mode network with `restrict=on` (the guest reaches nothing) and these forwards */
  forwards: HostForward[];
  /** QMP server socket path */
  qmpSocket: string;
  /** where the serial console is written */
  consoleLog: string;
  /** TCG translation cache size in MiB (bounds QEMU's own memory); default 128 */
  tcgCacheMiB?: number;
}

export const QEMU_BINARY = "qemu-system-x86_64";

export function qemuArgv(s: QemuMachineSpec): string[] {
  const accel = s.accel === "tcg" ? `tcg,thread=multi,tb-size=${s.tcgCacheMiB ?? 128}` : "kvm";
  const argv = [
    s.binary ?? QEMU_BINARY,
    "-accel", accel,
    // pit/rtc: plain microvm hung in about one boot of nine without them (HOST.md)
    "-M", "microvm,pit=on,rtc=on,acpi=on",
    ...(s.accel === "kvm" ? ["-cpu", "host"] : []),
    "-m", `${s.memMiB}M`,
    "-smp", String(s.vcpus),
    "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-no-reboot",
    "-serial", `file:${s.consoleLog}`,
    "-kernel", s.kernel,
    ...(s.initrd ? ["-initrd", s.initrd] : []),
    "-append", s.cmdline,
    "-qmp", `unix:${s.qmpSocket},server=on,wait=off`,
  ];
  const fwd = s.forwards
    .map((f) => `,hostfwd=tcp:${f.hostAddress}:${f.hostPort}-${f.guestAddress}:${f.guestPort}`)
    .join("");
  argv.push("-netdev", `user,id=net0,restrict=on${fwd}`, "-device", "virtio-net-device,netdev=net0");
  for (const d of s.drives) {
    argv.push(
      "-drive", `id=${d.id},file=${escapeOpt(d.path)},format=raw,if=none,readonly=${d.readOnly ? "on" : "off"}`,
      "-device", `virtio-blk-device,drive=${d.id},serial=${d.serial}`,
    );
  }
  return argv;
}

/** QEMU option values escape a comma by doubling it. */
function escapeOpt(v: string): string {
  return v.replace(/,/g, ",,");
}
