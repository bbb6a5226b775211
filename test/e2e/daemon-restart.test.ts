/**
 * Restarts without losing workloads (root, real daemon, real kernel): `kill -9` of auraed and a
 * new auraed on the same runtime dir and cgroup parent re-adopt cells and executables; output
 * written meanwhile is not lost; what ended meanwhile is reported as ended; a corrupt record or
 * a reused pid is never acted on; leftovers are cleaned up; --keep-workloads leaves everything
 * running on SIGTERM.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { CellServiceClient, LogChannelType, ObserveServiceClient, createClient, type AuraeClient, type CellGraphNode } from "../../src/client/index.js";
import { detectCgroupLayout } from "../../src/platform/cgroups/layout.js";
import { forceRemoveCgroupTree } from "../../src/platform/cgroups/cleanup.js";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";

const SKIP = process.getuid?.() !== 0 ? "needs root (cgroups, namespaces)" : false;
const UNIFIED = "/sys/fs/cgroup/unified";

const alive = (pid: number) => {
  try {
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Conn {
  client: AuraeClient;
  cells: CellServiceClient;
  observe: ObserveServiceClient;
}
const connect = (d: TestDaemon): Conn => {
  const client = createClient({ kind: "path", path: d.configPath });
  return { client, cells: new CellServiceClient(client), observe: new ObserveServiceClient(client) };
};

/** name -> executables' [name, state, exitCode] of every cell, depth first. */
function flatten(nodes: CellGraphNode[], out: Record<string, unknown[]> = {}): Record<string, unknown[]> {
  for (const n of nodes) {
    out[n.cell!.name] = n.executables.map((e) => [e.name, e.state, e.exitCode ?? null]);
    flatten(n.children, out);
  }
  return out;
}

/** The first `n` stdout lines of an executable (history first). */
async function firstLines(c: Conn, cell: string, pid: number, n: number): Promise<string[]> {
  const lines: string[] = [];
  const ac = new AbortController();
  try {
    for await (const m of c.observe.getSubProcessStream({ processId: pid, cellName: cell, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT }, { signal: ac.signal })) {
      lines.push(m.item!.line);
      if (lines.length >= n) break;
    }
  } finally {
    ac.abort();
  }
  return lines;
}

const cgroupDirs = (parent: string) => ["unified", "memory", "pids", "cpu", "cpuacct", "cpuset", "freezer"].map((h) => path.join("/sys/fs/cgroup", h, parent)).filter((p) => fs.existsSync(p));

describe("restart without losing workloads", { skip: SKIP, timeout: 180_000 }, () => {
  const parents = new Set<string>();
  const daemons: TestDaemon[] = [];
  const start = async (opts: Parameters<typeof startDaemon>[0] = {}) => {
    const d = await startDaemon({ stopGraceMs: 500, ...opts });
    daemons.push(d);
    parents.add(d.cgroupParent);
    return d;
  };

  after(async () => {
    for (const d of daemons) await d.kill9();
    const layout = detectCgroupLayout();
    for (const p of parents) assert.deepEqual(await forceRemoveCgroupTree(layout, p), [], `test cleanup of ${p}`);
    for (const d of daemons) fs.rmSync(d.dir, { recursive: true, force: true });
  });

  test("after kill -9 and a restart, everything that runs is re-adopted and keeps working", async () => {
    const d1 = await start();
    let c = connect(d1);
    await c.cells.allocate({ cell: { name: "svc", cpu: { max: 50_000 } } });
    await c.cells.allocate({ cell: { name: "svc/api", memory: { max: 256 << 20 } } });
    await c.cells.allocate({ cell: { name: "iso", isolateProcess: true } });
    const ticker = await c.cells.start({ cellName: "svc/api", executable: { name: "ticker", command: "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.02; done" } });
    const inner = await c.cells.start({ cellName: "iso", executable: { name: "inner", command: "echo inside; sleep 1000" } });
    await c.cells.start({ cellName: "svc", executable: { name: "brief", command: "sleep 0.5; exit 3" } });
    assert.deepEqual(await firstLines(c, "svc/api", ticker.pid, 3), ["tick 0", "tick 1", "tick 2"]);
    const before = (await c.cells.list()).cells;
    c.client.close();

    await d1.kill9();
    // the workloads do not notice: they run and keep writing their output
    assert.ok(alive(ticker.hostPid) && alive(inner.hostPid));
    const out = path.join(d1.dir, "run/state/executables", `${encodeURIComponent("svc/api")}~ticker`, "stdout");
    const size0 = fs.statSync(out).size;
    await sleep(800); // "brief" ends meanwhile
    assert.ok(fs.statSync(out).size > size0, "output written while no daemon runs is kept");

    const d2 = await start({ restartOf: d1 });
    c = connect(d2);
    try {
      const after = (await c.cells.list()).cells;
      assert.deepEqual(after.map((n) => n.cell), before.map((n) => n.cell), "the same cells with the same specs");
      assert.deepEqual(flatten(after), {
        iso: [["inner", "running", null]],
        svc: [["brief", "exited", 3]],
        "svc/api": [["ticker", "running", null]],
      });
      assert.match(d2.logs.join("\n"), /re-adopted the earlier daemon's workloads/);
      // the whole output, history from before the restart and what came meanwhile, without a gap
      const lines = await firstLines(c, "svc/api", ticker.pid, 80);
      assert.deepEqual(lines, Array.from({ length: 80 }, (_, i) => `tick ${i}`));
      // the isolated cell's namespaces are still there: a new executable joins them
      const probe = await c.cells.start({ cellName: "iso", executable: { name: "probe", command: "hostname; ls /proc | grep -c '^[0-9]'" } });
      const seen = await firstLines(c, "iso", probe.pid, 2);
      assert.equal(seen[0], "iso");
      assert.ok(Number(seen[1]) >= 3, `the cell's init, 'inner' and the probe: ${seen[1]}`);
      // Stop and Free work on what was adopted
      await c.cells.stop({ cellName: "svc/api", executableName: "ticker" });
      assert.equal(alive(ticker.hostPid), false);
      await c.cells.stop({ cellName: "svc", executableName: "brief" });
      await c.cells.free({ cellName: "iso" });
      assert.equal(alive(inner.hostPid), false);
      await c.cells.free({ cellName: "svc" });
      assert.deepEqual((await c.cells.list()).cells, []);
    } finally {
      c.client.close();
    }
    const dir = d2.dir;
    const parent = d2.cgroupParent;
    assert.equal(await d2.stop(), 0);
    assert.deepEqual(cgroupDirs(parent), [], "nothing left in cgroupfs");
    assert.equal(fs.existsSync(dir), false);
  });

  test("a corrupt record is reported and what it names is left alone; the daemon starts", async () => {
    const d1 = await start();
    let c = connect(d1);
    await c.cells.allocate({ cell: { name: "good" } });
    await c.cells.allocate({ cell: { name: "bad" } });
    const victim = await c.cells.start({ cellName: "bad", executable: { name: "keep", command: "sleep 1000" } });
    const orphaned = await c.cells.start({ cellName: "good", executable: { name: "lost", command: "sleep 1000" } });
    c.client.close();
    await d1.kill9();
    // an executable whose output file went missing cannot be adopted: reported, left alone
    fs.rmSync(path.join(d1.dir, "run/state/executables", "good~lost", "stdout"));
    const file = path.join(d1.dir, "run/state/cells/bad.json");
    const text = fs.readFileSync(file, "utf8");
    fs.writeFileSync(file, text.slice(0, Math.floor(text.length / 2))); // a torn write
    const d2 = await start({ restartOf: d1 });
    c = connect(d2);
    try {
      const log = d2.logs.find((l) => l.includes("bad.json"));
      assert.ok(log, "the corrupt file is named in the log");
      assert.match(log!, /not valid JSON.*leaving it and cell 'bad' untouched/);
      assert.deepEqual((await c.cells.list()).cells.map((n) => n.cell!.name), ["good"]);
      assert.match(d2.logs.join("\n"), /good~lost cannot be adopted: .*leaving it and executable 'lost' in cell 'good' untouched/);
      assert.deepEqual((await c.cells.list()).cells[0]!.executables, [], "not adopted");
      assert.ok(alive(orphaned.hostPid), "and not killed as a leftover");
      assert.ok(alive(victim.hostPid), "the process of the unidentified cell is not touched");
      assert.ok(fs.existsSync(path.join(UNIFIED, d2.cgroupParent, "bad")), "nor its cgroups");
      assert.equal(fs.readFileSync(file, "utf8"), text.slice(0, Math.floor(text.length / 2)), "nor its record");
      await assert.rejects(c.cells.free({ cellName: "good" }), /still in use/, "its leaf keeps the cell busy until the operator clears it");
    } finally {
      c.client.close();
    }
  });

  test("a recorded pid now used by another process is never signalled, and an unknown end is reported as such", async () => {
    const d1 = await start();
    let c = connect(d1);
    await c.cells.allocate({ cell: { name: "p" } });
    const r = await c.cells.start({ cellName: "p", executable: { name: "old", command: "sleep 1000" } });
    c.client.close();
    await d1.kill9();
    const dir = path.join(d1.dir, "run/state/executables", "p~old");
    const rec = JSON.parse(fs.readFileSync(path.join(dir, "executable.json"), "utf8"));
    // the shim dies first (so nobody records the end), then the program; its pid "goes" to an
    // unrelated process
    process.kill(rec.shim.pid, "SIGKILL");
    process.kill(r.hostPid, "SIGKILL");
    await sleep(100);
    assert.equal(fs.existsSync(path.join(dir, "exit")), false, "no exit status was recorded");
    const other = spawn("sleep", ["1000"], { stdio: "ignore" });
    rec.process.pid = other.pid; // same start time as recorded: not the unrelated process's
    rec.pid = other.pid;
    fs.writeFileSync(path.join(dir, "executable.json"), JSON.stringify(rec));
    const d2 = await start({ restartOf: d1 });
    c = connect(d2);
    try {
      await sleep(300);
      const exe = (await c.cells.list()).cells[0]!.executables[0]!;
      assert.equal(exe.state, "exited", "not adopted as running");
      assert.equal(exe.exitCode, undefined, "status unknown: no exit code");
      assert.equal(exe.exitSignal, undefined, "status unknown: no signal");
      await c.cells.stop({ cellName: "p", executableName: "old" });
      await c.cells.free({ cellName: "p" });
      assert.ok(alive(other.pid!), "the unrelated process was not signalled");
    } finally {
      other.kill("SIGKILL");
      c.client.close();
    }
  });

  test("an isolated cell whose namespaces died during the downtime gets new ones", async () => {
    const d1 = await start();
    let c = connect(d1);
    await c.cells.allocate({ cell: { name: "box", isolateProcess: true } });
    const r = await c.cells.start({ cellName: "box", executable: { name: "inner", command: "sleep 1000" } });
    c.client.close();
    await d1.kill9();
    // kill the cell's init: the kernel kills every process of its pid namespace
    const holderRec = JSON.parse(fs.readFileSync(path.join(d1.dir, "run/state/executables", "box~.holder", "executable.json"), "utf8"));
    const init = Number(fs.readFileSync(`/proc/${holderRec.process.pid}/task/${holderRec.process.pid}/children`, "utf8").trim());
    process.kill(init, "SIGKILL");
    await sleep(200);
    assert.equal(alive(r.hostPid), false);
    const d2 = await start({ restartOf: d1 });
    c = connect(d2);
    try {
      assert.match(d2.logs.join("\n"), /cell 'box' had lost its namespaces: started a new namespace holder/);
      assert.deepEqual(flatten((await c.cells.list()).cells).box![0]!.slice(0, 2), ["inner", "exited"]);
      const p = await c.cells.start({ cellName: "box", executable: { name: "probe", command: "hostname; ls /proc | grep -c '^[0-9]'" } });
      const seen = await firstLines(c, "box", p.pid, 2);
      assert.equal(seen[0], "box");
      assert.ok(Number(seen[1]) <= 4, `a fresh pid namespace (its init, the probe shell, ls, grep): ${seen[1]} processes`);
      await c.cells.free({ cellName: "box" });
    } finally {
      c.client.close();
    }
  });

  test("cgroups under the parent without a record are reported, their processes killed, and removed", async () => {
    const d1 = await start();
    await d1.kill9();
    // something an earlier daemon (or a crash between spawn and record) left
    const stray = path.join(UNIFIED, d1.cgroupParent, "stray", "_", "x");
    fs.mkdirSync(stray, { recursive: true });
    const p = spawn("sleep", ["1000"], { stdio: "ignore" });
    fs.writeFileSync(path.join(stray, "cgroup.procs"), String(p.pid));
    const d2 = await start({ restartOf: d1 });
    const log = d2.logs.find((l) => l.includes("cgroup 'stray' had no record"));
    assert.ok(log, d2.logs.join("\n"));
    assert.match(log!, new RegExp(`killed pids ${p.pid}`));
    await new Promise((res) => (p.exitCode !== null || p.signalCode !== null ? res(undefined) : p.once("exit", res)));
    assert.equal(p.signalCode, "SIGKILL");
    assert.equal(fs.existsSync(path.join(UNIFIED, d2.cgroupParent, "stray")), false);
  });

  test("a second daemon on the same state or cgroup parent refuses to start and touches nothing", async () => {
    const d1 = await start();
    const c = connect(d1);
    try {
      await c.cells.allocate({ cell: { name: "mine" } });
      const r = await c.cells.start({ cellName: "mine", executable: { name: "w", command: "sleep 1000" } });
      const other = path.join(d1.dir, "other.sock");
      // same runtime dir, another socket
      const sameState = await startDaemon({ restartOf: d1, socket: other, cgroupParent: `${d1.cgroupParent}-x`, waitReady: false });
      assert.equal(await new Promise((res) => sameState.process.once("exit", res)), 1);
      assert.match(sameState.logs.join("\n"), /another auraed owns .*\/run\/state/);
      // same cgroup parent, another runtime dir
      const sameCgroups = await startDaemon({ cgroupParent: d1.cgroupParent, waitReady: false });
      daemons.push(sameCgroups);
      assert.equal(await new Promise((res) => sameCgroups.process.once("exit", res)), 1);
      assert.match(sameCgroups.logs.join("\n"), new RegExp(`another auraed owns .*${d1.cgroupParent}`));
      assert.ok(alive(r.hostPid), "the first daemon's workload runs on");
      assert.deepEqual(cgroupDirs(`${d1.cgroupParent}-x`), [], "the refused daemon removed the cgroup parent it had made");
      assert.deepEqual(flatten((await c.cells.list()).cells), { mine: [["w", "running", null]] });
      await c.cells.free({ cellName: "mine" });
    } finally {
      c.client.close();
    }
  });

  test("--keep-workloads: SIGTERM exits 0 and leaves everything running for the next daemon", async () => {
    const d1 = await start({ args: ["--keep-workloads"] });
    let c = connect(d1);
    await c.cells.allocate({ cell: { name: "up" } });
    const r = await c.cells.start({ cellName: "up", executable: { name: "srv", command: "echo serving; sleep 1000" } });
    c.client.close();
    const exit = new Promise((res) => d1.process.once("exit", (code) => res(code)));
    d1.process.kill("SIGTERM");
    assert.equal(await exit, 0);
    assert.ok(alive(r.hostPid), "the executable still runs");
    assert.ok(fs.existsSync(path.join(UNIFIED, d1.cgroupParent, "up")));
    const d2 = await start({ restartOf: d1 });
    c = connect(d2);
    try {
      assert.deepEqual(flatten((await c.cells.list()).cells), { up: [["srv", "running", null]] });
      assert.deepEqual(await firstLines(c, "up", r.pid, 1), ["serving"]);
    } finally {
      c.client.close();
    }
    // without the flag, SIGTERM stops everything
    const parent = d2.cgroupParent;
    assert.equal(await d2.stop(), 0);
    assert.equal(alive(r.hostPid), false);
    assert.deepEqual(cgroupDirs(parent), []);
  });
});
