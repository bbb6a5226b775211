import { formatBootArgs } from "../init/boot-config.js";
import type { VmSpec } from "./spec.js";

/** The guest's address on QEMU's user network (slirp's first DHCP address) and its gateway. */
export const GUEST_IP = "10.0.2.15";
export const GUEST_CIDR = `${GUEST_IP}/24`;
export const GUEST_GATEWAY = "10.0.2.2";
/** where the guest's auraed listens (pid 1 mode default) */
export const GUEST_AURAED_PORT = 8080;
/** room kept for the accelerator's own parameters (acceleratorKernelArgs) */
export const PLATFORM_ARGS_RESERVE = 64;
/** x86 COMMAND_LINE_SIZE, including the terminating NUL */
export const MAX_CMDLINE = 2048;

/** The virtio-blk serial of the n-th drive mount (how the guest finds it). */
export function driveSerial(index: number): string {
  return `aurae-d${index}`;
}

/**
 * The kernel command line of a guest: serial console, panic powers the VM off (panic=-1 with
 * QEMU's -no-reboot), then the user's arguments, then pid 1's `aurae.*` configuration.
 */
export function guestCmdline(spec: Pick<VmSpec, "id" | "kernelArgs" | "drives">, platformArgs: string[] = []): string {
  return [
    "console=ttyS0",
    "panic=-1",
    "quiet",
    ...platformArgs,
    ...spec.kernelArgs,
    ...formatBootArgs({
      iface: "eth0",
      address: GUEST_CIDR,
      gateway: GUEST_GATEWAY,
      hostname: spec.id,
      mounts: spec.drives.map((d, i) => ({ serial: driveSerial(i), fsType: d.fsType, readOnly: d.readOnly, path: d.vmPath })),
    }),
  ].join(" ");
}
