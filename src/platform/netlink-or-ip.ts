/**
 * Network interface configuration through the `ip` tool (iproute2 on hosts, busybox's `ip`
 * applet in guests): bring links up, add addresses and the default route. Each operation is
 * idempotent: an address or route that already exists is success.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

const IP_CANDIDATES = ["/sbin/ip", "/usr/sbin/ip", "/bin/ip", "/usr/bin/ip"];

export class NetworkConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NetworkConfigError";
  }
}

function ipTool(): string {
  const found = IP_CANDIDATES.find((p) => existsSync(p));
  if (!found) throw new NetworkConfigError(`no 'ip' tool found (looked in ${IP_CANDIDATES.join(", ")}); install iproute2 or busybox`);
  return found;
}

function ip(args: string[], tolerate: RegExp | undefined, what: string): void {
  try {
    execFileSync(ipTool(), args, { stdio: ["ignore", "ignore", "pipe"], timeout: 10_000 });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? "").trim();
    if (tolerate?.test(stderr)) return;
    throw new NetworkConfigError(`${what}: ${stderr || (err as Error).message}`);
  }
}

/** True when the interface exists in this network namespace (per /proc/net/dev, which follows the namespace). */
export function interfaceExists(name: string): boolean {
  return interfaceNames().includes(name);
}

/** Names of the interfaces of this network namespace. */
export function interfaceNames(): string[] {
  try {
    return readFileSync("/proc/net/dev", "utf8")
      .split("\n")
      .slice(2)
      .map((l) => l.split(":")[0]!.trim())
      .filter((n) => n.length > 0);
  } catch {
    return [];
  }
}

/** `ip link set NAME up`. */
export function linkUp(name: string): void {
  ip(["link", "set", "dev", name, "up"], undefined, `bring interface '${name}' up`);
}

/** `ip addr add CIDR dev NAME` (an existing address is fine). */
export function addAddress(name: string, cidr: string): void {
  if (!/^[0-9a-fA-F.:]+\/\d{1,3}$/.test(cidr)) throw new NetworkConfigError(`address '${cidr}' is not in CIDR form (e.g. 10.0.2.15/24)`);
  ip(["addr", "add", cidr, "dev", name], /exists/i, `add address ${cidr} to '${name}'`);
}

/** `ip route add default via GATEWAY` (an existing default route is fine). */
export function addDefaultRoute(gateway: string, dev?: string): void {
  const args = ["route", "add", "default", "via", gateway, ...(dev ? ["dev", dev] : [])];
  ip(args, /exists/i, `add default route via ${gateway}`);
}

/** Whether the interface is administratively up (IFF_UP in /sys/class/net/NAME/flags). */
export function isLinkUp(name: string): boolean {
  try {
    return (parseInt(readFileSync(`/sys/class/net/${name}/flags`, "utf8").trim(), 16) & 0x1) !== 0;
  } catch {
    return false;
  }
}
