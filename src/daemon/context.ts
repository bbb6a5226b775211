import type { Logger } from "./logger.js";

/** How auraed was started; chosen once at start (BEHAVIOUR.md section 1). */
export type DaemonMode = "daemon" | "pid1" | "nested";

/** What every service of one daemon shares. Built once in main.ts. */
export interface DaemonContext {
  mode: DaemonMode;
  version: string;
  runtimeDir: string;
  libraryDir: string;
  /** The cgroup (relative to each hierarchy's root) under which every cell lives. */
  cgroupParent: string;
  /** Grace period between SIGTERM and SIGKILL when stopping executables. */
  stopGraceMs: number;
  /** On graceful shutdown, leave every workload running for the next daemon to adopt (upgrade). */
  keepWorkloads?: boolean;
  /** output kept per executable and channel (default 8 MiB) */
  outputRetentionBytes?: number;
  logger: Logger;
  /** Paths of the TLS material the daemon serves with (VMs sign guest certificates with the CA). */
  tls: { caCrt: string; serverCrt: string; serverKey: string };
}

/**
 * A gRPC service the daemon serves: registered in one place (server/routes.ts).
 * `shutdown` is called in reverse order of registration during graceful shutdown.
 */
export interface ServiceModule {
  /** The fully qualified gRPC service name, as health reports it. */
  name: string;
  definition: import("@grpc/grpc-js").ServiceDefinition;
  implementation: import("@grpc/grpc-js").UntypedServiceImplementation;
  shutdown?(): Promise<void>;
  /**
   * Server-streaming methods (implementation names) whose handlers write encoded responses as
   * Buffers: served on their HTTP/2 streams directly (src/daemon/server/direct-stream.ts).
   * `responseSent` gets each response's bytes once they are sent.
   */
  directStreams?: { methods: string[]; responseSent?: (bytes: Buffer) => void };
  /**
   * Lets go of everything without stopping any workload, for a start that failed after the
   * module was built (its workloads stay for the next daemon). Default: `shutdown`.
   */
  abandon?(): Promise<void>;
}
