import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDevPki, type DevPki } from "../../src/pki/pki.js";

let shared: Promise<DevPki> | undefined;

/** One development PKI per test process (clients "nova" and "other"), in a temp dir removed when the process exits. */
export function testPki(): Promise<DevPki> {
  if (!shared) {
    const dir = mkdtempSync(join(tmpdir(), "aurae-test-pki-"));
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    shared = createDevPki({ dir, clients: ["nova", "other"] });
  }
  return shared;
}
