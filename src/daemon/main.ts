import { Command, Option } from "commander";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { DaemonContext, DaemonMode, ServiceModule } from "./context.js";
import { createDiscoveryService } from "./discovery/service.js";
import { HealthRegistry, ServingStatus } from "./health/registry.js";
import { createHealthService } from "./health/service.js";
import { Logger } from "./logger.js";
import { parseListenAddress, type ListenAddress } from "./server/address.js";
import { buildAuraeServices } from "./server/routes.js";
import { DaemonServer } from "./server/server.js";
import { prepareUnixSocket } from "./server/socket.js";
import { AuraeError } from "./errors.js";
import { loadServerCredentials, StartupError } from "./server/tls.js";
import { stopSignals } from "./stop-signals.js";

export const VERSION: string = (() => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
})();

export interface DaemonOptions {
  serverCrt: string;
  serverKey: string;
  caCrt: string;
  socket?: string;
  runtimeDir: string;
  libraryDir: string;
  verbose: boolean;
  nested: boolean;
  cgroupParent: string;
  stopGraceMs: number;
  drainMs: number;
  keepWorkloads: boolean;
  outputRetention: number;
}

function parseArgs(argv: string[]): DaemonOptions {
  const program = new Command("auraed")
    .description("Aurae node daemon: runs cells, executables and micro-VMs behind an mTLS gRPC API.")
    .version(VERSION)
    .option("--server-crt <path>", "server certificate (PEM)", "/etc/aurae/pki/_signed.server.crt")
    .option("--server-key <path>", "server private key (PEM)", "/etc/aurae/pki/server.key")
    .option("--ca-crt <path>", "CA certificate that client certificates must chain to", "/etc/aurae/pki/ca.crt")
    .option("-s, --socket <path|host:port>", "Unix socket path, or host:port / [ipv6]:port for TCP (default: <runtime-dir>/aurae.sock; [::]:8080 as pid 1)")
    .option("-r, --runtime-dir <dir>", "runtime directory", "/var/run/aurae")
    .option("-l, --library-dir <dir>", "library directory (persistent state, images)", "/var/lib/aurae")
    .option("-v, --verbose", "log debug records", false)
    .option("--nested", "run as a nested daemon (inside a cell or guest)", false)
    .addOption(new Option("--cgroup-parent <name>", "cgroup (in every hierarchy) under which all cells live").default("aurae"))
    .addOption(new Option("--stop-grace-ms <ms>", "grace period between SIGTERM and SIGKILL when stopping executables").default(5000).argParser(intArg("--stop-grace-ms")))
    .addOption(new Option("--drain-ms <ms>", "how long shutdown waits for running calls before cancelling them").default(5000).argParser(intArg("--drain-ms")))
    .addOption(new Option("--output-retention <bytes>", "output kept per executable and channel (older lines are freed and counted as dropped)").default(8 * 1024 * 1024).argParser(intArg("--output-retention")))
    .option("--keep-workloads", "on SIGTERM/SIGINT exit without stopping executables or freeing cells (for an upgrade: the next auraed re-adopts them)", false)
    .addHelpText("after", "\nExample:\n  npx aer pki create --install && sudo npx auraed\n");
  program.parse(argv);
  return program.opts<DaemonOptions>();
}

function intArg(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new StartupError(`${flag} must be a non-negative integer, got '${v}'`);
    return n;
  };
}

function chooseMode(opts: DaemonOptions): DaemonMode {
  if (process.pid === 1) return "pid1";
  return opts.nested ? "nested" : "daemon";
}

/**
 * Runs the daemon until SIGTERM/SIGINT (or `run.stop`, a stop request its caller caught
 * earlier: pid 1 does); resolves with the exit code.
 */
export async function runDaemon(argv: string[], run: { stop?: Promise<NodeJS.Signals> } = {}): Promise<number> {
  const opts = parseArgs(argv);
  const logger = new Logger({ level: opts.verbose ? "debug" : "info" });
  const mode = chooseMode(opts);
  // Caught before anything slow: a SIGTERM while starting shuts down as soon as the daemon is up.
  const stopSignal = run.stop ?? stopSignals();
  const ctx: DaemonContext = {
    mode,
    version: VERSION,
    runtimeDir: opts.runtimeDir,
    libraryDir: opts.libraryDir,
    cgroupParent: opts.cgroupParent,
    stopGraceMs: opts.stopGraceMs,
    keepWorkloads: opts.keepWorkloads,
    outputRetentionBytes: opts.outputRetention,
    logger,
    tls: { caCrt: opts.caCrt, serverCrt: opts.serverCrt, serverKey: opts.serverKey },
  };
  const address: ListenAddress = parseListenAddress(
    opts.socket ?? (mode === "pid1" ? "[::]:8080" : join(opts.runtimeDir, "aurae.sock")),
  );
  const credentials = loadServerCredentials(ctx.tls);
  // Before anything is adopted: a live daemon's socket means another daemon owns this node.
  if (address.kind === "unix") await prepareUnixSocket(address.path);

  const health = new HealthRegistry();
  let serving = false;
  const services: ServiceModule[] = [
    createDiscoveryService(ctx, () => serving),
    ...(await buildAuraeServices(ctx)),
  ];
  const healthModule = createHealthService(logger, health);
  const server = new DaemonServer(logger, [healthModule, ...services]);
  try {
    await server.listen(address, credentials);
  } catch (err) {
    // Nothing was served: let go of what was built, leaving every workload as it was.
    for (const s of [...services].reverse()) await (s.abandon ?? s.shutdown)?.call(s).catch(() => undefined);
    throw err;
  }

  health.set("", ServingStatus.SERVING);
  for (const s of services) health.set(s.name, ServingStatus.SERVING);
  serving = true;
  logger.info("auraed started", { version: VERSION, mode, pid: process.pid });

  const signal = await stopSignal;
  logger.info("shutting down", { signal });
  serving = false;
  health.shutdown();
  // Let watchers see NOT_SERVING before their streams end.
  await new Promise((r) => setImmediate(r));
  healthModule.endWatches();
  const closing = server.close(opts.drainMs);
  for (const s of [...services].reverse()) {
    try {
      await s.shutdown?.();
    } catch (err) {
      logger.error(`failed to shut down ${s.name}: ${(err as Error).message}`);
    }
  }
  await closing;
  logger.info("auraed stopped");
  return 0;
}

export async function main(argv = process.argv): Promise<void> {
  try {
    const code = await runDaemon(argv);
    process.exit(code);
  } catch (err) {
    if (err instanceof StartupError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    if (err instanceof AuraeError && err.kind !== "internal") {
      process.stderr.write(`auraed cannot start: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`auraed failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  }
}
