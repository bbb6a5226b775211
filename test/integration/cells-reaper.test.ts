/**
 * The reaper: orphans are reaped, child_process children keep their exit events, also when
 * the daemon is pid 1 (run in a new pid namespace).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { spawn, execFileSync } from "node:child_process";
import { listChildren, startReaper } from "../../src/platform/reaper.js";
import { isChildSubreaper } from "../../src/platform/libc.js";

/** Spawns 40 shells that each orphan two background children; reports exits and zombies. */
const SCENARIO = `
  import { startReaper, listChildren } from ${JSON.stringify(path.resolve("src/platform/reaper.ts"))};
  import { spawn, execFileSync } from "node:child_process";
  import fs from "node:fs";
  process.on("SIGTERM", () => process.exit(0));
  let reaped = 0;
  const r = startReaper({ onReap: () => reaped++ });
  const codes = [];
  await Promise.all(Array.from({ length: 40 }, (_, i) => new Promise((res) => {
    const c = spawn("/bin/sh", ["-c", "sleep 0.05 & sleep 0.1 & exit " + (i % 7)]);
    c.on("exit", (code) => { codes.push(code); res(); });
  })));
  const sync = execFileSync("/bin/echo", ["ok"]).toString().trim();
  const end = Date.now() + 3000;
  const isZombie = (p) => { try { return /^State:\\s+Z/m.test(fs.readFileSync("/proc/" + p + "/status", "utf8")); } catch { return false; } };
  while (reaped < 80 && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
  const zombies = listChildren().filter(isZombie).length;
  r.stop();
  console.log(JSON.stringify({ pid: process.pid, exits: codes.length, codeSum: codes.reduce((a, b) => a + b, 0), reaped, zombies, sync }));
`;
const EXPECTED_CODE_SUM = Array.from({ length: 40 }, (_, i) => i % 7).reduce((a, b) => a + b, 0);

function run(argv: string[]): Promise<{ pid: number; exits: number; codeSum: number; reaped: number; zombies: number; sync: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(argv[0]!, [...argv.slice(1), process.execPath, "--import", "tsx", "--input-type=module", "-e", SCENARIO], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    c.stdout!.on("data", (d) => (out += d));
    c.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").pop()!)) : reject(new Error(`scenario exited ${code}: ${out}`))));
  });
}

test("orphans are reaped while every child_process child still gets its exit event", async () => {
  const r = await run(["/usr/bin/env"]);
  assert.deepEqual({ exits: r.exits, codeSum: r.codeSum, reaped: r.reaped, zombies: r.zombies, sync: r.sync }, { exits: 40, codeSum: EXPECTED_CODE_SUM, reaped: 80, zombies: 0, sync: "ok" });
});

test("the reaper works the same when the daemon is pid 1", async (t) => {
  if (process.getuid?.() !== 0 || !fs.existsSync("/usr/bin/unshare")) return t.skip("needs root and unshare for a pid namespace");
  const r = await run(["/usr/bin/unshare", "--pid", "--fork", "--mount-proc"]);
  assert.equal(r.pid, 1);
  assert.deepEqual({ exits: r.exits, codeSum: r.codeSum, reaped: r.reaped, zombies: r.zombies }, { exits: 40, codeSum: EXPECTED_CODE_SUM, reaped: 80, zombies: 0 });
});

test("startReaper makes the process a child subreaper and the last stop undoes it", () => {
  const a = startReaper();
  const b = startReaper();
  assert.equal(isChildSubreaper(), true);
  a.stop();
  assert.equal(isChildSubreaper(), true, "still held by the second handle");
  b.stop();
  assert.equal(isChildSubreaper(), false);
  // child_process is restored: a child is not tracked any more and still exits normally.
  assert.equal(execFileSync("/bin/echo", ["x"]).toString(), "x\n");
  assert.ok(Array.isArray(listChildren()));
});
