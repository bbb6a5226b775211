import { ChannelCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { AuraeConfigError, type AuraeConfig, type AuraeSocket } from "./config.js";

/** The TLS server name clients verify by default: the name Aurae's development PKI issues. */
export const DEFAULT_SERVER_NAME = "server.unsafe.aurae.io";

/**
 * The grpc-js target of a socket: `unix:///path`, `ipv4:1.2.3.4:80`,
 * `ipv6:[fe80::2%eth0]:80`, or `host:port` (resolved by DNS).
 */
export function socketTarget(s: AuraeSocket): string {
  if (s.kind === "unix") return `unix://${s.path}`;
  if (s.family === 6) return `ipv6:[${s.host}${s.scopeId ? `%${s.scopeId}` : ""}]:${s.port}`;
  if (s.family === 4) return `ipv4:${s.host}:${s.port}`;
  return `dns:${s.host}:${s.port}`;
}

/** Reads one PEM file (or passes PEM contents through), naming the file and its role on failure. */
export function readMaterial(value: string, role: string): Buffer {
  if (value.includes("-----BEGIN ")) return Buffer.from(value);
  try {
    return readFileSync(value);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (err as Error).message;
    throw new AuraeConfigError(`${role} '${value}': ${why}`, { path: value, cause: err });
  }
}

export interface Connection {
  target: string;
  credentials: ChannelCredentials;
  channelOptions: ChannelOptions;
  /** the same material for Node's own TLS (direct streams, src/client/direct-stream.ts) */
  tls: { ca: Buffer; cert: Buffer; key: Buffer; serverName: string };
}

/** mTLS credentials and channel options for a config: the CA, the client pair, the server name. */
export function connectionFor(config: AuraeConfig, opts: { serverName?: string; channelOptions?: ChannelOptions } = {}): Connection {
  const ca = readMaterial(config.auth.caCrt, "CA certificate");
  const cert = readMaterial(config.auth.clientCrt, "client certificate");
  const key = readMaterial(config.auth.clientKey, "client key");
  let credentials: ChannelCredentials;
  try {
    credentials = ChannelCredentials.createSsl(ca, key, cert);
  } catch (err) {
    throw new AuraeConfigError(`TLS material of ${config.source ? `config '${config.source}'` : "the client"} is unusable: ${(err as Error).message}`, {
      path: config.source,
      cause: err,
    });
  }
  const serverName = opts.serverName ?? DEFAULT_SERVER_NAME;
  return {
    target: socketTarget(config.system.socket),
    credentials,
    tls: { ca, cert, key, serverName },
    channelOptions: {
      "grpc.ssl_target_name_override": serverName,
      "grpc.default_authority": serverName,
      // A 1 MiB HTTP/2 flow-control window (grpc-js: 64 KiB) lets a fast output stream run
      // without waiting for window updates: measured ~20% more MB/s and less CPU per MB on both
      // sides (docs/observe.md). Callers may override it.
      "grpc-node.flow_control_window": 1024 * 1024,
      ...opts.channelOptions,
    },
  };
}
