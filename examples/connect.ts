// Shared by the examples: a client from `--config PATH` (or the usual config search), and a
// helper that turns "this daemon cannot do that" into a printed skip.
import { AuraeClientError, createClient, type AuraeClient } from "aurae-ts";

export function connect(): AuraeClient {
  const i = process.argv.indexOf("--config");
  return i > 0 ? createClient({ kind: "path", path: process.argv[i + 1]! }) : createClient();
}

/** Unique names so that examples can run side by side. */
export function unique(base: string): string {
  return `${base}-${process.pid}`;
}

/** Prints `skip: <reason>` and exits 0 when err says the daemon lacks a facility; rethrows otherwise. */
export function skipIfMissing(err: unknown, what: string): void {
  if (err instanceof AuraeClientError && ["UNIMPLEMENTED", "UNAVAILABLE"].includes(err.codeName)) {
    console.log(`skip: ${what}: ${err.codeName}: ${err.details}`);
    process.exit(0);
  }
  throw err;
}
