/**
 * One running (or exited) process started in a cell, with its output sinks and exit status.
 *
 * States: "running" from Start until the main process exits, then "exited" (keeping its name,
 * exit code or signal) until Stop releases the name. Stop may be called in either state; a
 * second Stop while one runs joins it.
 */
import os from "node:os";
import type { ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";
import type { ObservedExecutable, OutputSink } from "../observe/ports.js";
import type { ExecutableState, ExecutableView } from "./spec.js";

export interface ExecutableInit {
  cellName: string;
  name: string;
  command: string;
  description: string;
  child: ChildProcess;
  hostPid: number;
  /** the pid Start reports (a namespace pid once cells have pid namespaces) */
  pid: number;
  uid: number;
  gid: number;
  stdout: OutputSink;
  stderr: OutputSink;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** An OutputSink that discards (for processes whose output their owner reads itself). */
export const DISCARD: OutputSink = { write: () => {}, end: () => {} };

function pump(stream: Readable | null, sink: OutputSink): void {
  if (!stream) {
    sink.end();
    return;
  }
  stream.on("data", (chunk: Buffer) => sink.write(chunk));
  stream.once("close", () => sink.end());
  stream.on("error", () => { /* close follows */ });
}

export class Executable implements ObservedExecutable {
  readonly cellName: string;
  readonly executableName: string;
  readonly command: string;
  readonly description: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly hostPid: number;
  readonly uid: number;
  readonly gid: number;
  readonly stdout: OutputSink;
  readonly stderr: OutputSink;
  /** resolves with the main process's status once it has exited and been reaped */
  readonly exited: Promise<ExitStatus>;
  private status: ExitStatus | undefined;
  /** set while Stop runs */
  stopping: Promise<void> | undefined;

  constructor(init: ExecutableInit, opts: { pumpOutput: boolean }) {
    this.cellName = init.cellName;
    this.executableName = init.name;
    this.command = init.command;
    this.description = init.description;
    this.child = init.child;
    this.pid = init.pid;
    this.hostPid = init.hostPid;
    this.uid = init.uid;
    this.gid = init.gid;
    this.stdout = init.stdout;
    this.stderr = init.stderr;
    if (opts.pumpOutput) {
      pump(init.child.stdout, init.stdout);
      pump(init.child.stderr, init.stderr);
    }
    this.exited = new Promise((resolve) => {
      init.child.once("exit", (code, signal) => {
        this.status = { code, signal };
        resolve(this.status);
      });
    });
  }

  get name(): string {
    return this.executableName;
  }

  get state(): ExecutableState {
    return this.status ? "exited" : "running";
  }

  view(): ExecutableView {
    const v: ExecutableView = {
      name: this.executableName,
      command: this.command,
      description: this.description,
      pid: this.pid,
      hostPid: this.hostPid,
      state: this.state,
      uid: this.uid,
      gid: this.gid,
    };
    if (this.status?.code !== null && this.status?.code !== undefined) v.exitCode = this.status.code;
    if (this.status?.signal) v.exitSignal = os.constants.signals[this.status.signal];
    return v;
  }
}
