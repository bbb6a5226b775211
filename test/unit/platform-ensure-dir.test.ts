import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const tmp = mkdtempSync(join(tmpdir(), "aurae-ensure-dir-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const MODULE = pathToFileURL(join(import.meta.dirname, "../../src/platform/fs/ensure-dir.ts")).href;

/** Runs ensureDir in a child (a regression to an endless loop would hang this process), with a 10 s limit. */
function ensureDirInChild(dir: string, mode?: number): { status: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const code = `import { ensureDir } from ${JSON.stringify(MODULE)};
try { ensureDir(${JSON.stringify(dir)}${mode !== undefined ? `, ${mode}` : ""}); } catch (e) { process.stderr.write(e.code + " " + e.message); process.exit(3); }`;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { encoding: "utf8", timeout: 10_000 });
  return { status: r.status, signal: r.signal, stderr: r.stderr };
}

test("ensureDir creates missing parents with the given mode and accepts an existing directory", () => {
  const dir = join(tmp, "a/b/c");
  assert.equal(ensureDirInChild(dir, 0o700).status, 0);
  assert.ok(statSync(dir).isDirectory());
  assert.equal(statSync(join(tmp, "a")).mode & 0o777, 0o700);
  assert.equal(ensureDirInChild(dir).status, 0);
});

test("a directory under /proc fails at once naming the parent that refuses it (Node's recursive mkdir spins for ever there)", () => {
  const r = ensureDirInChild("/proc/aurae-cannot-write/deeper");
  assert.equal(r.signal, null, "ensureDir did not return within 10 s");
  assert.equal(r.status, 3);
  assert.equal(r.stderr, "ENOENT cannot create directory '/proc/aurae-cannot-write': '/proc' does not accept new directories");
});

test("a file or a dangling symlink in the path is reported as not a directory", () => {
  writeFileSync(join(tmp, "file"), "");
  symlinkSync(join(tmp, "nowhere"), join(tmp, "dangling"));
  const f = ensureDirInChild(join(tmp, "file/x"));
  assert.equal(f.status, 3);
  assert.equal(f.stderr, `EEXIST cannot create directory '${join(tmp, "file")}': it exists and is not a directory`);
  const d = ensureDirInChild(join(tmp, "dangling/x"));
  assert.equal(d.signal, null, "ensureDir did not return within 10 s");
  assert.equal(d.stderr, `EEXIST cannot create directory '${join(tmp, "dangling")}': it exists and is not a directory`);
});
