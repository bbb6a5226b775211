import { connect } from "node:net";
import { lstatSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { StartupError } from "./tls.js";
import { ensureDir } from "../../platform/fs/ensure-dir.js";

/** Resolves true when something accepts connections on the Unix socket at `path`. */
function answers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolveAnswer) => {
    const s = connect(path);
    const done = (v: boolean) => {
      s.destroy();
      resolveAnswer(v);
    };
    s.setTimeout(timeoutMs, () => done(true)); // accepted but silent: someone is there
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/**
 * Prepares a Unix socket path for binding: never steals a live daemon's socket, removes a stale
 * one, refuses to remove anything that is not a socket.
 */
export async function prepareUnixSocket(path: string): Promise<void> {
  ensureDir(dirname(path), 0o755);
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return; // nothing there
  }
  if (!st.isSocket()) {
    throw new StartupError(`auraed will not bind '${path}': a file that is not a socket is in the way; remove it or choose another --socket.`);
  }
  if (await answers(path)) {
    throw new StartupError(
      `auraed will not start: another daemon is answering on '${path}'. Stop it first, or start this one with another --socket.`,
    );
  }
  unlinkSync(path);
}

export function removeSocket(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}
