/**
 * Limits bind on the real kernel: a CPU quota throttles, a memory max kills, a pids max
 * refuses forks, a cpuset pins. Root only; cleanup by path in `after`.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CellDomain } from "../../src/daemon/cells/cell-domain.js";
import type { CellSpec } from "../../src/daemon/cells/spec.js";
import { StateStore } from "../../src/daemon/cells/store.js";
import { CgroupDriver } from "../../src/platform/cgroups/driver.js";
import { detectCgroupLayout, type CgroupLayout } from "../../src/platform/cgroups/layout.js";
import { forceRemoveCgroupTree } from "../../src/platform/cgroups/cleanup.js";
import { startReaper, type Reaper } from "../../src/platform/reaper.js";

const SKIP = process.getuid?.() === 0 ? false : "needs root and real cgroups";

const spec = (name: string, limits: CellSpec["limits"]): CellSpec => ({ name, limits, isolateProcess: false, isolateNetwork: false });

/** CPU time used by a cell in seconds (cpuacct.usage on v1, cpu.stat usage_usec on v2). */
function cpuSeconds(driver: CgroupDriver, cell: string): number {
  if (driver.controllerVersion("cpuacct") === "v1") {
    return Number(fs.readFileSync(path.join(driver.controllerDir("cpuacct", cell)!, "cpuacct.usage"), "utf8")) / 1e9;
  }
  const stat = fs.readFileSync(path.join(driver.controllerDir("cpu", cell)!, "cpu.stat"), "utf8");
  return Number(/^usage_usec (\d+)/m.exec(stat)![1]) / 1e6;
}

describe("limits bind on the real kernel", { skip: SKIP }, () => {
  let layout: CgroupLayout;
  let reaper: Reaper;
  let driver: CgroupDriver;
  let domain: CellDomain;
  let runtimeDir: string;
  const parent = `aurae-test-limits-${process.pid}`;

  before(() => {
    layout = detectCgroupLayout();
    reaper = startReaper();
    driver = new CgroupDriver({ layout, parent });
    driver.init();
    runtimeDir = fs.mkdtempSync(path.join(os.tmpdir(), "aurae-limits-run-"));
    const store = new StateStore(runtimeDir);
    store.open();
    domain = new CellDomain({ driver, store, stopGraceMs: 200, reaper });
  });

  after(async () => {
    try {
      await domain?.shutdown();
    } finally {
      if (runtimeDir) fs.rmSync(runtimeDir, { recursive: true, force: true });
      reaper?.stop();
      assert.deepEqual(await forceRemoveCgroupTree(layout, parent), []);
    }
  });

  test("a 20% CPU quota throttles a busy loop to about a fifth of the wall time", async () => {
    await domain.allocate(spec("cpu", { cpu: { maxUs: 20000, periodUs: 100000 } }));
    await domain.start({ cellName: "cpu", name: "spin", command: "while :; do :; done", description: "" });
    const u0 = cpuSeconds(driver, "cpu");
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    const wall = (Date.now() - t0) / 1000;
    const used = cpuSeconds(driver, "cpu") - u0;
    const stat = fs.readFileSync(path.join(driver.controllerDir("cpu", "cpu")!, "cpu.stat"), "utf8");
    await domain.free("cpu");
    assert.ok(used < 0.3 * wall, `throttled loop used ${used.toFixed(3)} s of ${wall.toFixed(3)} s`);
    assert.ok(used > 0.05 * wall, `throttled loop ran at all (${used.toFixed(3)} s)`);
    assert.ok(Number(/^nr_throttled (\d+)/m.exec(stat)![1]) > 0, `the kernel throttled the cell: ${stat}`);
  });

  test("a 64 MiB memory max kills an allocation of 200 MiB", async () => {
    await domain.allocate(spec("mem", { memory: { maxBytes: 64 << 20 } }));
    await domain.start({ cellName: "mem", name: "hog", command: "head -c 200000000 /dev/zero | tail", description: "" });
    const exe = domain.findByPid(domain.list().find((c) => c.spec.name === "mem")!.executables[0]!.pid)!;
    const status = await (exe as unknown as { exited: Promise<{ code: number | null }> }).exited;
    assert.equal(status.code, 128 + 9, "tail was SIGKILLed by the OOM killer");
    if (driver.controllerVersion("memory") === "v1") {
      // v1 counts the kill in the victim's memcg: the cell's process leaf.
      const oom = fs.readFileSync(path.join(driver.controllerDir("memory", "mem")!, "_", "memory.oom_control"), "utf8");
      assert.match(oom, /^oom_kill [1-9]/m);
      assert.ok(Number(fs.readFileSync(path.join(driver.controllerDir("memory", "mem")!, "memory.failcnt"), "utf8")) > 0);
    } else {
      const events = fs.readFileSync(path.join(driver.controllerDir("memory", "mem")!, "memory.events"), "utf8");
      assert.match(events, /^oom_kill [1-9]/m);
    }
    await domain.free("mem");
  });

  test("a pids max of 5 refuses the sixth process", async () => {
    await domain.allocate(spec("pids", { pids: { max: 5 } }));
    await domain.start({ cellName: "pids", name: "forker", command: "for i in 1 2 3 4 5 6 7 8; do sleep 1000 & done; wait", description: "" });
    const dir = driver.controllerDir("pids", "pids")!;
    const stderr = () => fs.readFileSync(path.join(domain.cells.get("pids")!.executables.get("forker")!.dir, "stderr"), "utf8");
    const end = Date.now() + 3000;
    while (!/fork/i.test(stderr()) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.match(stderr(), /fork/i);
    assert.ok(Number(fs.readFileSync(path.join(dir, "pids.current"), "utf8")) <= 5);
    await domain.free("pids");
  });

  test("a cpuset pins the executable to the listed cpu", async (t) => {
    if (os.cpus().length < 2) return t.skip("needs two cpus");
    const last = String(os.cpus().length - 1);
    await domain.allocate(spec("pin", { cpuset: { cpus: last } }));
    const r = await domain.start({ cellName: "pin", name: "sleeper", command: "sleep 1000", description: "" });
    const allowed = () => /^Cpus_allowed_list:\s*(\S+)$/m.exec(fs.readFileSync(`/proc/${r.hostPid}/status`, "utf8"))![1];
    assert.equal(allowed(), last);
    await domain.free("pin");
  });
});
