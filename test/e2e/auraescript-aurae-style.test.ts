import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { runNode, type Run } from "../helpers/run.js";

const AURAESCRIPT = join(REPO, "bin/auraescript.js");
const FIXTURES = join(REPO, "test/fixtures/aurae-style/examples");

let d: TestDaemon;
let home: string;
let outside: string;

/** Runs auraescript with HOME pointing at a home whose ~/.aurae/config reaches the test daemon. */
function auraescript(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return runNode(AURAESCRIPT, args, { env: { HOME: home, ...env } });
}

before(async () => {
  d = await startDaemon();
  home = mkdtempSync(join(tmpdir(), "aurae-as-home-"));
  mkdirSync(join(home, ".aurae"));
  copyFileSync(d.configPath, join(home, ".aurae/config"));
  // a copy of the fixtures far from the repository (no package.json, so no "type": "module"),
  // beside an auraescript/gen directory that exists but is empty
  outside = mkdtempSync(join(tmpdir(), "aurae-as-outside-"));
  cpSync(FIXTURES, join(outside, "examples"), { recursive: true });
  mkdirSync(join(outside, "auraescript/gen"), { recursive: true });
});
after(async () => {
  await d?.stop();
  rmSync(home, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

test("an Aurae-style cells script runs unmodified: allocate, start, list, stop, free", async () => {
  const r = await auraescript([join(FIXTURES, "cells.ts")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Allocated: \{\n  "cellName": "ae-sleeper-cell",\n  "cgroupV2": (true|false)\n\}\n/);
  assert.match(r.stdout, /^Started: true$/m);
  assert.match(r.stdout, /^Listed: ae-sleeper-cell$/m);
  assert.match(r.stdout, /^Stopped: \{\}\nFreed: \{\}\n$/m);
});

test("streaming methods work: output of an executable is read back line by line", async () => {
  const r = await auraescript([join(FIXTURES, "cells_output.ts"), d.configPath]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "LOG_CHANNEL_TYPE_STDOUT: hello world\nLOG_CHANNEL_TYPE_STDERR: hello world\n");
});

test("discovery and grpc_health modules answer, print shows objects as JSON", async () => {
  const r = await auraescript([join(FIXTURES, "discovery_health.ts")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Discovered: \{\n  "healthy": true,\n  "version": "\d+\.\d+\.\d+[^"]*"\n\}\nHealth: \{"status":1\}\n$/);
});

test("createClient takes Aurae's {kind: 'opts', ...} and the same without a kind; imports without .ts resolve", async () => {
  const r = await auraescript([join(FIXTURES, "create_client_opts.ts"), d.configPath], { HOME: "/nonexistent" });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "kind opts: healthy true\ninferred: healthy true\n");
});

test("service clients built without a client use the config search, helpers.print prints", async () => {
  const r = await auraescript([join(FIXTURES, "default_client.ts")]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '{\n  "status": 1\n}\n');
});

test("a request the daemon refuses exits non-zero with the status and message", async () => {
  const r = await auraescript([join(FIXTURES, "validation_error.ts")]);
  assert.equal(r.code, 6);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /^error: INVALID_ARGUMENT: .*ae-no_underscore.*'_'/m);
});

test("scripts far from the repository, beside an empty gen directory, run the same", async () => {
  for (const f of ["cells.ts", "discovery_health.ts", "nested/deeper/discover.ts"]) {
    const r = await auraescript([join(outside, "examples", f)]);
    assert.equal(r.code, 0, `${f}: ${r.stderr}`);
  }
  const nested = await auraescript([join(outside, "examples/nested/deeper/discover.ts")]);
  assert.equal(nested.stdout, "nested: healthy=true\n");
});

test("a script's own error exits 1 with its message; its arguments are in process.argv", async () => {
  const f = join(outside, "throws.ts");
  writeFileSync(f, 'console.log(process.argv.slice(2).join(" "));\nawait Promise.resolve();\nthrow new Error("the script gave up");\n');
  const r = await auraescript([f, "a", "b c"]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "a b c\n");
  assert.equal(r.stderr, "error: UNKNOWN: the script gave up\n");
});

test("an unhandled rejection also fails the run", async () => {
  const f = join(outside, "rejects.ts");
  writeFileSync(f, 'import * as cells from "../auraescript/gen/cells.ts";\nimport * as aurae from "../auraescript/gen/aurae.ts";\nvoid new cells.CellServiceClient(aurae.createClient()).free({ cellName: "never-allocated" });\n');
  const r = await auraescript([f]);
  assert.equal(r.code, 4);
  assert.match(r.stderr, /^error: NOT_FOUND: free cell 'never-allocated'/m);
});

test("importing a gen module auraescript does not provide names what it does provide", async () => {
  const f = join(outside, "examples/old.ts");
  writeFileSync(f, 'import * as runtime from "../auraescript/gen/runtime.ts";\nconsole.log(runtime);\n');
  const r = await auraescript([f]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /auraescript provides gen\/aurae, gen\/cells, gen\/discovery, gen\/observe, gen\/vms, gen\/grpc_health/);
});

test("without a config anywhere the error says where it looked", async () => {
  const r = await auraescript([join(FIXTURES, "discovery_health.ts")], { HOME: join(outside, "no-home") });
  assert.equal(r.code, 8);
  assert.match(r.stderr, /^error: CONFIG: no client config found \(searched .*no-home\/\.aurae\/config, \/etc\/aurae\/config, \/var\/lib\/aurae\/config\)/);
});

test("a missing script file is a usage error", async () => {
  const r = await auraescript([join(outside, "nope.ts")]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no such file/);
});
