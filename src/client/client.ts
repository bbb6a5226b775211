import { Channel, connectivityState, type ChannelCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { AuraeConfigError, loadConfig, parseSocket, readConfigFile, type AuraeConfig } from "./config.js";
import { AuraeClientError } from "./errors.js";
import { connectionFor } from "./transport.js";
import { DirectSession } from "./direct-stream.js";
import { status } from "@grpc/grpc-js";

/** Aurae's `createClient()` shapes. */
export type CreateClientDefault = { kind: "default" };
/** A config file to read. */
export type CreateClientPath = { kind: "path"; path: string };
/**
 * Explicit material, in Aurae's option names (`ca_crt`, `client_crt`, `client_key`, `socket`).
 * Each of the three may be a file path or PEM contents.
 */
export type CreateClientOpts = { kind: "opts"; ca_crt: string; client_crt: string; client_key: string; socket: string };

/** Our own options: any of a config (object or file), overrides, and transport settings. */
export interface ClientOptions {
  /** an already parsed config; wins over configPath and the search */
  config?: AuraeConfig;
  /** read this config file instead of searching */
  configPath?: string;
  /** where to search when neither config nor configPath is given (default: Aurae's three places) */
  searchPaths?: string[];
  /** overrides the config's socket: a path, `host:port`, `[v6]:port` */
  socket?: string;
  /** overrides of the config's TLS material: file paths or PEM contents */
  caCrt?: string;
  clientCrt?: string;
  clientKey?: string;
  /** the TLS server name to verify (default `server.unsafe.aurae.io`) */
  serverName?: string;
  /** a deadline for every unary call that does not set its own (default: none) */
  defaultDeadlineMs?: number;
  /** extra grpc-js channel options */
  channelOptions?: ChannelOptions;
}

export type CreateClientOptions = CreateClientDefault | CreateClientPath | CreateClientOpts | ClientOptions;

/**
 * A connection to one auraed: one gRPC channel (mTLS) that every service client built on it
 * shares. The channel connects lazily, on the first call, and reconnects by itself.
 */
export class AuraeClient {
  readonly config: AuraeConfig;
  readonly target: string;
  readonly serverName: string;
  readonly credentials: ChannelCredentials;
  readonly channelOptions: ChannelOptions;
  readonly channel: Channel;
  /** deadline applied to unary calls that do not set one */
  defaultDeadlineMs?: number;
  /** the HTTP/2 session of the direct streams (executables' output), beside the channel */
  readonly direct: DirectSession;
  #closed = false;

  constructor(config: AuraeConfig, opts: { serverName?: string; defaultDeadlineMs?: number; channelOptions?: ChannelOptions } = {}) {
    const conn = connectionFor(config, opts);
    this.config = config;
    this.target = conn.target;
    this.serverName = String(conn.channelOptions["grpc.ssl_target_name_override"]);
    this.credentials = conn.credentials;
    this.channelOptions = conn.channelOptions;
    this.channel = new Channel(conn.target, conn.credentials, conn.channelOptions);
    this.defaultDeadlineMs = opts.defaultDeadlineMs;
    this.direct = new DirectSession({
      socket: config.system.socket,
      ...conn.tls,
      window: Number(conn.channelOptions["grpc-node.flow_control_window"] ?? 65535),
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Resolves once the channel is connected, or rejects with UNAVAILABLE / DEADLINE_EXCEEDED.
   *
   * @example await client.waitForReady(2000);
   */
  waitForReady(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    return new Promise((resolve, reject) => {
      const check = () => {
        const state = this.channel.getConnectivityState(true);
        if (state === connectivityState.READY) return resolve();
        if (state === connectivityState.SHUTDOWN) {
          return reject(new AuraeClientError(status.UNAVAILABLE, `channel to ${this.target} is closed`));
        }
        if (Date.now() >= deadline) {
          return reject(new AuraeClientError(status.DEADLINE_EXCEEDED, `could not connect to ${this.target} within ${timeoutMs} ms`));
        }
        this.channel.watchConnectivityState(state, deadline, () => check());
      };
      check();
    });
  }

  /** Closes the channel; calls in flight are cancelled. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.channel.close();
    this.direct.close();
  }
}

function isAuraeShape(o: CreateClientOptions): o is CreateClientDefault | CreateClientPath | CreateClientOpts {
  return "kind" in o && typeof (o as { kind?: unknown }).kind === "string";
}

/**
 * Turns any createClient() argument into a config. Exported for the CLI and tests.
 */
export function resolveClientConfig(opts: CreateClientOptions = { kind: "default" }): AuraeConfig {
  let o: CreateClientOptions = opts;
  // Aurae's createClient infers the kind when it is missing
  if (!("kind" in o) || o.kind === undefined) {
    if ("path" in o && typeof (o as { path?: unknown }).path === "string") o = { kind: "path", path: (o as { path: string }).path };
    else if ("ca_crt" in o) o = { ...(o as object), kind: "opts" } as CreateClientOpts;
  }
  if (isAuraeShape(o)) {
    switch (o.kind) {
      case "default":
        return loadConfig();
      case "path":
        return readConfigFile(o.path);
      case "opts": {
        for (const k of ["ca_crt", "client_crt", "client_key", "socket"] as const) {
          if (typeof o[k] !== "string" || o[k] === "") throw new AuraeConfigError(`createClient({kind: "opts"}): '${k}' is required`);
        }
        return {
          auth: { caCrt: o.ca_crt, clientCrt: o.client_crt, clientKey: o.client_key },
          system: { socket: parseSocket(o.socket) },
        };
      }
      default:
        throw new AuraeConfigError(`createClient: unknown kind '${(o as { kind: string }).kind}' (use "default", "path" or "opts")`);
    }
  }
  const p = o as ClientOptions;
  const hasAll = p.caCrt && p.clientCrt && p.clientKey && p.socket;
  const base: AuraeConfig = p.config
    ?? (p.configPath !== undefined
      ? readConfigFile(p.configPath)
      : hasAll
        ? { auth: { caCrt: p.caCrt!, clientCrt: p.clientCrt!, clientKey: p.clientKey! }, system: { socket: parseSocket(p.socket!) } }
        : loadConfig({ searchPaths: p.searchPaths }));
  return {
    ...base,
    auth: {
      caCrt: p.caCrt ?? base.auth.caCrt,
      clientCrt: p.clientCrt ?? base.auth.clientCrt,
      clientKey: p.clientKey ?? base.auth.clientKey,
    },
    system: { socket: p.socket !== undefined ? parseSocket(p.socket) : base.system.socket },
  };
}

/**
 * Creates a client for one auraed. With no argument it reads the first config found in
 * `$HOME/.aurae/config`, `/etc/aurae/config`, `/var/lib/aurae/config` (Aurae's order).
 * Throws AuraeConfigError when no usable config or TLS material is found.
 *
 * @example
 * const client = createClient();                                        // config search
 * const c2 = createClient({ kind: "path", path: "/etc/aurae/config" });  // one file
 * const c3 = createClient({ kind: "opts", ca_crt: "ca.crt", client_crt: "c.crt", client_key: "c.key", socket: "/var/run/aurae/aurae.sock" });
 * const c4 = createClient({ socket: "127.0.0.1:8080", defaultDeadlineMs: 5000 });
 */
export function createClient(opts: CreateClientOptions = { kind: "default" }): AuraeClient {
  const config = resolveClientConfig(opts);
  const p = isAuraeShape(opts) ? {} : (opts as ClientOptions);
  return new AuraeClient(config, { serverName: p.serverName, defaultDeadlineMs: p.defaultDeadlineMs, channelOptions: p.channelOptions });
}

let shared: AuraeClient | undefined;

/**
 * The client service classes use when constructed without one (`new CellServiceClient()`, as
 * Aurae's early scripts do): created from the config search on first use.
 */
export function defaultClient(): AuraeClient {
  if (!shared || shared.closed) shared = createClient();
  return shared;
}
