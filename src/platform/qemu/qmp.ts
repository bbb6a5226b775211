/**
 * A QMP (QEMU Machine Protocol) client over a Unix socket: JSON lines, a greeting, capability
 * negotiation, commands matched to replies by id, and asynchronous events.
 */
import { EventEmitter } from "node:events";
import net from "node:net";

export class QmpError extends Error {
  /** QMP's error class (e.g. "GenericError", "CommandNotFound"), or "Disconnected"/"Timeout" */
  readonly errorClass: string;
  constructor(errorClass: string, message: string) {
    super(message);
    this.name = "QmpError";
    this.errorClass = errorClass;
  }
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export interface QmpStatus {
  /** QEMU's run state: "running", "paused", "shutdown", "guest-panicked", "prelaunch", ... */
  status: string;
  running: boolean;
}

/** Emits "event" (QmpEvent) and "close" (once, when the connection ends for any reason). */
export class QmpClient extends EventEmitter {
  private buf = "";
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closedFlag = false;
  /** QEMU's version, from the greeting */
  version = "";

  private constructor(private readonly sock: net.Socket) {
    super();
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Connects, reads the greeting and leaves capabilities negotiation mode. */
  static connect(path: string, timeoutMs = 10_000): Promise<QmpClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(path);
      const client = new QmpClient(sock);
      const timer = setTimeout(() => fail(new QmpError("Timeout", `qmp ${path}: no greeting within ${timeoutMs} ms`)), timeoutMs);
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        reject(err);
      };
      sock.setEncoding("utf8");
      sock.once("error", (err) => fail(new QmpError("Disconnected", `qmp ${path}: ${err.message}`)));
      let greeted = false;
      client.onLine = (msg) => {
        if (greeted) return client.dispatch(msg);
        if (!("QMP" in msg)) return;
        greeted = true;
        const v = (msg.QMP as { version?: { qemu?: { major: number; minor: number; micro: number } } }).version?.qemu;
        if (v) client.version = `${v.major}.${v.minor}.${v.micro}`;
        client.attach();
        client.execute("qmp_capabilities").then(
          () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve(client);
          },
          (err: Error) => fail(err),
        );
      };
      sock.on("data", (d: string) => client.onData(d));
      sock.once("close", () => {
        fail(new QmpError("Disconnected", `qmp ${path}: closed before the greeting`));
        client.onClose();
      });
    });
  }

  private onLine: (msg: Record<string, unknown>) => void = () => {};

  private attach(): void {
    this.sock.removeAllListeners("error");
    this.sock.on("error", () => { /* "close" follows */ });
  }

  private onData(d: string): void {
    this.buf += d;
    let i;
    while ((i = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, i).trim();
      this.buf = this.buf.slice(i + 1);
      if (!line) continue;
      try {
        this.onLine(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not JSON: ignore */
      }
    }
  }

  private dispatch(msg: Record<string, unknown>): void {
    if (typeof msg.event === "string") {
      this.emit("event", msg as unknown as QmpEvent);
      return;
    }
    const id = typeof msg.id === "string" ? msg.id : undefined;
    const p = id !== undefined ? this.pending.get(id) : undefined;
    if (!p || id === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ("error" in msg) {
      const e = msg.error as { class?: string; desc?: string };
      p.reject(new QmpError(e.class ?? "GenericError", e.desc ?? "unknown error"));
    } else {
      p.resolve(msg.return);
    }
  }

  private onClose(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new QmpError("Disconnected", "qmp connection closed"));
    }
    this.pending.clear();
    this.emit("close");
  }

  /** Runs a command; rejects with QmpError on an error reply, a timeout or a closed connection. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    if (this.closedFlag) return Promise.reject(new QmpError("Disconnected", `qmp ${command}: connection closed`));
    const id = String(this.nextId++);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError("Timeout", `qmp ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + "\n");
    });
  }

  async queryStatus(timeoutMs?: number): Promise<QmpStatus> {
    const r = await this.execute<{ status: string; running: boolean }>("query-status", undefined, timeoutMs);
    return { status: r.status, running: r.running };
  }

  /** A human monitor command's text output (for facts QMP has no command for). */
  hmp(commandLine: string, timeoutMs?: number): Promise<string> {
    return this.execute<string>("human-monitor-command", { "command-line": commandLine }, timeoutMs);
  }

  close(): void {
    this.sock.destroy();
  }
}

/**
 * The host port of a user-network TCP forward, from `info usernet` (QEMU reports the port it
 * bound, which is how a forward to host port 0 learns its port).
 */
export function parseHostForwardPort(usernet: string, guestPort: number): number | undefined {
  for (const line of usernet.split(/\r?\n/)) {
    const m = /TCP\[HOST_FORWARD\]\s+\d+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)/.exec(line);
    if (m && Number(m[4]) === guestPort) return Number(m[2]);
  }
  return undefined;
}
