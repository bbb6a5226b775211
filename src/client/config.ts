import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";

/**
 * Aurae's client configuration: which daemon to reach and the mTLS material to reach it with.
 *
 * The file format is Aurae's TOML:
 * ```toml
 * [auth]
 * ca_crt = "~/.aurae/pki/ca.crt"
 * client_crt = "~/.aurae/pki/_signed.client.nova.crt"
 * client_key = "~/.aurae/pki/client.nova.key"
 *
 * [system]
 * socket = "/var/run/aurae/aurae.sock"
 * ```
 * `~` is expanded to `$HOME`; a relative path is taken relative to the config file's directory.
 */
export interface AuraeConfig {
  auth: AuthConfig;
  system: SystemConfig;
  /** the file this configuration was read from, when it came from a file */
  source?: string;
}

export interface AuthConfig {
  /** CA certificate: a file path, or PEM contents */
  caCrt: string;
  /** client certificate: a file path, or PEM contents */
  clientCrt: string;
  /** client private key: a file path, or PEM contents */
  clientKey: string;
}

export interface SystemConfig {
  socket: AuraeSocket;
}

/**
 * Where the daemon listens: a Unix socket path, or a TCP address. `scopeId` is the zone of a
 * link-local IPv6 address (`eth0` or `4`).
 */
export type AuraeSocket =
  | { kind: "unix"; path: string }
  | { kind: "tcp"; host: string; port: number; family: 4 | 6 | "name"; scopeId?: string };

/** A configuration that cannot be found, read or understood. `path` names the file when there is one. */
export class AuraeConfigError extends Error {
  readonly path?: string;
  constructor(message: string, opts: { path?: string; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = "AuraeConfigError";
    this.path = opts.path;
  }
}

/** The socket a client uses when nothing says otherwise (Aurae's default for a daemon). */
export const DEFAULT_SOCKET = "/var/run/aurae/aurae.sock";

/**
 * The places searched for a config, in Aurae's order: `$HOME/.aurae/config`,
 * `/etc/aurae/config`, `/var/lib/aurae/config`.
 */
export function defaultConfigSearchPaths(home: string = homeDir()): string[] {
  return [resolve(home, ".aurae/config"), "/etc/aurae/config", "/var/lib/aurae/config"];
}

function homeDir(): string {
  return process.env["HOME"] || homedir();
}

/** Expands a leading `~` or `~/` to `home`. */
export function expandHome(p: string, home: string = homeDir()): string {
  if (p === "~") return home;
  if (p.startsWith("~/")) return resolve(home, p.slice(2));
  return p;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const HOSTNAME = /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

function port(text: string, original: string): number {
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text) || n < 1 || n > 65535) {
    throw new AuraeConfigError(`socket '${original}': port must be 1..65535`);
  }
  return n;
}

/**
 * Parses a socket: `/path/to/aurae.sock` (Unix), `unix:///path`, `127.0.0.1:8080`,
 * `host.example:8080`, `[::1]:8080`, `[fe80::2%eth0]:8080` or Aurae's `[fe80::2]:8080%4`
 * (scoped IPv6). Anything else that is not an address is a path, as in Aurae.
 *
 * @example parseSocket("[fe80::2%eth0]:8080") // { kind: "tcp", host: "fe80::2", port: 8080, family: 6, scopeId: "eth0" }
 */
export function parseSocket(text: string, home: string = homeDir()): AuraeSocket {
  const v = text.trim();
  if (v.length === 0) throw new AuraeConfigError("socket is empty");
  if (v.startsWith("unix://")) return { kind: "unix", path: v.slice("unix://".length) };
  if (v.startsWith("unix:")) return { kind: "unix", path: v.slice("unix:".length) };
  // [v6]:port, [v6%zone]:port, [v6]:port%zone (Aurae's form)
  const v6 = /^\[([0-9a-fA-F:.]+)(?:%([\w.-]+))?\]:(\d+)(?:%([\w.-]+))?$/.exec(v);
  if (v6) {
    const [, host, zoneIn, p, zoneAfter] = v6;
    if (zoneIn && zoneAfter) throw new AuraeConfigError(`socket '${text}': two scope ids`);
    if (!host!.includes(":")) throw new AuraeConfigError(`socket '${text}': '${host}' is not an IPv6 address`);
    const scopeId = zoneIn ?? zoneAfter;
    return { kind: "tcp", host: host!, port: port(p!, text), family: 6, ...(scopeId ? { scopeId } : {}) };
  }
  const hp = /^([^/:\s]+):(\d+)$/.exec(v);
  if (hp && (IPV4.test(hp[1]!) || HOSTNAME.test(hp[1]!))) {
    return { kind: "tcp", host: hp[1]!, port: port(hp[2]!, text), family: IPV4.test(hp[1]!) ? 4 : "name" };
  }
  return { kind: "unix", path: expandHome(v, home) };
}

/** The socket written back as text (the inverse of parseSocket). */
export function formatSocket(s: AuraeSocket): string {
  if (s.kind === "unix") return s.path;
  if (s.family === 6) return `[${s.host}${s.scopeId ? `%${s.scopeId}` : ""}]:${s.port}`;
  return `${s.host}:${s.port}`;
}

function isPem(value: string): boolean {
  return value.includes("-----BEGIN ");
}

/** Resolves a certificate/key field: PEM contents stay as they are; paths get `~` expanded and are made absolute. */
export function resolveMaterial(value: string, baseDir: string, home: string = homeDir()): string {
  if (isPem(value)) return value;
  const expanded = expandHome(value, home);
  return isAbsolute(expanded) ? expanded : resolve(baseDir, expanded);
}

/**
 * Parses the text of a config file. Throws AuraeConfigError naming `source` and the problem.
 *
 * @example parseConfig('[auth]\nca_crt="/pki/ca.crt"\nclient_crt="/pki/c.crt"\nclient_key="/pki/c.key"\n[system]\nsocket="/run/aurae.sock"')
 */
export function parseConfig(text: string, opts: { source?: string; home?: string } = {}): AuraeConfig {
  const where = opts.source ? `config '${opts.source}'` : "config";
  const home = opts.home ?? homeDir();
  const baseDir = opts.source ? dirname(resolve(opts.source)) : process.cwd();
  if (text.trim().length === 0) throw new AuraeConfigError(`${where}: the file is empty`, { path: opts.source });
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    const msg = (err as Error).message.split("\n")[0];
    throw new AuraeConfigError(`${where}: invalid TOML: ${msg}`, { path: opts.source, cause: err });
  }
  const table = (name: string): Record<string, unknown> => {
    const t = doc[name];
    if (t === undefined) throw new AuraeConfigError(`${where}: missing [${name}] table`, { path: opts.source });
    if (typeof t !== "object" || t === null || Array.isArray(t)) {
      throw new AuraeConfigError(`${where}: '${name}' must be a table`, { path: opts.source });
    }
    return t as Record<string, unknown>;
  };
  const str = (t: Record<string, unknown>, tname: string, key: string): string => {
    const v = t[key];
    if (v === undefined) throw new AuraeConfigError(`${where}: missing ${tname}.${key}`, { path: opts.source });
    if (typeof v !== "string" || v.trim() === "") {
      throw new AuraeConfigError(`${where}: ${tname}.${key} must be a non-empty string`, { path: opts.source });
    }
    return v;
  };
  const auth = table("auth");
  const system = table("system");
  let socket: AuraeSocket;
  try {
    socket = parseSocket(str(system, "system", "socket"), home);
  } catch (err) {
    if (err instanceof AuraeConfigError && err.path) throw err;
    throw new AuraeConfigError(`${where}: ${(err as Error).message}`, { path: opts.source, cause: err });
  }
  if (socket.kind === "unix" && !isAbsolute(socket.path)) socket = { kind: "unix", path: resolve(baseDir, socket.path) };
  return {
    auth: {
      caCrt: resolveMaterial(str(auth, "auth", "ca_crt"), baseDir, home),
      clientCrt: resolveMaterial(str(auth, "auth", "client_crt"), baseDir, home),
      clientKey: resolveMaterial(str(auth, "auth", "client_key"), baseDir, home),
    },
    system: { socket },
    ...(opts.source ? { source: resolve(opts.source) } : {}),
  };
}

/** Reads and parses one config file. */
export function readConfigFile(path: string, home?: string): AuraeConfig {
  const full = resolve(expandHome(path, home ?? homeDir()));
  let text: string;
  try {
    text = readFileSync(full, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (err as Error).message;
    throw new AuraeConfigError(`config '${full}': ${why}`, { path: full, cause: err });
  }
  return parseConfig(text, { source: full, home });
}

/**
 * Finds and reads the client config. With `path`, reads exactly that file. Otherwise takes the
 * first file of `searchPaths` (default: defaultConfigSearchPaths()) that exists. A file that
 * exists but is broken is an error naming the file (Aurae warns and moves on; we stop, because
 * silently using another identity is worse than failing).
 *
 * @example const config = loadConfig(); // $HOME/.aurae/config, /etc/aurae/config, /var/lib/aurae/config
 */
export function loadConfig(opts: { path?: string; searchPaths?: string[]; home?: string } = {}): AuraeConfig {
  if (opts.path !== undefined) return readConfigFile(opts.path, opts.home);
  const paths = opts.searchPaths ?? defaultConfigSearchPaths(opts.home);
  for (const p of paths) {
    if (existsSync(p)) return readConfigFile(p, opts.home);
  }
  throw new AuraeConfigError(
    `no client config found (searched ${paths.join(", ")}); create one with 'aer pki create'`,
  );
}
