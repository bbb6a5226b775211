// Shared by the examples: a client from `--config PATH` (or the usual config search), unique
// names, and the one way an example skips: from its `catch`, so that its `finally` still frees
// what it made.
import { AuraeClientError, createClient, type AuraeClient } from "aurae-ts";

export function connect(): AuraeClient {
  const i = process.argv.indexOf("--config");
  return i > 0 ? createClient({ kind: "path", path: process.argv[i + 1]! }) : createClient();
}

/** Unique names so that examples can run side by side. */
export function unique(base: string): string {
  return `${base}-${process.pid}`;
}

/** Thrown by an example for a reason of its own to skip (a missing kernel image...). */
export class Skip extends Error {}

/**
 * For the `catch` of an example's main `try`: when the daemon lacks a facility (UNIMPLEMENTED,
 * or UNAVAILABLE such as eBPF or QEMU missing) or the example threw a Skip, prints
 * `skip: <what>: <reason>` and returns, so the `finally` frees what was made and the script
 * exits 0. Any other error is rethrown.
 */
export function skipWhenMissing(err: unknown, what: string): void {
  if (err instanceof Skip) {
    console.log(`skip: ${what}: ${err.message}`);
    return;
  }
  if (err instanceof AuraeClientError && (err.codeName === "UNIMPLEMENTED" || err.codeName === "UNAVAILABLE")) {
    console.log(`skip: ${what}: ${err.codeName}: ${err.details}`);
    return;
  }
  throw err;
}
