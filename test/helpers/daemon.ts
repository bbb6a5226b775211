import { createServer as createNetServer, type AddressInfo } from "node:net";
import { ChannelCredentials } from "@grpc/grpc-js";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { clientConfigToml, SERVER_NAME, type DevPki } from "../../src/pki/pki.js";
import { testPki } from "./pki.js";

export const REPO = resolve(import.meta.dirname, "../..");
export const AURAED = join(REPO, "bin/auraed.js");

let counter = 0;

export interface TestDaemon {
  /** the temp dir holding runtime, library and config */
  dir: string;
  /** Unix socket path, or undefined when listening on TCP */
  socket?: string;
  /** grpc target for clients: unix:///path or host:port */
  target: string;
  pki: DevPki;
  credentials: ChannelCredentials;
  clientOptions: Record<string, string | number>;
  /** a client config file (Aurae's TOML format) pointing at this daemon */
  configPath: string;
  cgroupParent: string;
  process: ChildProcess;
  /** every stderr line so far */
  logs: string[];
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** sends SIGTERM (or the given signal) and resolves with the exit code */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /**
   * `kill -9`: the daemon dies without cleaning up; its directory, cgroups and workloads stay
   * for a restart (`startDaemon({ restartOf })`). Resolves once it has exited.
   */
  kill9(): Promise<void>;
}

export interface StartOptions {
  /** extra flags for auraed */
  args?: string[];
  /** --socket value; default a socket in the temp dir */
  socket?: string;
  cgroupParent?: string;
  env?: NodeJS.ProcessEnv;
  /** resolve once started (default) or return right after spawn */
  waitReady?: boolean;
  stopGraceMs?: number;
  /** a stopped daemon whose directory (runtime dir, state), socket and cgroup parent this one takes over: a restart */
  restartOf?: TestDaemon;
}

/** Client mTLS credentials from the shared test PKI (client "nova" by default). */
export async function clientCredentials(client = "nova"): Promise<ChannelCredentials> {
  const pki = await testPki();
  const pair = pki.clients[client]!;
  return ChannelCredentials.createSsl(readFileSync(pki.caCrt), readFileSync(pair.key), readFileSync(pair.crt));
}

export const CLIENT_OPTIONS = { "grpc.ssl_target_name_override": SERVER_NAME, "grpc.default_authority": SERVER_NAME };

/** Removes `<hierarchy>/<name>` and the empty cgroups below it in every mounted hierarchy (rmdir only: a cgroup with processes stays). */
function removeEmptyCgroups(name: string): void {
  const root = "/sys/fs/cgroup";
  let hierarchies: string[];
  try {
    hierarchies = readdirSync(root).map((h) => join(root, h));
  } catch {
    return;
  }
  for (const top of [...hierarchies, root].map((h) => join(h, name))) {
    const walk = (d: string) => {
      let entries;
      try {
        entries = readdirSync(d, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) if (e.isDirectory()) walk(join(d, e.name));
      try {
        rmdirSync(d);
      } catch {
        // not empty of processes, or already gone
      }
    };
    walk(top);
  }
}

/** Starts a real auraed (from dist/) with a temp PKI, runtime dir and socket. */
export async function startDaemon(opts: StartOptions = {}): Promise<TestDaemon> {
  const pki = await testPki();
  const dir = opts.restartOf?.dir ?? mkdtempSync(join(tmpdir(), "aurae-test-d-"));
  const socketArg = opts.socket ?? opts.restartOf?.socket ?? join(dir, "aurae.sock");
  const isTcp = /:\d+$/.test(socketArg) && !socketArg.includes("/");
  const cgroupParent = opts.cgroupParent ?? opts.restartOf?.cgroupParent ?? `aurae-test-${process.pid}-${++counter}`;
  const args = [
    AURAED,
    "--ca-crt", pki.caCrt,
    "--server-crt", pki.serverCrt,
    "--server-key", pki.serverKey,
    "--socket", socketArg,
    "--runtime-dir", join(dir, "run"),
    "--library-dir", join(dir, "lib"),
    "--cgroup-parent", cgroupParent,
    "--stop-grace-ms", String(opts.stopGraceMs ?? 2000),
    ...(opts.args ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
  const logs: string[] = [];
  const waiters = new Set<() => void>();
  let buf = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      logs.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters) w();
  });
  child.stdout!.resume();
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));

  const waitForLog = (re: RegExp, timeoutMs = 15000) =>
    new Promise<string>((resolveLog, reject) => {
      const check = () => {
        const hit = logs.find((l) => re.test(l));
        if (hit !== undefined) {
          cleanup();
          resolveLog(hit);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for log ${re}; logs:\n${logs.join("\n")}${buf}`));
      }, timeoutMs);
      const onExit = () => {
        cleanup();
        reject(new Error(`auraed exited while waiting for ${re}; logs:\n${logs.join("\n")}${buf}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
        child.off("exit", onExit);
      };
      waiters.add(check);
      child.once("exit", onExit);
      check();
    });

  const configPath = join(dir, "config");
  const nova = pki.clients["nova"]!;
  writeFileSync(configPath, clientConfigToml({ caCrt: pki.caCrt, clientCrt: nova.crt, clientKey: nova.key, socket: socketArg }));

  const d: TestDaemon = {
    dir,
    socket: isTcp ? undefined : socketArg,
    target: isTcp ? socketArg : `unix://${socketArg}`,
    pki,
    credentials: await clientCredentials(),
    clientOptions: CLIENT_OPTIONS,
    configPath,
    cgroupParent,
    process: child,
    logs,
    waitForLog,
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    },
    async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 30000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
      // a daemon that died (killed, crashed) could not remove its cgroups: the test does, so
      // nothing stays behind; after a clean exit 0 they must already be gone (tests check that)
      if (child.exitCode !== 0) removeEmptyCgroups(cgroupParent);
      return child.exitCode;
    },
  };
  if (opts.waitReady !== false) await waitForLog(/"msg":"auraed started"/);
  return d;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for a daemon started with --socket host:port). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createNetServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}
