import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDevPki, type DevPki } from "../../src/pki/pki.js";

let shared: Promise<DevPki> | undefined;

/** One development PKI per test process (clients "nova" and "other"), in a temp dir. */
export function testPki(): Promise<DevPki> {
  shared ??= createDevPki({ dir: mkdtempSync(join(tmpdir(), "aurae-test-pki-")), clients: ["nova", "other"] });
  return shared;
}
