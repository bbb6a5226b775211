import { isAbsolute, resolve } from "node:path";

/** Where a listener binds: a Unix socket path, or TCP host:port. */
export type ListenAddress = { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

/**
 * Parses `--socket`: a path (anything containing '/' or not of the form host:port), or
 * `host:port`, `[ipv6]:port`, `[fe80::1%eth0]:port` for TCP.
 */
export function parseListenAddress(value: string): ListenAddress {
  const v = value.trim();
  if (v.length === 0) throw new Error("--socket is empty");
  const bracket = /^\[([0-9a-fA-F:.]+(?:%[\w.-]+)?)\]:(\d{1,5})$/.exec(v);
  if (bracket) return tcp(bracket[1]!, bracket[2]!, value);
  const hostPort = /^([a-zA-Z0-9.-]+):(\d{1,5})$/.exec(v);
  if (hostPort && !v.includes("/")) return tcp(hostPort[1]!, hostPort[2]!, value);
  return { kind: "unix", path: isAbsolute(v) ? v : resolve(v) };
}

function tcp(host: string, portText: string, original: string): ListenAddress {
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`--socket '${original}': port must be 1..65535`);
  }
  return { kind: "tcp", host, port };
}

/** The grpc-js bind target for an address. */
export function grpcTarget(a: ListenAddress): string {
  if (a.kind === "unix") return `unix://${a.path}`;
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

export function describeAddress(a: ListenAddress): string {
  return a.kind === "unix" ? a.path : grpcTarget(a);
}
