/**
 * What a guest's pid 1 is told through the kernel command line (the VM service writes it, the
 * guest's bootPid1 reads it). Parameters carry the `aurae.` prefix, so the kernel neither
 * interprets them nor passes them to init as arguments or environment:
 *
 *   aurae.iface=eth0 aurae.address=10.0.2.15/24 aurae.gateway=10.0.2.2 aurae.hostname=vm1
 *   aurae.mount=<disk serial>:<fs type>:<ro|rw>:<path, %XX-escaped>   (repeatable)
 *
 * A drive is found by its virtio-blk serial (`/sys/block/vdX/serial`), not by probe order.
 */
export interface DriveMountConfig {
  /** virtio-blk serial number of the disk (at most 20 characters) */
  serial: string;
  fsType: string;
  readOnly: boolean;
  /** absolute mount point in the guest */
  path: string;
}

export interface BootConfig {
  iface?: string;
  /** CIDR, e.g. 10.0.2.15/24 */
  address?: string;
  gateway?: string;
  hostname?: string;
  mounts: DriveMountConfig[];
}

const escapePath = (p: string) => p.replace(/[^A-Za-z0-9/._+-]/g, (c) => [...Buffer.from(c)].map((b) => `%${b.toString(16).padStart(2, "0")}`).join(""));
const unescapePath = (p: string) => decodeURIComponent(p);

/** Reads the `aurae.*` parameters of a kernel command line; unknown ones are ignored. */
export function parseBootConfig(cmdline: string): BootConfig {
  const cfg: BootConfig = { mounts: [] };
  for (const word of cmdline.trim().split(/\s+/)) {
    const eq = word.indexOf("=");
    if (!word.startsWith("aurae.") || eq < 0) continue;
    const key = word.slice("aurae.".length, eq);
    const value = word.slice(eq + 1);
    switch (key) {
      case "iface": cfg.iface = value; break;
      case "address": cfg.address = value; break;
      case "gateway": cfg.gateway = value; break;
      case "hostname": cfg.hostname = value; break;
      case "mount": {
        const [serial, fsType, mode, ...rest] = value.split(":");
        if (!serial || !fsType || (mode !== "ro" && mode !== "rw") || rest.length === 0) break;
        cfg.mounts.push({ serial, fsType, readOnly: mode === "ro", path: unescapePath(rest.join(":")) });
        break;
      }
      default: break;
    }
  }
  return cfg;
}

/** The kernel command line words for a boot config (the inverse of parseBootConfig). */
export function formatBootArgs(cfg: BootConfig): string[] {
  const out: string[] = [];
  if (cfg.iface) out.push(`aurae.iface=${cfg.iface}`);
  if (cfg.address) out.push(`aurae.address=${cfg.address}`);
  if (cfg.gateway) out.push(`aurae.gateway=${cfg.gateway}`);
  if (cfg.hostname) out.push(`aurae.hostname=${cfg.hostname}`);
  for (const m of cfg.mounts) out.push(`aurae.mount=${m.serial}:${m.fsType}:${m.readOnly ? "ro" : "rw"}:${escapePath(m.path)}`);
  return out;
}
