/**
 * Cells on the real kernel (root, this host's cgroups), through the domain: allocation,
 * the tree, executables, Stop and Free leaving nothing behind, errors, ids, shutdown.
 * Every test's cgroups live under a parent unique to this process; `after` removes it by path
 * even when the code under test failed.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { AuraeError } from "../../src/daemon/errors.js";
import { CellDomain, EXECUTABLES_CELL } from "../../src/daemon/cells/cell-domain.js";
import type { CellSpec } from "../../src/daemon/cells/spec.js";
import { StateStore } from "../../src/daemon/cells/store.js";
import { CgroupDriver } from "../../src/platform/cgroups/driver.js";
import { detectCgroupLayout, type CgroupLayout } from "../../src/platform/cgroups/layout.js";
import { forceRemoveCgroupTree } from "../../src/platform/cgroups/cleanup.js";
import { startReaper, type Reaper } from "../../src/platform/reaper.js";
import { readProcessIds } from "../../src/platform/process/proc-status.js";

const ROOT = process.getuid?.() === 0;
const SKIP = ROOT ? false : "needs root and real cgroups";

/** Everything an executable writes to one channel, once its output has ended. */
async function outputOf(domain: CellDomain, cell: string, exe: string, ch: "stdout" | "stderr" = "stdout", timeoutMs = 5000): Promise<string> {
  const e = domain.cells.get(cell)?.executables.get(exe);
  if (!e) throw new Error(`no executable '${exe}' in cell '${cell}'`);
  const r = e.openReader(ch);
  const end = Date.now() + timeoutMs;
  let text = "";
  try {
    for (;;) {
      const b = r.take(1000);
      if (b === null) return text;
      for (const l of b) text += `${l.line}\n`;
      if (b.length === 0) {
        if (Date.now() > end) throw new Error(`output timeout; text so far: ${JSON.stringify(text)}`);
        await Promise.race([r.wait(), new Promise((res) => setTimeout(res, 50))]);
      }
    }
  } finally {
    r.close();
  }
}

const spec = (name: string, limits: CellSpec["limits"] = {}): CellSpec => ({ name, limits, isolateProcess: false, isolateNetwork: false });
const code = (kind: string, re?: RegExp) => (e: unknown) =>
  e instanceof AuraeError && e.kind === kind && (!re || re.test(e.message)) ? true : assert.fail(`expected ${kind} ${re ?? ""}, got ${String((e as Error)?.message ?? e)} (${(e as AuraeError).kind})`);
const alive = (pid: number) => {
  try {
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
};
/** true while anything, a zombie included, holds the pid: after Stop its shim must have reaped it */
const exists = (pid: number) => fs.existsSync(`/proc/${pid}`);
async function eventually(pred: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Harness {
  layout: CgroupLayout;
  parent: string;
  driver: CgroupDriver;
  domain: CellDomain;
  /** the runtime dir holding the state store */
  runtimeDir: string;
  output(cell: string, exe: string, ch?: "stdout" | "stderr"): Promise<string>;
}

function makeHarness(layout: CgroupLayout, parent: string, reaper: Reaper, stopGraceMs = 300): Harness {
  const driver = new CgroupDriver({ layout, parent });
  driver.init();
  const runtimeDir = fs.mkdtempSync(path.join(os.tmpdir(), "aurae-cells-run-"));
  const store = new StateStore(runtimeDir);
  store.open();
  const domain = new CellDomain({ driver, store, stopGraceMs, reaper });
  return { layout, parent, driver, domain, runtimeDir, output: (c, e, ch) => outputOf(domain, c, e, ch) };
}

/** Every directory of the test parent in every hierarchy (empty when all is removed). */
function dirsUnder(layout: CgroupLayout, parent: string): string[] {
  const mounts = new Set([...Object.values(layout.v1), layout.unified].filter((m): m is string => !!m));
  return [...mounts].map((m) => path.join(m, parent)).filter((d) => fs.existsSync(d));
}

describe("cells on the real kernel", { skip: SKIP }, () => {
  let layout: CgroupLayout;
  let reaper: Reaper;
  let h: Harness;
  const parent = `aurae-test-cells-${process.pid}`;

  before(() => {
    layout = detectCgroupLayout();
    reaper = startReaper();
    h = makeHarness(layout, parent, reaper);
  });

  after(async () => {
    try {
      await h?.domain.shutdown();
    } finally {
      if (h) fs.rmSync(h.runtimeDir, { recursive: true, force: true });
      reaper?.stop();
      const left = await forceRemoveCgroupTree(layout, parent);
      assert.deepEqual(left, [], "test cleanup removed every directory");
    }
  });

  test("Aurae's scenario: A, A/B, A/B/C and D list as exactly D and A -> A/B -> A/B/C", async () => {
    const r = await h.domain.allocate(spec("A", { cpu: { weight: 100 } }));
    assert.deepEqual(r, { cellName: "A", cgroupV2: layout.mode === "v2" });
    await h.domain.allocate(spec("A/B"));
    await h.domain.allocate(spec("A/B/C", { pids: { max: 10 } }));
    await h.domain.allocate(spec("D"));
    const shape = (nodes: ReturnType<CellDomain["list"]>): unknown => nodes.map((n) => [n.spec.name, shape(n.children)]);
    assert.deepEqual(shape(h.domain.list()), [["A", [["A/B", [["A/B/C", []]]]]], ["D", []]]);
    const a = h.domain.list()[0]!;
    assert.deepEqual(a.spec, spec("A", { cpu: { weight: 100 } }));
    assert.deepEqual(a.children[0]!.children[0]!.spec.limits, { pids: { max: 10 } });
    await h.domain.free("A");
    await h.domain.free("D");
    assert.deepEqual(h.domain.list(), []);
  });

  test("a nested cell needs its ancestors: NOT_FOUND naming the missing one, nothing created", async () => {
    await assert.rejects(h.domain.allocate(spec("x/y/z")), code("not_found", /allocate cell 'x\/y\/z': ancestor cell 'x' not found/));
    await h.domain.allocate(spec("x"));
    await assert.rejects(h.domain.allocate(spec("x/y/z")), code("not_found", /ancestor cell 'x\/y' not found/));
    assert.equal(h.driver.cellDirs("x/y").some((d) => fs.existsSync(d)), false);
    return h.domain.free("x");
  });

  test("a duplicate cell is ALREADY_EXISTS and unknown cells are NOT_FOUND for free", async () => {
    await h.domain.allocate(spec("dup"));
    await assert.rejects(h.domain.allocate(spec("dup")), code("already_exists", /allocate cell 'dup': already exists/));
    await h.domain.free("dup");
    await assert.rejects(h.domain.free("dup"), code("not_found", /free cell 'dup': not found/));
    await assert.rejects(h.domain.free("never"), code("not_found", /'never'/));
  });

  test("values this host cannot apply are refused before anything is created", async () => {
    if (layout.mode !== "v2") {
      await assert.rejects(h.domain.allocate(spec("m", { memory: { minBytes: 1 } })), code("failed_precondition", /memory.min .*cgroup mode: (hybrid|v1)/));
      await assert.rejects(h.domain.allocate(spec("m", { memory: { highBytes: 1 } })), code("failed_precondition", /memory.high/));
    }
    await assert.rejects(h.domain.allocate(spec("m", { cpuset: { cpus: "0-4095" } })), code("invalid_argument", /cell.cpuset.cpus '0-4095' is not within the parent's set/));
    await h.domain.allocate(spec("q", { cpu: { maxUs: 10000 } }));
    if (h.driver.controllerVersion("cpu") === "v1") {
      await assert.rejects(h.domain.allocate(spec("q/r", { cpu: { maxUs: 50000 } })), code("invalid_argument", /cell.cpu.max 50000\/100000 µs exceeds the parent's quota/));
    }
    assert.equal(h.driver.cellDirs("m").some((d) => fs.existsSync(d)), false);
    assert.equal(h.driver.cellDirs("q/r").some((d) => fs.existsSync(d)), false);
    return h.domain.free("q");
  });

  test("the longest valid names work: a 253-character cell path and a 255-character executable name", async () => {
    const labels = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)];
    for (let i = 1; i <= labels.length; i++) await h.domain.allocate(spec(labels.slice(0, i).join("/")));
    const deepest = labels.join("/");
    assert.equal(deepest.length, 253);
    const name = "e".repeat(255);
    const r = await h.domain.start({ cellName: deepest, name, command: "echo long", description: "" });
    assert.equal(await h.output(deepest, name), "long\n");
    assert.ok(r.pid > 0);
    await h.domain.free(labels[0]!);
    assert.equal(h.domain.hasCell(labels[0]!), false);
    assert.equal(h.driver.cellDirs(labels[0]!).some((d) => fs.existsSync(d)), false);
  });

  test("a Start that fails part way leaves nothing: the cell still frees", async () => {
    await h.domain.allocate(spec("part"));
    // a missing program fails at exec, after the leaf and the files were made
    await assert.rejects(h.domain.spawnInCell("part", ["/nonexistent/program"], { name: "ghost" }), code("failed_precondition", /entering the cell failed at exec: No such file or directory/));
    assert.equal(fs.existsSync(h.driver.executableDir("part", "ghost")), false, "no leaf left");
    assert.deepEqual(fs.readdirSync(path.join(h.runtimeDir, "state/executables")).filter((d) => d.includes("ghost")), []);
    await h.domain.free("part");
  });

  test("executable names are unique per cell, reusable in another cell; unknown names are NOT_FOUND", async () => {
    await h.domain.allocate(spec("e1"));
    await h.domain.allocate(spec("e2"));
    const exe = { name: "same", command: "sleep 1000", description: "" };
    await h.domain.start({ cellName: "e1", ...exe });
    await assert.rejects(h.domain.start({ cellName: "e1", ...exe }), code("already_exists", /start executable 'same' in cell 'e1'/));
    await h.domain.start({ cellName: "e2", ...exe });
    await assert.rejects(h.domain.stop("e1", "other"), code("not_found", /stop executable 'other' in cell 'e1': executable not found/));
    await assert.rejects(h.domain.stop("nope", "same"), code("not_found", /cell not found/));
    await assert.rejects(h.domain.start({ cellName: "nope", ...exe }), code("not_found", /start executable 'same' in cell 'nope': cell not found/));
    await h.domain.free("e1");
    await h.domain.free("e2");
    await assert.rejects(h.domain.start({ cellName: "e1", ...exe }), code("not_found", /cell not found/));
  });

  test("stop leaves no process, zombie or cgroup behind, setsid and background children included", async () => {
    await h.domain.allocate(spec("s"));
    await h.domain.start({ cellName: "s", name: "tree", command: "setsid sleep 1000 & sleep 1000 & sleep 1000", description: "" });
    const dir = h.driver.executableDir("s", "tree");
    await eventually(() => h.driver.tracker.procs(dir).length >= 3, "three processes in the executable's leaf");
    const pids = h.driver.tracker.procs(dir);
    const t0 = Date.now();
    await h.domain.stop("s", "tree");
    assert.ok(Date.now() - t0 < 300, "sleep exits on SIGTERM without waiting for the grace period");
    for (const p of pids) assert.equal(exists(p), false, `pid ${p} is gone and reaped (no zombie)`);
    assert.equal(fs.existsSync(dir), false);
    assert.deepEqual(h.domain.list()[0]!.executables, []);
    await h.domain.free("s");
    assert.equal(h.driver.cellDirs("s").some((d) => fs.existsSync(d)), false);
  });

  test("stop sends SIGKILL after the grace period to processes that ignore SIGTERM", async () => {
    await h.domain.allocate(spec("k"));
    await h.domain.start({ cellName: "k", name: "stubborn", command: "trap '' TERM; setsid sh -c \"trap '' TERM; sleep 1000\" & sleep 1000; sleep 1000", description: "" });
    const dir = h.driver.executableDir("k", "stubborn");
    await eventually(() => h.driver.tracker.procs(dir).length >= 3, "processes in the leaf");
    const pids = h.driver.tracker.procs(dir);
    const t0 = Date.now();
    await h.domain.stop("k", "stubborn");
    const took = Date.now() - t0;
    assert.ok(took >= 290 && took < 2000, `took ${took} ms for a 300 ms grace period`);
    for (const p of pids) assert.equal(alive(p), false, `pid ${p} is gone`);
    await h.domain.free("k");
  });

  test("free stops the executables of the cell and its children, children first, removing every directory", async () => {
    await h.domain.allocate(spec("f"));
    await h.domain.allocate(spec("f/g"));
    await h.domain.start({ cellName: "f", name: "a", command: "sleep 1000", description: "" });
    await h.domain.start({ cellName: "f/g", name: "b", command: "setsid sh -c 'sleep 1000 & sleep 1000' & sleep 1000", description: "" });
    await eventually(() => h.driver.tracker.procs(h.driver.executableDir("f/g", "b")).length >= 3, "processes in f/g");
    const pids = [...h.driver.tracker.procs(h.driver.executableDir("f", "a")), ...h.driver.tracker.procs(h.driver.executableDir("f/g", "b"))];
    await h.domain.free("f");
    for (const p of pids) assert.equal(alive(p), false, `pid ${p} is gone`);
    assert.equal([...h.driver.cellDirs("f"), ...h.driver.cellDirs("f/g")].some((d) => fs.existsSync(d)), false);
    assert.equal(h.domain.hasCell("f/g"), false);
    for (const p of pids) assert.equal(exists(p), false, `pid ${p} is gone and reaped (no zombie)`);
  });

  test("an executable that exits keeps its name and status until stop, which releases the name", async (t) => {
    await h.domain.allocate(spec("x1"));
    t.after(() => h.domain.free("x1").catch(() => undefined)); // even when an assertion fails
    const r = await h.domain.start({ cellName: "x1", name: "quick", command: "echo out; echo err >&2; exit 7", description: "d" });
    assert.equal(await h.output("x1", "quick"), "out\n");
    assert.equal(await h.output("x1", "quick", "stderr"), "err\n");
    await eventually(() => h.domain.list().find((c) => c.spec.name === "x1")!.executables[0]?.state === "exited", "exited state", 10_000);
    assert.deepEqual(h.domain.list().find((c) => c.spec.name === "x1")!.executables, [
      { name: "quick", command: "echo out; echo err >&2; exit 7", description: "d", pid: r.pid, hostPid: r.pid, state: "exited", exitCode: 7, uid: 0, gid: 0 },
    ]);
    await assert.rejects(h.domain.start({ cellName: "x1", name: "quick", command: "true", description: "" }), code("already_exists"));
    await h.domain.stop("x1", "quick");
    await h.domain.start({ cellName: "x1", name: "quick", command: "true", description: "" });
    await h.domain.free("x1");
  });

  test("executables get sh -c, cwd /, a clean environment, stdin /dev/null and are in the cell's cgroups from the start", async () => {
    process.env.AURAE_DAEMON_SECRET = "leak";
    await h.domain.allocate(spec("env"));
    await h.domain.start({ cellName: "env", name: "probe", command: "cat /proc/self/cgroup; pwd; readlink /proc/self/fd/0; env | sort", description: "" });
    const text = await h.output("env", "probe");
    const lines = text.split("\n");
    for (const l of lines.filter((l) => /^\d+:(cpu|cpuacct|cpuset|memory|pids):/.test(l))) assert.match(l, new RegExp(`:/${parent}/env/_$`));
    if (layout.unified) assert.ok(lines.includes(`0::/${parent}/env/_/probe`), text);
    assert.ok(lines.includes("/"), "cwd is /");
    assert.ok(lines.includes("/dev/null"), "stdin is /dev/null");
    const env = lines.filter((l) => /^[A-Z_]+=/.test(l));
    assert.deepEqual(env, ["HOME=/root", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PWD=/"]);
    await h.domain.free("env");
  });

  test("an executable started as uid/gid 65534 reports and has those ids and no supplementary groups", async () => {
    await h.domain.allocate(spec("ids"));
    const r = await h.domain.start({ cellName: "ids", name: "nobody", command: "sleep 1000", description: "", uid: 65534, gid: 65534 });
    assert.equal(r.uid, 65534);
    assert.equal(r.gid, 65534);
    const status = fs.readFileSync(`/proc/${r.hostPid}/status`, "utf8");
    assert.match(status, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    assert.match(status, /^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
    assert.match(status, /^Groups:\s*$/m);
    assert.deepEqual(readProcessIds(r.hostPid), { uid: 65534, gid: 65534, groups: [] });
    await h.domain.free("ids");
  });

  test("executables without a cell run in the executables cell, listed last while it holds any", async () => {
    await h.domain.allocate(spec("zz"));
    const r = await h.domain.start({ name: "loose", command: "sleep 1000", description: "" });
    const where = h.domain.describeHostPid(r.hostPid);
    assert.deepEqual(where, { cellName: EXECUTABLES_CELL, reportedPid: r.hostPid });
    assert.deepEqual(h.domain.list().map((c) => c.spec.name), ["zz", EXECUTABLES_CELL]);
    assert.equal(h.domain.findByPid(r.pid)?.executableName, "loose");
    await h.domain.stop(undefined, "loose");
    assert.deepEqual(h.domain.list().map((c) => c.spec.name), ["zz"]);
    await assert.rejects(h.domain.stop(undefined, "loose"), code("not_found", /stop executable 'loose': executable not found/));
    await h.domain.free("zz");
  });

  test("spawnInCell runs an argv (no shell) in a cell and Free stops it", async () => {
    await h.domain.allocate(spec("_vm-test"), { internal: true });
    const p = await h.domain.spawnInCell("_vm-test", ["/bin/sleep", "1000"], { name: "vmm" });
    const cmdline = () => fs.readFileSync(`/proc/${p.hostPid}/cmdline`, "utf8");
    assert.equal(cmdline(), "/bin/sleep\u00001000\u0000", "the argv runs as given, no shell");
    assert.equal(h.domain.list().some((c) => c.spec.name === "_vm-test"), false, "internal cells are hidden from List");
    assert.equal(h.domain.describeHostPid(p.hostPid)?.cellName, "_vm-test");
    await h.domain.free("_vm-test");
    assert.equal((await p.exited).signal, "SIGTERM");
  });

  test("shutdown stops every executable and frees every cell, children first", async () => {
    const other = `${parent}-shutdown`;
    const h2 = makeHarness(layout, other, reaper);
    try {
      await h2.domain.allocate(spec("a"));
      await h2.domain.allocate(spec("a/b"));
      await h2.domain.start({ cellName: "a/b", name: "x", command: "setsid sleep 1000 & sleep 1000", description: "" });
      const r = await h2.domain.start({ name: "y", command: "sleep 1000", description: "" });
      await h2.domain.shutdown();
      assert.equal(alive(r.hostPid), false);
      assert.deepEqual(dirsUnder(layout, other), []);
      await assert.rejects(h2.domain.start({ name: "z", command: "true", description: "" }), code("unavailable", /shutting down/));
    } finally {
      fs.rmSync(h2.runtimeDir, { recursive: true, force: true });
      assert.deepEqual(await forceRemoveCgroupTree(layout, other), []);
    }
  });

  test("a killed daemon's cells are removed by path by the cleanup helper", async () => {
    const other = `${parent}-killed`;
    const script = `
      import { CgroupDriver } from ${JSON.stringify(path.resolve("src/platform/cgroups/driver.ts"))};
      import { detectCgroupLayout } from ${JSON.stringify(path.resolve("src/platform/cgroups/layout.ts"))};
      import { CellDomain } from ${JSON.stringify(path.resolve("src/daemon/cells/cell-domain.ts"))};
      import { StateStore } from ${JSON.stringify(path.resolve("src/daemon/cells/store.ts"))};
      const driver = new CgroupDriver({ layout: detectCgroupLayout(), parent: ${JSON.stringify(other)} });
      driver.init();
      const store = new StateStore(${JSON.stringify(path.join(os.tmpdir(), `aurae-killed-${process.pid}`))});
      store.open();
      const d = new CellDomain({ driver, store, stopGraceMs: 100 });
      await d.allocate({ name: "a", limits: { pids: { max: 20 } }, isolateProcess: false, isolateNetwork: false });
      await d.allocate({ name: "a/b", limits: {}, isolateProcess: false, isolateNetwork: false });
      const r = await d.start({ cellName: "a/b", name: "x", command: "setsid sleep 1000 & sleep 1000", description: "" });
      console.log(r.hostPid);
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    try {
      const pid = Number(await new Promise<string>((resolve, reject) => {
        child.stdout!.once("data", (d: Buffer) => resolve(d.toString().trim()));
        child.once("exit", (c) => reject(new Error(`child exited ${c}`)));
      }));
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      assert.equal(alive(pid), true, "the workload survives its daemon");
      assert.ok(dirsUnder(layout, other).length > 0);
      assert.deepEqual(await forceRemoveCgroupTree(layout, other), []);
      await eventually(() => !alive(pid), "the workload is killed");
      assert.deepEqual(dirsUnder(layout, other), []);
    } finally {
      child.kill("SIGKILL");
      await forceRemoveCgroupTree(layout, other);
      fs.rmSync(path.join(os.tmpdir(), `aurae-killed-${process.pid}`), { recursive: true, force: true });
    }
  });
});
