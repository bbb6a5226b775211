import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { shimPath } from "../../src/platform/process/shim.js";

// `aurae-shim --holder`, the first program of an isolated cell's namespace holder
// (src/platform/native/holder-init.c), run in new namespaces made by unshare as the holder
// does: it names the host, brings lo up, says "ready" and execs its program. The namespaces
// die with the command (nothing to clean up).

const SKIP = process.getuid?.() === 0 ? false : "needs root (new UTS and network namespaces)";

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync("unshare", ["--uts", "--net", "--", shimPath(), "--holder", ...args], { encoding: "utf8", timeout: 10_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("aurae-shim --holder", { skip: SKIP }, () => {
  test("names the host, brings lo up, says ready, then execs its program", () => {
    const r = run(["--hostname", "cell-leaf", "--lo-up", "--", "sh", "-c", "hostname; ip -o link show lo"]);
    assert.equal(r.code, 0, r.stderr);
    const [ready, host, lo] = r.stdout.split("\n");
    assert.equal(ready, "ready");
    assert.equal(host, "cell-leaf");
    assert.match(lo ?? "", /^1: lo: <LOOPBACK,UP,LOWER_UP>/);
  });

  test("without --lo-up the new network namespace's lo stays down; without --hostname the name is the parent's", () => {
    const parent = spawnSync("hostname", { encoding: "utf8" }).stdout.trim();
    const r = run(["--", "sh", "-c", "hostname; ip -o link show lo"]);
    assert.equal(r.code, 0, r.stderr);
    const [, host, lo] = r.stdout.split("\n");
    assert.equal(host, parent);
    assert.doesNotMatch(lo ?? "", /[<,]UP[,>]/);
  });

  test("bad arguments and a missing program fail with a message naming them, never 'ready' before a failed step", () => {
    const unknown = run(["--bogus", "--", "true"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown argument '--bogus'/);
    assert.equal(unknown.stdout, "");
    const none = run(["--hostname", "x"]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no program after --/);
    const tooLong = run(["--hostname", "h".repeat(100), "--", "true"]);
    assert.equal(tooLong.code, 1);
    assert.match(tooLong.stderr, /sethostname/);
    assert.equal(tooLong.stdout, "");
    const missing = run(["--", "/nonexistent/program"]);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /exec \/nonexistent\/program/);
  });
});
