/** Validated VM requests, as the VM domain takes them (never raw proto). */

export interface DriveMountSpec {
  /** host file (raw image) or block device */
  imagePath: string;
  /** absolute mount point in the guest */
  vmPath: string;
  fsType: string;
  readOnly: boolean;
}

export interface VmSpec {
  /** a DNS label */
  id: string;
  memMiB: number;
  vcpus: number;
  /** the guest kernel (ELF vmlinux for the PVH entry, or a bzImage) */
  kernel: string;
  /**
   * The guest's root filesystem: an initramfs (cpio, optionally compressed). From
   * root_drive.image_path, or `initramfs.img` beside the kernel when no root drive is given.
   */
  initramfs: string;
  kernelArgs: string[];
  drives: DriveMountSpec[];
}

/** Lifecycle: allocated -Start-> starting -> running -Stop-> stopping -> stopped -Start-> ... ; Free from allocated/stopped. */
export type VmState = "allocated" | "starting" | "running" | "stopping" | "stopped";

export interface VmView {
  spec: VmSpec;
  /** QEMU's own run state (QMP query-status) while QEMU runs; our lifecycle state otherwise */
  status: string;
  state: VmState;
  /** host:port of the guest's auraed while running, "" otherwise */
  auraedAddress: string;
}
