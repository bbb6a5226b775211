/**
 * Parses VmService requests into validated domain values. Every problem is INVALID_ARGUMENT
 * naming the field; files are checked to exist and be of the right kind.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";
import os from "node:os";
import { dirname, isAbsolute, join, normalize } from "node:path";
import type { VirtualMachine } from "../../api/aurae/vms/v0/vms.js";
import { invalidArgument } from "../errors.js";
import { guestCmdline, MAX_CMDLINE, PLATFORM_ARGS_RESERVE } from "./cmdline.js";
import type { DriveMountSpec, VmSpec } from "./spec.js";

export const MIN_MEM_MIB = 64;
/** virtio-mmio transports of a microvm are limited; network takes one */
export const MAX_DRIVES = 16;
/** filesystems the guest image can mount (it ships the ext4 driver, which also serves ext2/ext3) */
export const GUEST_FS_TYPES = ["ext4", "ext3", "ext2"];
/** the file looked for beside the kernel when no root drive is given */
export const DEFAULT_INITRAMFS = "initramfs.img";

const LABEL = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
const RESERVED_GUEST_PATHS = ["/proc", "/sys", "/dev"];

export interface HostLimits {
  memMiB: number;
  cores: number;
}

/** This host's memory (MiB, computed in 64-bit floating point: no overflow) and cores. */
export function hostLimits(): HostLimits {
  return { memMiB: Math.floor(os.totalmem() / 1048576), cores: os.availableParallelism() };
}

/** Why `id` is not a valid VM id (a DNS label), or undefined. */
export function vmIdProblem(id: string): string | undefined {
  if (id === "") return "must not be empty";
  if (id.length > 63) return "is longer than 63 characters";
  if (!LABEL.test(id)) return "must be a DNS label: 1-63 characters of a-z, A-Z, 0-9 and '-', not starting or ending with '-'";
  return undefined;
}

export function checkVmId(action: string, id: string): void {
  const p = vmIdProblem(id);
  if (p) throw invalidArgument(`${action}: vm_id '${id.slice(0, 70)}' ${p}`);
}

const INITRAMFS_MAGICS: Buffer[] = [
  Buffer.from("070701"), Buffer.from("070702"), // cpio newc / crc
  Buffer.from([0x1f, 0x8b]), // gzip
  Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), // zstd
  Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), // xz
  Buffer.from([0x02, 0x21, 0x4c, 0x18]), // lz4 legacy
  Buffer.from("BZh"), // bzip2
  Buffer.from([0x5d, 0x00, 0x00]), // lzma
];

function head(path: string, n: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const b = Buffer.alloc(n);
    const got = readSync(fd, b, 0, n, 0);
    return b.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

function checkRegularFile(action: string, field: string, path: string): void {
  if (!path) throw invalidArgument(`${action}: ${field} must not be empty`);
  if (!isAbsolute(path)) throw invalidArgument(`${action}: ${field} '${path}' must be an absolute path`);
  let st;
  try {
    st = statSync(path);
  } catch {
    throw invalidArgument(`${action}: ${field} '${path}' does not exist`);
  }
  if (!st.isFile()) throw invalidArgument(`${action}: ${field} '${path}' is not a regular file`);
}

function isInitramfs(path: string): boolean {
  const h = head(path, 8);
  return INITRAMFS_MAGICS.some((m) => h.subarray(0, m.length).equals(m));
}

function parseDrive(action: string, i: number, d: { imagePath: string; vmPath: string; fsType: string; readOnly: boolean }, seen: Set<string>): DriveMountSpec {
  const f = `drive_mounts[${i}]`;
  if (!d.imagePath) throw invalidArgument(`${action}: ${f}.image_path must not be empty`);
  if (!isAbsolute(d.imagePath)) throw invalidArgument(`${action}: ${f}.image_path '${d.imagePath}' must be an absolute path`);
  let st;
  try {
    st = statSync(d.imagePath);
  } catch {
    throw invalidArgument(`${action}: ${f}.image_path '${d.imagePath}' does not exist`);
  }
  if (!st.isFile() && !st.isBlockDevice()) throw invalidArgument(`${action}: ${f}.image_path '${d.imagePath}' is neither a regular file nor a block device`);
  if (!d.vmPath || !isAbsolute(d.vmPath)) throw invalidArgument(`${action}: ${f}.vm_path '${d.vmPath}' must be an absolute path`);
  if (/[\s\0]/.test(d.vmPath) || d.vmPath.length > 256) throw invalidArgument(`${action}: ${f}.vm_path must be at most 256 characters without whitespace`);
  const vmPath = normalize(d.vmPath).replace(/\/+$/, "");
  if (vmPath === "" || vmPath === "/") throw invalidArgument(`${action}: ${f}.vm_path must not be '/' (the guest's root is its initramfs)`);
  const reserved = RESERVED_GUEST_PATHS.find((r) => vmPath === r || vmPath.startsWith(`${r}/`));
  if (reserved) throw invalidArgument(`${action}: ${f}.vm_path '${vmPath}' is inside ${reserved}, which the guest's pid 1 owns`);
  if (seen.has(vmPath)) throw invalidArgument(`${action}: ${f}.vm_path '${vmPath}' is used by another drive mount`);
  seen.add(vmPath);
  if (!GUEST_FS_TYPES.includes(d.fsType)) {
    throw invalidArgument(`${action}: ${f}.fs_type '${d.fsType}' is not supported by the guest image (supported: ${GUEST_FS_TYPES.join(", ")})`);
  }
  return { imagePath: d.imagePath, vmPath, fsType: d.fsType, readOnly: d.readOnly };
}

/** Validates an Allocate request's machine. */
export function parseVirtualMachine(m: VirtualMachine | undefined, host: HostLimits = hostLimits()): VmSpec {
  if (!m) throw invalidArgument("allocate vm: machine is required");
  const action = `allocate vm '${m.id.slice(0, 70)}'`;
  const idProblem = vmIdProblem(m.id);
  if (idProblem) throw invalidArgument(`${action}: machine.id ${idProblem}`);
  if (!Number.isInteger(m.memSizeMb) || m.memSizeMb < MIN_MEM_MIB || m.memSizeMb > host.memMiB) {
    throw invalidArgument(`${action}: machine.mem_size_mb ${m.memSizeMb} must be ${MIN_MEM_MIB}..${host.memMiB} (this host's memory in MiB)`);
  }
  if (!Number.isInteger(m.vcpuCount) || m.vcpuCount < 1 || m.vcpuCount > host.cores) {
    throw invalidArgument(`${action}: machine.vcpu_count ${m.vcpuCount} must be 1..${host.cores} (this host's cores)`);
  }
  checkRegularFile(action, "machine.kernel_img_path", m.kernelImgPath);

  let initramfs: string;
  if (m.rootDrive && m.rootDrive.imagePath) {
    checkRegularFile(action, "machine.root_drive.image_path", m.rootDrive.imagePath);
    if (!isInitramfs(m.rootDrive.imagePath)) {
      throw invalidArgument(
        `${action}: machine.root_drive.image_path '${m.rootDrive.imagePath}' is not an initramfs (cpio, optionally compressed); ` +
          "block-device root filesystems are not supported: attach data disks with drive_mounts",
      );
    }
    initramfs = m.rootDrive.imagePath;
  } else {
    initramfs = join(dirname(m.kernelImgPath), DEFAULT_INITRAMFS);
    if (!existsSync(initramfs)) {
      throw invalidArgument(
        `${action}: machine.root_drive is not set and there is no ${DEFAULT_INITRAMFS} beside the kernel ('${initramfs}'); build an image with 'aer vm image build'`,
      );
    }
  }

  m.kernelArgs.forEach((a, i) => {
    if (a === "" || /[\s\0-\x1f\x7f]/.test(a)) throw invalidArgument(`${action}: machine.kernel_args[${i}] must be one word without whitespace or control characters`);
    if (a.startsWith("aurae.")) throw invalidArgument(`${action}: machine.kernel_args[${i}] '${a}': parameters starting with 'aurae.' are reserved for the guest's configuration`);
  });
  if (m.driveMounts.length > MAX_DRIVES) throw invalidArgument(`${action}: machine.drive_mounts has ${m.driveMounts.length} entries; at most ${MAX_DRIVES}`);
  const seen = new Set<string>();
  const drives = m.driveMounts.map((d, i) => parseDrive(action, i, d, seen));
  const spec: VmSpec = { id: m.id, memMiB: m.memSizeMb, vcpus: m.vcpuCount, kernel: m.kernelImgPath, initramfs, kernelArgs: [...m.kernelArgs], drives };
  const cmdline = guestCmdline(spec);
  if (cmdline.length + 1 + PLATFORM_ARGS_RESERVE > MAX_CMDLINE) {
    throw invalidArgument(
      `${action}: the kernel command line would be ${cmdline.length + 1} bytes; at most ${MAX_CMDLINE - PLATFORM_ARGS_RESERVE} (shorten kernel_args or drive_mounts' vm_path)`,
    );
  }
  return spec;
}
