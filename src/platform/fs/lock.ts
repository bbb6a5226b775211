/**
 * Exclusive ownership of a file or directory for the life of this process: `flock(LOCK_EX |
 * LOCK_NB)` on an fd kept open (close-on-exec, so children never hold it). The kernel drops
 * the lock when the process dies, `kill -9` included, so a stale lock never blocks a restart.
 */
import fs from "node:fs";
import { flockExclusive } from "../libc.js";

export interface Lock {
  release(): void;
}

/** Takes the lock on `path` (it must exist), or returns undefined when another process holds it. */
export function tryLock(path: string): Lock | undefined {
  const fd = fs.openSync(path, fs.constants.O_RDONLY);
  if (!flockExclusive(fd)) {
    fs.closeSync(fd);
    return undefined;
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      fs.closeSync(fd);
    },
  };
}
