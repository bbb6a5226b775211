/**
 * Orphan reaping for a daemon that is a child subreaper (or pid 1).
 *
 * Orphaned descendants are reparented to us and become zombies when they exit, because libuv
 * only waits for the children it started. `waitpid(-1)` would steal those children (their
 * `exit` event would never fire), so on every SIGCHLD we ask `waitid(WNOWAIT)` which child has
 * exited, without reaping it, and `waitpid(pid, WNOHANG)` it only when `child_process` did not
 * start it (see sweep; `listChildren` is the fallback).
 *
 * Every child started through `child_process` (spawn, exec, execFile, fork) is recognised
 * automatically: `ChildProcess.prototype.spawn` is wrapped while a reaper runs, so services
 * need not register anything. `own()`/`disown()` exist for pids started by other means that
 * some other code will wait for.
 *
 * The reaper is one per process: `startReaper()` may be called by several owners; each gets a
 * handle, and the last `stop()` removes the handler and restores `child_process`.
 */
import fs from "node:fs";
import { ChildProcess } from "node:child_process";
import { peekExitedChild, setChildSubreaper, waitpidNoHang, type WaitResult } from "./libc.js";

export interface ReaperOptions {
  /** Called once per orphan reaped (not for child_process children). */
  onReap?: (result: WaitResult) => void;
}

export interface Reaper {
  /** Marks a pid as waited for by someone else: the reaper never waits for it. */
  own(pid: number): void;
  /** Undoes `own()`; call it once that someone has waited for the pid. */
  disown(pid: number): void;
  /** Reaps every exited orphan now; returns how many were reaped. */
  sweep(): number;
  /** Releases this handle; the last release stops reaping. */
  stop(): void;
}

interface State {
  owned: Set<number>;
  /** a sweep is scheduled for the next turn */
  retryPending: boolean;
  retries: number;
  listeners: Set<(r: WaitResult) => void>;
  handles: number;
  onSignal: () => void;
  originalSpawn: (this: ChildProcess, ...args: unknown[]) => unknown;
}

let state: State | undefined;

/** The pids of our children (all threads), read from procfs. */
export function listChildren(pid = process.pid): number[] {
  const out: number[] = [];
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, "latin1");
    } catch {
      continue; // the thread exited meanwhile
    }
    for (const p of text.split(" ")) {
      const n = Number(p);
      if (n > 0) out.push(n);
    }
  }
  return out;
}

/** The old way, O(children): every child not started by child_process, waited for by pid. */
function sweepByListing(s: State): number {
  let reaped = 0;
  for (const pid of listChildren()) {
    if (s.owned.has(pid)) continue;
    const r = waitpidNoHang(pid);
    if (r) {
      reaped++;
      notify(s, r);
    }
  }
  return reaped;
}

function notify(s: State, r: WaitResult): void {
  for (const l of s.listeners) {
    try { l(r); } catch { /* a listener never stops reaping */ }
  }
}

/**
 * Reaps every exited orphan, O(exited) however many children the daemon has (thousands of
 * shims): `waitid(WNOWAIT)` names an exited child without reaping it; ours are reaped by pid.
 * When the one named is child_process's own (libuv reaps it in its own SIGCHLD handling),
 * others may wait behind it: the sweep is retried on the next turn, after libuv has reaped it.
 */
function sweep(s: State): number {
  let reaped = 0;
  for (;;) {
    const pid = peekExitedChild();
    if (pid === undefined) {
      s.retries = 0;
      return reaped;
    }
    if (s.owned.has(pid)) {
      if (++s.retries > 64) {
        // libuv has not reaped it for many turns: do not wait behind it
        s.retries = 0;
        return reaped + sweepByListing(s);
      }
      if (!s.retryPending) {
        s.retryPending = true;
        setImmediate(() => {
          s.retryPending = false;
          if (state === s) sweep(s);
        });
      }
      return reaped;
    }
    const r = waitpidNoHang(pid);
    if (!r) return reaped + sweepByListing(s); // named but not reapable: should not happen
    reaped++;
    notify(s, r);
  }
}

export function startReaper(opts: ReaperOptions = {}): Reaper {
  if (!state) {
    setChildSubreaper(true);
    const owned = new Set<number>();
    const originalSpawn = (ChildProcess.prototype as unknown as { spawn: State["originalSpawn"] }).spawn;
    const s: State = {
      owned,
      retryPending: false,
      retries: 0,
      listeners: new Set(),
      handles: 0,
      onSignal: () => { sweep(s); },
      originalSpawn,
    };
    (ChildProcess.prototype as unknown as { spawn: State["originalSpawn"] }).spawn = function (this: ChildProcess, ...args: unknown[]) {
      const result = originalSpawn.apply(this, args);
      const pid = this.pid;
      if (pid !== undefined) {
        owned.add(pid);
        this.once("exit", () => owned.delete(pid));
      }
      return result;
    };
    process.on("SIGCHLD", s.onSignal);
    state = s;
    // Orphans that exited before we started.
    sweep(s);
  }
  const s = state;
  s.handles++;
  const listener = opts.onReap;
  if (listener) s.listeners.add(listener);
  let stopped = false;
  return {
    own: (pid) => { s.owned.add(pid); },
    disown: (pid) => { s.owned.delete(pid); },
    sweep: () => sweep(s),
    stop: () => {
      if (stopped) return;
      stopped = true;
      if (listener) s.listeners.delete(listener);
      if (--s.handles > 0) return;
      sweep(s);
      process.removeListener("SIGCHLD", s.onSignal);
      (ChildProcess.prototype as unknown as { spawn: State["originalSpawn"] }).spawn = s.originalSpawn;
      state = undefined;
      try { setChildSubreaper(false); } catch { /* best effort */ }
    },
  };
}
