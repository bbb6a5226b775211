import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mount, MS_RDONLY, mountAt } from "../../platform/mounts.js";
import type { DriveMountConfig } from "./boot-config.js";
import { ensureDir } from "../../platform/fs/ensure-dir.js";

/** The block device (`/dev/vdb`) whose virtio serial is `serial`, if attached. */
export function findDiskBySerial(serial: string, sysBlock = "/sys/block"): string | undefined {
  if (!existsSync(sysBlock)) return undefined;
  for (const dev of readdirSync(sysBlock)) {
    try {
      if (readFileSync(`${sysBlock}/${dev}/serial`, "utf8").trim() === serial) return `/dev/${dev}`;
    } catch {
      /* no serial attribute (not virtio-blk) */
    }
  }
  return undefined;
}

/** Mounts one drive at its path (creating it); a drive already mounted there is left alone. */
export function mountDrive(m: DriveMountConfig): "mounted" | "present" {
  const dev = findDiskBySerial(m.serial);
  if (!dev) throw new Error(`mount drive '${m.serial}' at ${m.path}: no disk with that serial is attached`);
  const existing = mountAt(m.path);
  if (existing && existing.source === dev) return "present";
  ensureDir(m.path);
  mount(dev, m.path, m.fsType, m.readOnly ? MS_RDONLY : 0, null);
  return "mounted";
}
