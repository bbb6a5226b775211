/**
 * A process tracker: the cgroup that holds everything one executable started (its leaf),
 * used to signal and kill the whole tree (setsid and double forks included) and to learn when
 * nothing of it remains.
 *
 *   v2 (also the cgroup2 mount of a hybrid host): cgroup.kill kills atomically; cgroup.events
 *      reports "populated 0" through inotify (fs.watch), and SIGCHLD (we are a subreaper)
 *      usually tells earlier, so waiting costs no polling.
 *   v1 freezer (hosts without any cgroup2 mount): freeze, signal every member, thaw; emptiness
 *      has no event in v1, so it is polled with a short backoff (1 ms doubling to 20 ms).
 */
import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { CgroupFs } from "./cgroupfs.js";

export interface ProcessTracker {
  readonly kind: "v2" | "freezer";
  /** pids currently in the leaf */
  procs(dir: string): number[];
  /** Sends `signal` to every process in the leaf, again to any that appear meanwhile; returns how many. */
  signalAll(dir: string, signal: NodeJS.Signals): number;
  /** SIGKILLs everything in the leaf, including processes forking at that moment. */
  killAll(dir: string): Promise<void>;
  /** Resolves true once the leaf is empty, false after `timeoutMs`. */
  waitEmpty(dir: string, timeoutMs: number): Promise<boolean>;
  /**
   * Calls `fn` once, when the leaf is (or becomes) empty; returns a function that cancels.
   * Cheap enough for thousands of leaves: one inotify watch each on v2 (no SIGCHLD listener),
   * a 1 s poll on the v1 freezer.
   */
  onEmpty(dir: string, fn: () => void): () => void;
}

function readProcs(cfs: CgroupFs, dir: string): number[] {
  let text: string;
  try {
    text = cfs.read(path.join(dir, "cgroup.procs"));
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return [];
    throw err;
  }
  const out: number[] = [];
  for (const l of text.split("\n")) if (l) out.push(Number(l));
  return out;
}

/** Signals a pid; false when it no longer exists. */
export function signalPid(pid: number, signal: NodeJS.Signals | number): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
}

function signalAllLoop(cfs: CgroupFs, dir: string, signal: NodeJS.Signals): number {
  const done = new Set<number>();
  // Bounded: a fork bomb cannot keep us here; killAll (atomic) follows if it is needed.
  for (let round = 0; round < 16; round++) {
    let fresh = 0;
    for (const pid of readProcs(cfs, dir)) {
      if (done.has(pid)) continue;
      done.add(pid);
      fresh++;
      signalPid(pid, signal);
    }
    if (fresh === 0) break;
  }
  return done.size;
}

/** One process-wide SIGCHLD listener for every waiter (many may wait during a Free). */
const sigchldWaiters = new Set<() => void>();
const dispatchSigchld = () => {
  for (const w of [...sigchldWaiters]) w();
};
function onSigchld(fn: () => void): void {
  if (sigchldWaiters.size === 0) process.on("SIGCHLD", dispatchSigchld);
  sigchldWaiters.add(fn);
}
function offSigchld(fn: () => void): void {
  sigchldWaiters.delete(fn);
  if (sigchldWaiters.size === 0) process.removeListener("SIGCHLD", dispatchSigchld);
}

export function v2Tracker(cfs: CgroupFs): ProcessTracker {
  const populated = (dir: string): boolean => {
    try {
      return /^populated 1$/m.test(cfs.read(path.join(dir, "cgroup.events")));
    } catch (err) {
      if ((err as { code?: string }).code === "ENOENT") return false;
      throw err;
    }
  };
  return {
    kind: "v2",
    procs: (dir) => readProcs(cfs, dir),
    signalAll: (dir, signal) => signalAllLoop(cfs, dir, signal),
    async killAll(dir) {
      try {
        cfs.write(path.join(dir, "cgroup.kill"), "1");
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === "ENOENT" && !cfs.exists(dir)) return;
        if (code !== "ENOENT") throw err;
        // Kernels before 5.14 have no cgroup.kill: freeze, kill, thaw.
        cfs.write(path.join(dir, "cgroup.freeze"), "1");
        signalAllLoop(cfs, dir, "SIGKILL");
        cfs.write(path.join(dir, "cgroup.freeze"), "0");
      }
    },
    onEmpty(dir, fn) {
      let done = false;
      let watcher: fs.FSWatcher | undefined;
      const cancel = () => {
        done = true;
        watcher?.close();
        watcher = undefined;
      };
      const check = () => {
        if (done) return;
        let empty: boolean;
        try {
          empty = !populated(dir);
        } catch {
          empty = true;
        }
        if (empty) {
          cancel();
          fn();
        }
      };
      try {
        watcher = fs.watch(path.join(dir, "cgroup.events"), check);
        watcher.on("error", () => check());
      } catch {
        // the leaf is gone already: check() reports it empty
      }
      check();
      return cancel;
    },
    waitEmpty(dir, timeoutMs) {
      return new Promise<boolean>((resolve) => {
        let settled = false;
        let watcher: fs.FSWatcher | undefined;
        let backstop: NodeJS.Timeout | undefined;
        let deadline: NodeJS.Timeout | undefined;
        const finish = (v: boolean) => {
          if (settled) return;
          settled = true;
          watcher?.close();
          offSigchld(check);
          clearInterval(backstop);
          clearTimeout(deadline);
          resolve(v);
        };
        const check = () => {
          try {
            if (!populated(dir)) finish(true);
          } catch {
            finish(true);
          }
        };
        // The kernel rate-limits cgroup.events notifications (at most one per 10 ms), so the
        // inotify event can lag. The last process of a leaf to exit is almost always our
        // child or an orphan reparented to us (we are a subreaper): its SIGCHLD is an earlier
        // event, sent after it has left the cgroup.
        onSigchld(check);
        try {
          watcher = fs.watch(path.join(dir, "cgroup.events"), check);
          watcher.on("error", () => { /* the backstop below still checks */ });
        } catch {
          // no inotify on this file: the backstop polls
        }
        check();
        if (settled) return;
        // A slow backstop in case an event is ever missed; the watcher normally answers first.
        backstop = setInterval(check, watcher ? 200 : 5);
        deadline = setTimeout(() => finish(false), timeoutMs);
      });
    },
  };
}

export function freezerTracker(cfs: CgroupFs): ProcessTracker {
  const state = (dir: string) => cfs.read(path.join(dir, "freezer.state")).trim();
  return {
    kind: "freezer",
    procs: (dir) => readProcs(cfs, dir),
    signalAll: (dir, signal) => signalAllLoop(cfs, dir, signal),
    async killAll(dir) {
      if (!cfs.exists(dir)) return;
      cfs.write(path.join(dir, "freezer.state"), "FROZEN");
      try {
        for (let wait = 1; state(dir) !== "FROZEN" && wait < 2000; wait *= 2) await sleep(Math.min(wait, 20));
        signalAllLoop(cfs, dir, "SIGKILL");
      } finally {
        cfs.write(path.join(dir, "freezer.state"), "THAWED");
      }
    },
    onEmpty(dir, fn) {
      let done = false;
      const check = () => {
        if (done || readProcs(cfs, dir).length > 0) return;
        clearInterval(timer);
        done = true;
        fn();
      };
      // v1 has no emptiness event
      const timer = setInterval(check, 1000);
      timer.unref();
      setImmediate(check);
      return () => {
        done = true;
        clearInterval(timer);
      };
    },
    async waitEmpty(dir, timeoutMs) {
      const end = Date.now() + timeoutMs;
      for (let wait = 1; ; wait = Math.min(wait * 2, 20)) {
        if (readProcs(cfs, dir).length === 0) return true;
        const left = end - Date.now();
        if (left <= 0) return false;
        await sleep(Math.min(wait, left));
      }
    },
  };
}
