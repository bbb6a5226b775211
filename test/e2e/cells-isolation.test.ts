/**
 * Isolated cells through a live daemon (root, real namespaces): Aurae's isolation scenarios
 * with output read back from the executables, what a process inside can and cannot reach,
 * orphan reaping in the cell, nested cells, Free leaving nothing behind, and that a non-root
 * user can reach nothing that controls a cell.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { CellServiceClient, LogChannelType, ObserveServiceClient, createClient, type AuraeClient } from "../../src/client/index.js";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { ebpfMissing } from "../helpers/ebpf.js";

const SKIP =
  process.getuid?.() !== 0
    ? "needs root (namespaces, cgroups)"
    : !fs.existsSync("/usr/bin/catatonit")
      ? "catatonit is not installed (apt-get install catatonit)"
      : false;

/** Numeric entries of a `ls /proc` listing. */
const pidsIn = (ls: string) => ls.split(/\s+/).filter((e) => /^\d+$/.test(e)).map(Number);

/** A process's state letter (R, S, Z...), undefined once it is gone. */
function processState(pid: number): string | undefined {
  try {
    return /^State:\s+(\S)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  } catch {
    return undefined;
  }
}

const cmdline = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
  } catch {
    return "";
  }
};
const ppid = (pid: number) => Number(/^PPid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]);

describe("isolated cells through the daemon", { skip: SKIP, timeout: 120_000 }, () => {
  let d: TestDaemon;
  let client: AuraeClient;
  let cells: CellServiceClient;
  let observe: ObserveServiceClient;
  let n = 0;
  const unique = (p: string) => `${p}-${process.pid}-${++n}`;

  before(async () => {
    d = await startDaemon();
    client = createClient({ kind: "path", path: d.configPath });
    cells = new CellServiceClient(client);
    observe = new ObserveServiceClient(client);
  });

  after(async () => {
    client?.close();
    const code = await d?.stop();
    assert.equal(code, 0);
    const left = ["unified", "memory", "pids", "cpu"].map((h) => path.join("/sys/fs/cgroup", h, d.cgroupParent)).filter((p) => fs.existsSync(p));
    assert.deepEqual(left, [], "the daemon removed its cgroups");
  });

  /** Runs a command as an executable of `cell` and returns its stdout once it ended. */
  async function run(cell: string, command: string): Promise<{ out: string; pid: number; hostPid: number }> {
    const name = unique("run");
    const r = await cells.start({ cellName: cell, executable: { name, command } });
    let out = "";
    for await (const m of observe.getSubProcessStream({ processId: r.pid, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT, cellName: cell })) {
      out += `${m.item!.line}\n`;
    }
    await cells.stop({ cellName: cell, executableName: name });
    return { out, pid: r.pid, hostPid: r.hostPid };
  }

  test("Aurae's scenario: an isolated cell's /proc shows only its own processes and hostname is its leaf name", async () => {
    const cell = unique("iso");
    await cells.allocate({ cell: { name: cell, isolateProcess: true } });
    try {
      const ls = await run(cell, "ls /proc");
      const pids = pidsIn(ls.out);
      assert.ok(pids.includes(1), `pid 1 (the cell's init) is there: ${pids}`);
      assert.ok(pids.length <= 3, `only the cell's processes: ${pids}`);
      assert.ok(!pids.includes(d.process.pid!), "the daemon is not visible");
      assert.notEqual(ls.pid, ls.hostPid, "Start reports the pid in the cell, host_pid on the host");
      assert.equal((await run(cell, "hostname")).out, `${cell}\n`);
    } finally {
      await cells.free({ cellName: cell });
    }
  });

  test("Aurae's scenario: a network-isolated cell has only lo, and it is up", async () => {
    const cell = unique("net");
    await cells.allocate({ cell: { name: cell, isolateNetwork: true } });
    try {
      const links = (await run(cell, "ip -o link")).out.trim().split("\n");
      assert.equal(links.length, 1, links.join("\n"));
      assert.match(links[0]!, /^1: lo: <LOOPBACK,UP,LOWER_UP>/);
      // the host's own processes are still visible: only the network is isolated
      assert.ok(pidsIn((await run(cell, "ls /proc")).out).length > 10);
    } finally {
      await cells.free({ cellName: cell });
    }
  });

  test("with both flags all three hold", async () => {
    const cell = unique("both");
    await cells.allocate({ cell: { name: cell, isolateProcess: true, isolateNetwork: true } });
    try {
      const r = await run(cell, "hostname; ip -o link | wc -l; ls /proc | grep -c '^[0-9]'");
      const [host, links, procs] = r.out.trim().split("\n");
      assert.equal(host, cell);
      assert.equal(links, "1");
      assert.ok(Number(procs) <= 4, `processes in the cell: ${procs}`);
    } finally {
      await cells.free({ cellName: cell });
    }
  });

  test("mounts made inside stay inside and the host's mount propagation is unchanged", async () => {
    const cell = unique("mnt");
    const target = fs.mkdtempSync("/tmp/aurae-iso-mnt-");
    const before = fs.readFileSync("/proc/self/mountinfo", "utf8");
    await cells.allocate({ cell: { name: cell, isolateProcess: true } });
    try {
      const r = await run(cell, `mount -t tmpfs aurae-test ${target} && grep -c ' ${target} ' /proc/self/mountinfo`);
      assert.equal(r.out, "1\n", "the mount exists inside");
      const after = fs.readFileSync("/proc/self/mountinfo", "utf8");
      assert.ok(!after.includes(` ${target} `), "the host does not see it");
      const rootLine = (t: string) => t.split("\n").find((l) => l.split(" ")[4] === "/");
      assert.equal(rootLine(after), rootLine(before), "the host's root mount, propagation included, is unchanged");
    } finally {
      await cells.free({ cellName: cell });
      fs.rmdirSync(target);
    }
  });

  test("a process inside can neither see nor signal a host process", async () => {
    const cell = unique("sig");
    const host = spawnSync("sh", ["-c", "sleep 1000 >/dev/null 2>&1 & echo $!"], { encoding: "utf8" });
    const hostPid = Number(host.stdout.trim());
    await cells.allocate({ cell: { name: cell, isolateProcess: true } });
    try {
      const r = await run(cell, `kill -TERM ${hostPid} 2>&1; echo "kill=$?"; ls /proc/${hostPid} >/dev/null 2>&1; echo "ls=$?"`);
      assert.match(r.out, /kill=1/);
      assert.match(r.out, /ls=2/);
      assert.notEqual(processState(hostPid), undefined, "the host process still runs");
    } finally {
      process.kill(hostPid, "SIGKILL");
      await cells.free({ cellName: cell });
    }
  });

  test("a double-forked orphan inside is reaped by the cell's init: no zombie in the cell", async () => {
    const cell = unique("orphan");
    await cells.allocate({ cell: { name: cell, isolateProcess: true } });
    try {
      const name = unique("forker");
      // the inner shell exits at once; its child sleeps 0.3 s as an orphan of the cell's init
      await cells.start({ cellName: cell, executable: { name, command: "sh -c 'sleep 0.3 &'; sleep 1000" } });
      const leaf = path.join("/sys/fs/cgroup/unified", d.cgroupParent, cell, "_", name, "cgroup.procs");
      const procs = () => fs.readFileSync(leaf, "utf8").split("\n").filter(Boolean).map(Number);
      await new Promise((res) => setTimeout(res, 100));
      const orphan = procs().find((p) => cmdline(p) === "sleep 0.3");
      assert.ok(orphan, `the orphan runs: ${procs().map(cmdline)}`);
      assert.equal(cmdline(ppid(orphan)), "catatonit -P", "it was reparented to the cell's init");
      await new Promise((res) => setTimeout(res, 700));
      assert.equal(processState(orphan), undefined, "the orphan is gone, reaped");
      const left = procs();
      assert.deepEqual(left.map(cmdline).sort(), ["/bin/sh -c sh -c 'sleep 0.3 &'; sleep 1000", "sleep 1000"].sort());
      assert.ok(!left.map(processState).includes("Z"), "no zombie in the cell");
    } finally {
      await cells.free({ cellName: cell });
    }
  });

  test("a nested cell shares its isolated parent's namespaces and has its own cgroups", async () => {
    const cell = unique("outer");
    await cells.allocate({ cell: { name: cell, isolateProcess: true, isolateNetwork: true } });
    await cells.allocate({ cell: { name: `${cell}/inner` } });
    try {
      const keep = unique("keep");
      await cells.start({ cellName: cell, executable: { name: keep, command: "sleep 1000" } });
      const r = await run(`${cell}/inner`, "hostname; ip -o link | wc -l; ls /proc; cat /proc/self/cgroup");
      const lines = r.out.trim().split("\n");
      assert.equal(lines[0], cell, "the parent's hostname");
      assert.equal(lines[1], "1", "the parent's network namespace");
      assert.ok(pidsIn(r.out).length >= 3, "the parent's processes are visible (its init and its sleep)");
      assert.ok(lines.some((l) => l.endsWith(`:/${d.cgroupParent}/${cell}/inner/_`)), "its own cgroup");
    } finally {
      await cells.free({ cellName: cell });
    }
  });

  test("free of a busy isolated cell leaves no process, namespace, cgroup or file behind", async () => {
    const cell = unique("busy");
    await cells.allocate({ cell: { name: cell, isolateProcess: true, isolateNetwork: true } });
    await cells.allocate({ cell: { name: `${cell}/kid` } });
    const started = [
      await cells.start({ cellName: cell, executable: { name: "a", command: "setsid sleep 1000 & sleep 1000" } }),
      await cells.start({ cellName: `${cell}/kid`, executable: { name: "b", command: "trap '' TERM; sleep 1000" } }),
    ];
    const cgroup = path.join("/sys/fs/cgroup/unified", d.cgroupParent, cell);
    const everything = (dir: string): number[] => [
      ...fs.readFileSync(path.join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number),
      ...fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).flatMap((e) => everything(path.join(dir, e.name))),
    ];
    const pids = everything(cgroup);
    assert.ok(pids.length >= 5, `holder, its init and the executables: ${pids}`);
    const netns = fs.readlinkSync(`/proc/${started[0]!.hostPid}/ns/net`);
    await cells.free({ cellName: cell });
    for (const p of pids) assert.equal(processState(p), undefined, `pid ${p} is gone`);
    assert.equal(fs.existsSync(cgroup), false);
    for (const h of ["memory", "pids", "cpu"]) assert.equal(fs.existsSync(path.join("/sys/fs/cgroup", h, d.cgroupParent, cell)), false);
    const inUse = fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).some((p) => {
      try {
        return fs.readlinkSync(`/proc/${p}/ns/net`) === netns;
      } catch {
        return false;
      }
    });
    assert.equal(inUse, false, "no process holds the cell's network namespace");
    const state = path.join(d.dir, "run", "state");
    assert.deepEqual(fs.readdirSync(path.join(state, "cells")).filter((f) => f.includes(cell)), []);
    assert.deepEqual(fs.readdirSync(path.join(state, "executables")).filter((f) => f.includes(cell)), []);
  });

  test("two isolated cells may report the same pid; observe tells them apart by cell", async () => {
    const a = unique("twin");
    const b = unique("twin");
    await cells.allocate({ cell: { name: a, isolateProcess: true } });
    await cells.allocate({ cell: { name: b, isolateProcess: true } });
    try {
      const ra = await cells.start({ cellName: a, executable: { name: "x", command: "echo in-a; sleep 1000" } });
      const rb = await cells.start({ cellName: b, executable: { name: "x", command: "echo in-b; sleep 1000" } });
      assert.equal(ra.pid, rb.pid, "the first executable of each cell has the same pid in its namespace");
      await assert.rejects(
        (async () => {
          for await (const _ of observe.getSubProcessStream({ processId: ra.pid, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT })) break;
        })(),
        (e: Error & { code?: number }) => e.code === 3 && /ambiguous.*name the cell/.test(e.message),
      );
      for (const [cell, pid, want] of [[a, ra.pid, "in-a"], [b, rb.pid, "in-b"]] as const) {
        for await (const m of observe.getSubProcessStream({ processId: pid, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT, cellName: cell })) {
          assert.equal(m.item!.line, want);
          break;
        }
      }
    } finally {
      await cells.free({ cellName: a });
      await cells.free({ cellName: b });
    }
  });

  test("a signal to a process of an isolated cell is reported with the pid Start returned", async (t) => {
    const missing = ebpfMissing();
    if (missing) return t.skip(missing);
    const cell = unique("sigpid");
    await cells.allocate({ cell: { name: cell, isolateProcess: true } });
    try {
      const r = await cells.start({ cellName: cell, executable: { name: "target", command: "sleep 1000" } });
      assert.notEqual(r.pid, r.hostPid);
      const ac = new AbortController();
      const stream = observe.getPosixSignalsStream({ workload: { workloadType: 1, id: cell } }, { signal: ac.signal });
      const seen = (async () => {
        for await (const m of stream) if (m.signal?.signal === 15) return m.signal;
        return undefined;
      })().catch(() => undefined);
      await new Promise((res) => setTimeout(res, 300)); // the subscription is live
      await cells.stop({ cellName: cell, executableName: "target" });
      const sig = await Promise.race([seen, new Promise<undefined>((res) => setTimeout(() => res(undefined), 5000))]);
      ac.abort();
      assert.ok(sig, "the SIGTERM of the stop was seen");
      assert.equal(sig.processId, r.pid, "the pid in the cell, as Start reported it");
      assert.equal(sig.cellName, cell);
    } finally {
      await cells.free({ cellName: cell });
    }
  });

  test("output of a background child is streamed to the end, after the main process exited", async () => {
    const cell = unique("bg");
    await cells.allocate({ cell: { name: cell, isolateProcess: true } });
    try {
      // the background child outlives the main process, as an orphan of the cell's init
      const r = await run(cell, "(sleep 0.5; echo late) & echo early");
      assert.equal(r.out, "early\nlate\n");
    } finally {
      await cells.free({ cellName: cell });
    }
  });

  test("when an isolated cell's namespaces die, Start there is refused instead of running outside them", async () => {
    const cell = unique("dead");
    await cells.allocate({ cell: { name: cell, isolateProcess: true } });
    try {
      // a root program inside may do this: the cell's init quits, its pid namespace dies
      await run(cell, "kill -TERM 1");
      await new Promise((res) => setTimeout(res, 300));
      await assert.rejects(
        cells.start({ cellName: cell, executable: { name: "after", command: "hostname" } }),
        (e: Error & { code?: number }) => e.code === 9 && /cell '.*' has lost its namespaces/.test(e.message),
      );
      assert.ok(d.logs.some((l) => l.includes(`cell '${cell}' lost its namespaces`)), "and the daemon said so");
    } finally {
      await cells.free({ cellName: cell });
    }
  });

  test("a non-root user can reach nothing that controls a cell", async () => {
    const cell = unique("guard");
    await cells.allocate({ cell: { name: cell, isolateProcess: true, isolateNetwork: true } });
    try {
      const r = await cells.start({ cellName: cell, executable: { name: "x", command: "sleep 1000" } });
      const runtime = path.join(d.dir, "run");
      const leaf = path.join("/sys/fs/cgroup/unified", d.cgroupParent, cell, "_", "x");
      const script = [
        `cat ${runtime}/state/cells/* >/dev/null 2>&1 && echo state-readable`,
        `ls ${runtime}/state/executables >/dev/null 2>&1 && echo executables-listable`,
        `echo $$ > ${leaf}/cgroup.procs 2>/dev/null && echo joined-cgroup`,
        `echo 1 > ${leaf}/cgroup.kill 2>/dev/null && echo killed-cell`,
        `kill -0 ${r.hostPid} 2>/dev/null && echo can-signal`,
        `nsenter --target ${r.hostPid} --all true 2>/dev/null && echo entered-namespaces`,
        `find ${runtime} -type s -perm -o+w 2>/dev/null | grep -q . && echo world-writable-socket`,
        "echo checked",
      ].join("; ");
      const res = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script], { encoding: "utf8" });
      assert.equal(res.stdout.trim(), "checked", `as nobody: ${res.stdout}${res.stderr}`);
      // the daemon socket answers only mTLS clients with a certificate from its CA (test/e2e/daemon-mtls.test.ts)
      const sock = fs.statSync(d.socket!);
      assert.ok(sock.isSocket());
      // and the cell's world holds no socket or control file that other users may open
      const walk = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
      const open = walk(runtime).filter((f) => (fs.statSync(f).mode & 0o006) !== 0 && !fs.statSync(f).isSocket());
      assert.deepEqual(open, [], "no file under the runtime dir is readable or writable by others");
    } finally {
      await cells.free({ cellName: cell });
    }
  });
});
