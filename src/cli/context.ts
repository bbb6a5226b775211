import { AuraeClient, createClient } from "../client/client.js";

/** The options every `aer` command accepts. */
export interface GlobalOptions {
  /** client config file (default: Aurae's search) */
  config?: string;
  /** daemon socket, overriding the config's */
  socket?: string;
  /** TLS server name to verify */
  serverName?: string;
  json?: boolean;
  /** deadline of each unary call */
  timeoutMs?: number;
}

/**
 * What handlers get: the global options, a lazily created client (commands that talk to no
 * daemon never read a config), and a signal that fires on SIGINT/SIGTERM.
 */
export class CommandContext {
  readonly global: GlobalOptions;
  readonly signal: AbortSignal;
  #client?: AuraeClient;
  readonly #factory: (g: GlobalOptions) => AuraeClient;

  constructor(global: GlobalOptions, signal: AbortSignal, factory: (g: GlobalOptions) => AuraeClient = defaultFactory) {
    this.global = global;
    this.signal = signal;
    this.#factory = factory;
  }

  get client(): AuraeClient {
    this.#client ??= this.#factory(this.global);
    return this.#client;
  }

  /** Per-call options: the interrupt signal and the --timeout-ms deadline. */
  get call(): { signal: AbortSignal; deadlineMs?: number } {
    return { signal: this.signal, ...(this.global.timeoutMs !== undefined ? { deadlineMs: this.global.timeoutMs } : {}) };
  }

  /** Options for streams: the interrupt signal only (a stream runs until it ends or is interrupted). */
  get streamCall(): { signal: AbortSignal } {
    return { signal: this.signal };
  }

  close(): void {
    this.#client?.close();
  }
}

function defaultFactory(g: GlobalOptions): AuraeClient {
  return createClient({
    ...(g.config !== undefined ? { configPath: g.config } : {}),
    ...(g.socket !== undefined ? { socket: g.socket } : {}),
    ...(g.serverName !== undefined ? { serverName: g.serverName } : {}),
  });
}
