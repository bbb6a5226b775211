/**
 * One run of a VM: QEMU launched, its QMP socket connected, the forwarded port learnt, the
 * guest's auraed answering TLS; then stopped by ACPI power-off (QMP `system_powerdown`) with
 * a kill after a timeout. A run ends when QEMU exits, for whatever reason.
 */
import { existsSync, openSync, closeSync, readSync, rmSync, statSync, watch, writeFileSync } from "node:fs";
import { join } from "node:path";
import tls from "node:tls";
import { acceleratorKernelArgs } from "../../platform/qemu/accel.js";
import { qemuArgv, type Accelerator } from "../../platform/qemu/argv.js";
import { parseHostForwardPort, QmpClient } from "../../platform/qemu/qmp.js";
import { driveSerial, GUEST_AURAED_PORT, GUEST_IP, guestCmdline } from "./cmdline.js";
import type { VmmExit, VmmLauncher, VmmProcess } from "./launcher.js";
import type { VmSpec } from "./spec.js";
import { ensureDir } from "../../platform/fs/ensure-dir.js";

export const SERVER_NAME = "server.unsafe.aurae.io";

export class StartError extends Error {
  /** "aborted": stopped while starting; "vmm": QEMU failed; "guest": the guest never answered; "trust": wrong CA */
  constructor(readonly reason: "aborted" | "vmm" | "guest" | "trust", message: string) {
    super(message);
    this.name = "StartError";
  }
}

export interface RunOptions {
  spec: VmSpec;
  accel: Accelerator;
  /** per-VM runtime directory (QMP socket, console log) */
  dir: string;
  launcher: VmmLauncher;
  run: number;
  /** CA the guest's server certificate must chain to (the daemon's) */
  caCrt: Buffer;
  bootTimeoutMs: number;
  qemuBinary?: string;
  signal: AbortSignal;
}

/** Last bytes of a file (the guest console), for error messages. */
export function tail(path: string, bytes = 1500): string {
  try {
    const size = statSync(path).size;
    const n = Math.min(size, bytes);
    const fd = openSync(path, "r");
    const b = Buffer.alloc(n);
    readSync(fd, b, 0, n, size - n);
    closeSync(fd);
    return b.toString("utf8").replace(/\r/g, "").trim();
  } catch {
    return "";
  }
}

export class MachineRun {
  readonly startedAt = performance.now();
  qmp: QmpClient | undefined;
  port = 0;
  readonly exited: Promise<VmmExit>;

  private constructor(readonly opts: RunOptions, readonly vmm: VmmProcess) {
    this.exited = vmm.exited;
    void this.exited.then(() => this.qmp?.close());
  }

  get consoleLog(): string {
    return join(this.opts.dir, "console.log");
  }

  get address(): string {
    return this.port ? `127.0.0.1:${this.port}` : "";
  }

  get qemuStderr(): string {
    return this.vmm.stderrTail();
  }

  /** Launches QEMU and waits until the guest's auraed answers TLS; throws StartError (QEMU is then stopped). */
  static async start(o: RunOptions): Promise<MachineRun> {
    if (o.signal.aborted) throw new StartError("aborted", "stopped while starting");
    ensureDir(o.dir, 0o700);
    const qmpSocket = join(o.dir, "qmp.sock");
    const consoleLog = join(o.dir, "console.log");
    rmSync(qmpSocket, { force: true });
    writeFileSync(consoleLog, "");
    const argv = qemuArgv({
      binary: o.qemuBinary,
      accel: o.accel,
      memMiB: o.spec.memMiB,
      vcpus: o.spec.vcpus,
      kernel: o.spec.kernel,
      initrd: o.spec.initramfs,
      cmdline: guestCmdline(o.spec, acceleratorKernelArgs(o.accel)),
      drives: o.spec.drives.map((d, i) => ({ id: `drive${i}`, path: d.imagePath, readOnly: d.readOnly, serial: driveSerial(i) })),
      forwards: [{ hostAddress: "127.0.0.1", hostPort: 0, guestAddress: GUEST_IP, guestPort: GUEST_AURAED_PORT }],
      qmpSocket,
      consoleLog,
    });
    const vmm = await o.launcher.launch(o.spec.id, argv, o.run).catch((err: Error) => {
      throw new StartError("vmm", `cannot launch ${argv[0]}: ${err.message}`);
    });
    const run = new MachineRun(o, vmm);
    try {
      await run.connectQmp(qmpSocket);
      const usernet = await run.qmp!.hmp("info usernet");
      const port = parseHostForwardPort(usernet, GUEST_AURAED_PORT);
      if (!port) throw new StartError("vmm", `QEMU reports no forward to the guest's port ${GUEST_AURAED_PORT}: ${usernet.trim()}`);
      run.port = port;
      await run.waitForGuest(o.caCrt, o.bootTimeoutMs);
      return run;
    } catch (err) {
      await vmm.stop().catch(() => {});
      if (err instanceof StartError) throw err;
      throw new StartError("vmm", (err as Error).message);
    }
  }

  /**
   * Takes over a run an earlier daemon started (its QEMU re-adopted by the cells domain):
   * connects to its QMP socket again (QEMU accepts a new monitor client once the old one is
   * gone) and checks that QEMU answers. Throws when it does not; the caller then kills it.
   */
  static async adopt(o: Omit<RunOptions, "signal" | "bootTimeoutMs">, vmm: VmmProcess, port: number): Promise<MachineRun> {
    const run = new MachineRun({ ...o, signal: new AbortController().signal, bootTimeoutMs: 0 }, vmm);
    run.port = port;
    run.qmp = await QmpClient.connect(join(o.dir, "qmp.sock"));
    await run.qmp.queryStatus(5000);
    return run;
  }

  private failure(what: string): StartError {
    const console = tail(this.consoleLog);
    const qemu = this.qemuStderr;
    return new StartError("vmm", `${what}${qemu ? `; qemu: ${qemu.split("\n").slice(-3).join(" ")}` : ""}${console ? `; console: ${console.slice(-600)}` : ""}`);
  }

  /**
   * Resolves when QEMU is gone or going: its process exited, or it closed its monitor (QEMU
   * does that only while exiting, and the close can be seen before the exit is processed).
   */
  ended(): Promise<string> {
    const byExit = this.exited.then((e) => `${e.signal ?? `exit ${e.code}`}`);
    const qmp = this.qmp;
    if (!qmp) return byExit;
    const byQmp = new Promise<string>((r) => (qmp.closed ? r("qmp closed") : qmp.once("close", () => r("qmp closed"))));
    return Promise.race([byExit, byQmp]);
  }

  /** Waits for QEMU's QMP socket (an inotify event on the run directory), then connects. */
  private async connectQmp(path: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        watcher.close();
        clearTimeout(timer);
        this.opts.signal.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve();
      };
      const watcher = watch(this.opts.dir, (_e, name) => {
        if (name === "qmp.sock" && existsSync(path)) finish();
      });
      const onAbort = () => finish(new StartError("aborted", "stopped while starting"));
      this.opts.signal.addEventListener("abort", onAbort);
      const timer = setTimeout(() => finish(this.failure("QEMU did not open its QMP socket within 30 s")), 30_000);
      void this.exited.then((e) => finish(this.failure(`QEMU exited (${e.signal ?? e.code}) while starting`)));
      if (this.opts.signal.aborted) onAbort();
      if (existsSync(path)) finish();
    });
    // QEMU binds the socket (the event above) a moment before it listens: ECONNREFUSED in
    // that window is retried briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        this.qmp = await QmpClient.connect(path);
        return;
      } catch (err) {
        if (attempt >= 100 || !/ECONNREFUSED/.test((err as Error).message) || this.opts.signal.aborted) throw err;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  /**
   * Waits until the guest's auraed completes a TLS handshake through the forwarded port with
   * a certificate for server.unsafe.aurae.io signed by our CA. There is no event across the
   * VM boundary, so this retries every 100 ms; QEMU exiting or Stop ends the wait at once.
   */
  private async waitForGuest(ca: Buffer, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited: VmmExit | undefined;
    void this.exited.then((e) => { exited = e; });
    for (;;) {
      if (this.opts.signal.aborted) throw new StartError("aborted", "stopped while starting");
      if (exited) throw this.failure(`the guest stopped while booting (QEMU exited: ${exited.signal ?? exited.code})`);
      const r = await tlsProbe(this.port, ca);
      if (r === "ready") return;
      if (r instanceof Error) {
        throw new StartError("trust", `the guest's certificate is not trusted by this daemon's CA (${r.message}); rebuild the image with this daemon's CA`);
      }
      if (Date.now() >= deadline) {
        const c = tail(this.consoleLog);
        throw new StartError("guest", `the guest's auraed did not answer within ${timeoutMs} ms${c ? `; console: ${c.slice(-800)}` : ""}`);
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  /** Asks the guest to power off (ACPI power button); resolves whether QEMU exited within timeoutMs. */
  async powerdown(timeoutMs: number): Promise<boolean> {
    try {
      await this.qmp?.execute("system_powerdown", undefined, 5000);
    } catch {
      /* QMP gone: QEMU is exiting or hung; the kill below handles both */
    }
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((r) => { timer = setTimeout(() => r(false), timeoutMs); }),
    ]);
    clearTimeout(timer);
    return exited;
  }

  /** Kills QEMU (SIGTERM, grace, SIGKILL) and releases its process record. */
  async kill(): Promise<void> {
    this.qmp?.close();
    await this.vmm.stop();
  }
}

/** "ready" on a verified handshake, "retry" when nothing answers yet, an Error when the certificate is wrong. */
export function tlsProbe(port: number, ca: Buffer, timeoutMs = 3000): Promise<"ready" | "retry" | Error> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (v: "ready" | "retry" | Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const sock = tls.connect({ host: "127.0.0.1", port, ca, servername: SERVER_NAME, rejectUnauthorized: true });
    const timer = setTimeout(() => done("retry"), timeoutMs);
    sock.once("secureConnect", () => done("ready"));
    sock.once("error", (err: NodeJS.ErrnoException) => {
      const certProblem = /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS_CERT_ALTNAME/.test(err.code ?? "");
      done(certProblem ? err : "retry");
    });
    sock.once("close", () => done("retry"));
  });
}
