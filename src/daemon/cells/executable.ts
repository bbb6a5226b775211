/**
 * One process started in a cell through aurae-shim, running or ended, with its output.
 *
 * States: "running" from Start until the program exits, then "exited" (keeping its name and
 * exit status) until Stop releases it. The exit status comes from the shim's exit file; it is
 * unknown only when the shim itself was killed before the program ended (then the executable
 * is "exited" with neither an exit code nor a signal).
 *
 * Its output channels end once nothing of it can write any more: when its tracker leaf is empty
 * (everything the program started stays in the leaf, orphans included, whether its shim or a
 * cell's init reaps them). The same holds for an executable adopted from an earlier daemon: the
 * shim is never our child_process child (see aurae-shim.c), so nothing here depends on it.
 *
 * One watch on the executable's directory tells about new output (stdout, stderr) and the
 * exit file.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ChannelFile, type ChannelFileOptions, type OutputReader } from "../../platform/output/channel-file.js";
import { isAlive, type ProcessIdentity } from "../../platform/process/identity.js";
import { readExitFile } from "../../platform/process/shim.js";
import type { ProcessTracker } from "../../platform/cgroups/tracker.js";
import type { ObservedExecutable } from "../observe/ports.js";
import type { ExecutableState, ExecutableView } from "./spec.js";

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** true when the status could not be learned (the shim died first) */
  unknown?: boolean;
}

export interface ExecutableInit {
  cellName: string;
  name: string;
  command: string;
  description: string;
  uid: number;
  gid: number;
  /** the pid Start reports (in the cell's pid namespace) */
  pid: number;
  /** the program on the host */
  process: ProcessIdentity;
  shim: ProcessIdentity;
  /** holds stdout, stderr and exit */
  dir: string;
  /** the executable's tracker leaf, and the tracker to watch it with (adopted executables) */
  leafDir: string;
  tracker: ProcessTracker;
  /** hidden from List (a cell's namespace holder) */
  internal: boolean;
  /** ms since the epoch */
  startedAt: number;
  output?: ChannelFileOptions;
}

/** How long an adopted executable whose leaf emptied waits for its shim's exit file. */
const EXIT_FILE_GRACE_MS = 2000;

const signalName = (n: number): NodeJS.Signals | null =>
  (Object.entries(os.constants.signals).find(([, v]) => v === n)?.[0] as NodeJS.Signals | undefined) ?? null;

export class Executable implements ObservedExecutable {
  readonly cellName: string;
  readonly executableName: string;
  readonly command: string;
  readonly description: string;
  readonly pid: number;
  readonly hostPid: number;
  readonly uid: number;
  readonly gid: number;
  readonly dir: string;
  readonly identity: ProcessIdentity;
  readonly shim: ProcessIdentity;
  readonly internal: boolean;
  readonly startedAt: number;
  readonly stdout: ChannelFile;
  readonly stderr: ChannelFile;
  /** resolves once the program has exited (with its status, or unknown) */
  readonly exited: Promise<ExitStatus>;
  /** resolves once nothing of the executable runs any more and its output is complete */
  readonly gone: Promise<void>;
  /** set while Stop runs */
  stopping: Promise<void> | undefined;

  private status: ExitStatus | undefined;
  private resolveExited!: (s: ExitStatus) => void;
  private resolveGone!: () => void;
  private isGone = false;
  private leafEmpty = false;
  private watcher: fs.FSWatcher | undefined;
  private unwatchLeaf: (() => void) | undefined;

  constructor(init: ExecutableInit) {
    this.cellName = init.cellName;
    this.executableName = init.name;
    this.command = init.command;
    this.description = init.description;
    this.pid = init.pid;
    this.hostPid = init.process.pid;
    this.uid = init.uid;
    this.gid = init.gid;
    this.dir = init.dir;
    this.identity = init.process;
    this.shim = init.shim;
    this.internal = init.internal;
    this.startedAt = init.startedAt;
    this.exited = new Promise((r) => (this.resolveExited = r));
    this.gone = new Promise((r) => (this.resolveGone = r));
    this.stdout = new ChannelFile(path.join(init.dir, "stdout"), init.output);
    this.stderr = new ChannelFile(path.join(init.dir, "stderr"), init.output);
    try {
      this.watcher = fs.watch(init.dir, (_event, file) => {
        if (file === "stdout") this.stdout.refresh();
        else if (file === "stderr") this.stderr.refresh();
        else if (file === "exit") this.checkExit();
      });
      this.watcher.on("error", () => { /* the directory went away: the end is learned elsewhere */ });
    } catch {
      // no inotify: readers still read to the end of the file on every take
    }
    // what happened before the watch existed
    this.stdout.refresh();
    this.stderr.refresh();
    this.checkExit();

    // Its program ended and no shim is left to say how (killed, or while no daemon ran): ended,
    // status unknown (what else still runs in its leaf is Stop's to kill).
    if (!this.status && !isAlive(this.shim) && !isAlive(this.identity)) this.endedUnlessRecorded();
    this.unwatchLeaf = init.tracker.onEmpty(init.leafDir, () => this.leafEmptied());
  }

  get name(): string {
    return this.executableName;
  }

  get state(): ExecutableState {
    return this.status ? "exited" : "running";
  }

  get exitStatus(): ExitStatus | undefined {
    return this.status;
  }

  /** true while the recorded program still runs (same pid and start time) */
  get programAlive(): boolean {
    return !this.status && isAlive(this.identity);
  }

  openReader(channel: "stdout" | "stderr"): OutputReader {
    return (channel === "stdout" ? this.stdout : this.stderr).openReader();
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

  /** Stops watching and lets go of the output (readers still draining keep their file open). */
  release(): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.unwatchLeaf?.();
    this.unwatchLeaf = undefined;
    this.stdout.release();
    this.stderr.release();
  }

  private setStatus(s: ExitStatus): void {
    if (this.status) return;
    this.status = s;
    this.resolveExited(s);
  }

  /**
   * The shim is gone: the exit file, if it wrote one, is complete now (it writes the file, then
   * exits), so one more look tells a recorded status from an unknown one. (A look taken before
   * the shim's end can miss a file written just after it: that race reported `exit 7` as
   * unknown.)
   */
  private endedUnlessRecorded(): void {
    this.checkExit();
    this.setStatus({ code: null, signal: null, unknown: true });
  }

  private checkExit(): void {
    if (this.status) return;
    const rec = readExitFile(path.join(this.dir, "exit"));
    if (!rec) return;
    this.setStatus({ code: rec.code, signal: rec.signal === null ? null : signalName(rec.signal) });
    if (this.leafEmpty) this.markGone();
  }

  private markGone(): void {
    if (this.isGone) return;
    this.isGone = true;
    this.stdout.end();
    this.stderr.end();
    this.unwatchLeaf?.();
    this.unwatchLeaf = undefined;
    this.resolveGone();
  }



  /** The leaf is empty, so nothing writes any more; the shim writes the exit file right after (if it lives). */
  private leafEmptied(): void {
    this.leafEmpty = true;
    this.checkExit();
    if (this.status || !isAlive(this.shim)) {
      this.endedUnlessRecorded();
      this.markGone();
      return;
    }
    // the exit file's watch event ends it (checkExit); this only bounds the wait
    setTimeout(() => {
      this.endedUnlessRecorded();
      this.markGone();
    }, EXIT_FILE_GRACE_MS).unref();
  }
}
