import { Server, type ServerCredentials } from "@grpc/grpc-js";
import type { ServiceModule } from "../context.js";
import type { Logger } from "../logger.js";
import { describeAddress, grpcTarget, type ListenAddress } from "./address.js";
import { removeSocket } from "./socket.js";
import { chmodSync } from "node:fs";
import { StartupError } from "./tls.js";
import { directMethods, MAX_REQUEST_BYTES, routeDirectStreams, type DirectMethod } from "./direct-stream.js";

/** Limits every listener enforces (a resource a client controls is bounded). */
const SERVER_OPTIONS = {
  "grpc.max_receive_message_length": MAX_REQUEST_BYTES,
  "grpc.max_concurrent_streams": 1024,
  "grpc.keepalive_permit_without_calls": 1,
};

/** The daemon's gRPC server: every service registered here, mTLS on every listener. */
export class DaemonServer {
  readonly server = new Server(SERVER_OPTIONS);
  private readonly bound: ListenAddress[] = [];
  private readonly direct: DirectMethod[] = [];

  constructor(private readonly logger: Logger, modules: ServiceModule[]) {
    for (const m of modules) {
      this.server.addService(m.definition, m.implementation);
      // AURAED_DIRECT_STREAMS=off keeps every method on grpc-js (for comparison and diagnosis)
      if (m.directStreams && process.env.AURAED_DIRECT_STREAMS !== "off") {
        this.direct.push(...directMethods(m.definition, m.implementation, m.directStreams.methods, m.directStreams.responseSent));
      }
    }
  }

  /**
   * Binds the address (a Unix socket must have been prepared with prepareUnixSocket, before
   * anything was adopted: a live daemon's socket is never taken).
   */
  async listen(address: ListenAddress, credentials: ServerCredentials): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.bindAsync(grpcTarget(address), credentials, (err) => {
        if (err) reject(new StartupError(`auraed cannot listen on '${describeAddress(address)}': ${err.message}`));
        else resolve();
      });
    });
    if (address.kind === "unix") chmodSync(address.path, 0o660);
    const direct = this.direct.length > 0 && routeDirectStreams(this.server, this.direct, this.logger);
    this.bound.push(address);
    this.logger.info("listening", { address: describeAddress(address), tls: "mutual", ...(direct ? { directStreams: this.direct.map((m) => m.path) } : {}) });
  }

  /**
   * Stops accepting calls and waits for running calls to finish for up to `drainMs`, then
   * cancels what is left. Removes the Unix sockets it created.
   */
  async close(drainMs: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.logger.warn("calls still running after the drain period, cancelling them", { drainMs });
        this.server.forceShutdown();
        resolve();
      }, drainMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    for (const a of this.bound) if (a.kind === "unix") removeSocket(a.path);
  }
}
