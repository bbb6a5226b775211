/**
 * The daemon's spawner (`aurae-shim --spawner`, src/platform/native/spawner.c): one small
 * process that forks every shim, so that the daemon never forks itself. A fork from Node
 * copies its page tables and blocks the event loop for ~0.75 ms at 50 MB of RSS and ~13 ms at
 * 350 MB; a fork from the spawner costs tens of microseconds whatever the daemon's size, and
 * the shims are the spawner's children, not the daemon's.
 *
 * It runs in the shims' cgroup (every shim it forks starts there). If it dies, pending starts
 * fail and the next start runs a new one; if the daemon dies, it exits (its shims live on).
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import type { Writable } from "node:stream";
import { shimArgs, shimPath, ShimStartError, parseReport, type ShimProcess, type ShimSpawnOptions } from "./shim.js";

interface Waiter {
  resolve(p: ShimProcess): void;
  reject(err: Error): void;
}

export class Spawner {
  private child: ChildProcess | undefined;
  private readonly waiters = new Map<string, Waiter>();
  private nextId = 0;
  private buffer = "";
  private closed = false;

  /** `cgroupProcs`: the cgroup.procs files the spawner (and so every shim) joins. */
  constructor(private readonly cgroupProcs: string[] = []) {}

  /** Starts a program through a shim forked by the spawner; see spawnThroughShim for the contract. */
  start(o: ShimSpawnOptions): Promise<ShimProcess> {
    if (this.closed) return Promise.reject(new Error("the spawner is closed"));
    const child = this.ensure();
    const id = String(++this.nextId);
    const env = Object.entries(o.env).map(([k, v]) => `${k}=${v}`);
    const args = shimArgs({ ...o, selfJoin: [] });
    const fields = [id, String(args.length), String(env.length), ...args, ...env, o.stdoutPath, o.stderrPath];
    const body = Buffer.from(fields.map((f) => `${f}\0`).join(""));
    const frame = Buffer.allocUnsafe(4 + body.length);
    frame.writeUInt32LE(body.length, 0);
    body.copy(frame, 4);
    return new Promise<ShimProcess>((resolve, reject) => {
      this.waiters.set(id, { resolve, reject });
      (child.stdin as Writable).write(frame);
    });
  }

  /** Stops the spawner and resolves once it has exited (its shims live on). */
  async close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.stdin?.end();
    await exited;
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn(shimPath(), ["--spawner"], { stdio: ["pipe", "pipe", "inherit"], detached: true, env: {} });
    child.on("error", () => { /* reported through exit */ });
    child.stdin!.on("error", () => { /* it died: exit follows */ });
    // Joined before any request can reach it: every shim it forks starts in its cgroup.
    for (const f of this.cgroupProcs) fs.writeFileSync(f, String(child.pid));
    child.stdout!.setEncoding("latin1");
    child.stdout!.on("data", (d: string) => this.onData(d));
    child.once("exit", (code, signal) => {
      if (this.child === child) this.child = undefined;
      const err = new ShimStartError("spawner", `exited (${signal ?? code}) with starts in flight`);
      for (const w of this.waiters.values()) w.reject(err);
      this.waiters.clear();
    });
    this.child = child;
    return child;
  }

  private onData(d: string): void {
    this.buffer += d;
    for (let nl = this.buffer.indexOf("\n"); nl >= 0; nl = this.buffer.indexOf("\n")) {
      const line = this.buffer.slice(0, nl + 1);
      this.buffer = this.buffer.slice(nl + 1);
      const sp = line.indexOf(" ");
      const w = this.waiters.get(line.slice(0, sp));
      if (!w) continue;
      this.waiters.delete(line.slice(0, sp));
      try {
        w.resolve(parseReport(line.slice(sp + 1)));
      } catch (err) {
        w.reject(err as Error);
      }
    }
  }
}
