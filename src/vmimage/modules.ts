import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

/**
 * The kernel modules a guest loads at boot, in this order (dependencies are added before
 * their users automatically): virtio transport, network, block, ext4 (for drive mounts),
 * and the ACPI power button with evdev (how QEMU's `system_powerdown` reaches pid 1).
 */
export const GUEST_MODULES = [
  "virtio_ring",
  "virtio",
  "virtio_mmio",
  "failover",
  "net_failover",
  "virtio_net",
  "virtio_blk",
  "crc32c_generic",
  "ext4",
  "button",
  "evdev",
];

export interface ModuleFile {
  name: string;
  /** path relative to the modules directory, e.g. `kernel/drivers/net/virtio_net.ko` */
  path: string;
}

const canon = (n: string) => n.replace(/-/g, "_");

/** Every `.ko` under a modules directory by canonical name (`-` written as `_`). */
export function indexModules(modulesDir: string): Map<string, string> {
  const index = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ko")) index.set(canon(e.name.slice(0, -3)), p);
    }
  };
  walk(modulesDir);
  return index;
}

/** The `depends=` list of a module, read from its `.modinfo` strings. */
export function moduleDepends(koPath: string): string[] {
  const data = readFileSync(koPath);
  const key = Buffer.from("depends=");
  let at = data.indexOf(key);
  while (at > 0 && data[at - 1] !== 0) at = data.indexOf(key, at + 1);
  if (at < 0) return [];
  const start = at + key.length;
  const end = data.indexOf(0, start);
  const list = data.subarray(start, end).toString("latin1");
  return list.split(",").map((s) => canon(s.trim())).filter((s) => s.length > 0);
}

/** Resolves `wanted` (in order) with their dependencies first; names without a module file are builtin and skipped. */
export function resolveModules(modulesDir: string, wanted: string[] = GUEST_MODULES): ModuleFile[] {
  const index = indexModules(modulesDir);
  const out: ModuleFile[] = [];
  const done = new Set<string>();
  const visit = (name: string, chain: string[]) => {
    const n = canon(name);
    if (done.has(n)) return;
    if (chain.includes(n)) throw new Error(`module dependency cycle: ${[...chain, n].join(" -> ")}`);
    const path = index.get(n);
    if (!path) return;
    for (const dep of moduleDepends(path)) visit(dep, [...chain, n]);
    done.add(n);
    out.push({ name: n, path: relative(modulesDir, path) });
  };
  for (const w of wanted) visit(w, []);
  return out;
}
