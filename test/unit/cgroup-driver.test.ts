import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CgroupDriver } from "../../src/platform/cgroups/driver.js";
import { plainDirectoryCgroupFs, CgroupFsError, type CgroupFs } from "../../src/platform/cgroups/cgroupfs.js";
import { v1Layout, v2Layout, type CgroupLayout } from "../../src/platform/cgroups/layout.js";
import { CgroupLimitError } from "../../src/platform/cgroups/limits.js";

/** A temporary directory laid out like the root of cgroupfs. */
function tempRoot(t: { after: (fn: () => void) => void }): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "cgroupfs-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  return root;
}
const read = (p: string) => fs.readFileSync(p, "utf8");
const put = (p: string, v: string) => { fs.mkdirSync(path.dirname(p), { recursive: true }); fs.writeFileSync(p, v); };

function v2Root(t: Parameters<typeof tempRoot>[0]) {
  const root = tempRoot(t);
  put(path.join(root, "cgroup.controllers"), "cpuset cpu io memory pids\n");
  put(path.join(root, "cgroup.subtree_control"), "");
  put(path.join(root, "cpuset.cpus.effective"), "0-3\n");
  put(path.join(root, "cpuset.mems.effective"), "0\n");
  return root;
}

function v1Root(t: Parameters<typeof tempRoot>[0]) {
  const root = tempRoot(t);
  for (const c of ["cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"]) fs.mkdirSync(path.join(root, c));
  put(path.join(root, "cpuset", "cpuset.cpus"), "0-3\n");
  put(path.join(root, "cpuset", "cpuset.mems"), "0\n");
  put(path.join(root, "cpuset", "cpuset.effective_cpus"), "0-3\n");
  put(path.join(root, "cpuset", "cpuset.effective_mems"), "0\n");
  return root;
}

const ALL = {
  cpu: { weight: 500, maxUs: 20000, periodUs: 50000 },
  cpuset: { cpus: "1,0", mems: "0" },
  memory: { minBytes: 1 << 20, lowBytes: 2 << 20, highBytes: 3 << 20, maxBytes: 4 << 20 },
  pids: { max: 100 },
};

test("v2: init enables the controllers down to the parent and a cell gets every limit file", (t) => {
  const root = v2Root(t);
  const d = new CgroupDriver({ layout: v2Layout(root), parent: "aurae-test", fs: plainDirectoryCgroupFs() });
  d.init();
  assert.equal(read(path.join(root, "cgroup.subtree_control")), "+cpu +cpuset +memory +pids");
  assert.equal(read(path.join(root, "aurae-test", "cgroup.subtree_control")), "+cpu +cpuset +memory +pids");
  assert.equal(d.cgroupV2, true);
  d.checkLimits(ALL, "");
  d.createCell("a", ALL);
  const a = path.join(root, "aurae-test", "a");
  assert.deepEqual(
    Object.fromEntries(["cpu.weight", "cpu.max", "cpuset.cpus", "cpuset.mems", "memory.min", "memory.low", "memory.high", "memory.max", "pids.max", "cgroup.subtree_control"].map((f) => [f, read(path.join(a, f))])),
    {
      "cpu.weight": "500",
      "cpu.max": "20000 50000",
      "cpuset.cpus": "0-1",
      "cpuset.mems": "0",
      "memory.min": String(1 << 20),
      "memory.low": String(2 << 20),
      "memory.high": String(3 << 20),
      "memory.max": String(4 << 20),
      "pids.max": "100",
      "cgroup.subtree_control": "+cpu +cpuset +memory +pids",
    },
  );
});

test("v2: an executable gets its own leaf under the cell's process leaf and joins only it", (t) => {
  const root = v2Root(t);
  const d = new CgroupDriver({ layout: v2Layout(root), parent: "p", fs: plainDirectoryCgroupFs() });
  d.init();
  d.createCell("a", {});
  d.ensureProcessLeaf("a");
  const leaf = d.createExecutableLeaf("a", "web");
  assert.equal(leaf, path.join(root, "p", "a", "_", "web"));
  assert.deepEqual(d.joinFiles("a", "web"), [path.join(leaf, "cgroup.procs")]);
  d.removeExecutableLeaf("a", "web");
  d.removeCell("a");
  d.destroy();
  assert.deepEqual(fs.readdirSync(root).filter((f) => fs.statSync(path.join(root, f)).isDirectory()), []);
});

test("v2: a nested cpuset outside the parent's effective set is refused before anything is created", (t) => {
  const root = v2Root(t);
  const d = new CgroupDriver({ layout: v2Layout(root), parent: "p", fs: plainDirectoryCgroupFs() });
  d.init();
  d.createCell("a", { cpuset: { cpus: "0-1" } });
  put(path.join(root, "p", "a", "cpuset.cpus.effective"), "0-1"); // what the kernel would show
  assert.throws(() => d.checkLimits({ cpuset: { cpus: "2" } }, "a"), (e: unknown) => e instanceof CgroupLimitError && e.field === "cpuset.cpus");
  d.checkLimits({ cpuset: { cpus: "1" } }, "a");
});

test("a write the kernel refuses rolls the whole cell back in every hierarchy", (t) => {
  const root = v1Root(t);
  const base = plainDirectoryCgroupFs();
  const failing: CgroupFs = {
    ...base,
    write: (p, v) => {
      if (p.endsWith("pids.max")) throw new CgroupFsError("write", p, "EINVAL");
      base.write(p, v);
    },
  };
  const d = new CgroupDriver({ layout: v1Layout(root), parent: "p", fs: failing });
  d.init();
  assert.throws(
    () => d.createCell("a", { cpu: { weight: 100 }, memory: { maxBytes: 1 << 20 }, pids: { max: 5 } }),
    (e: unknown) => e instanceof CgroupLimitError && e.field === "pids.max" && e.reason === "invalid",
  );
  for (const c of ["cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"]) {
    assert.equal(fs.existsSync(path.join(root, c, "p", "a")), false, c);
  }
});

test("v1: limits map to shares, cfs quota and period, limit_in_bytes and soft_limit_in_bytes", (t) => {
  const root = v1Root(t);
  const d = new CgroupDriver({ layout: v1Layout(root), parent: "p", fs: plainDirectoryCgroupFs() });
  d.init();
  assert.equal(d.cgroupV2, false);
  assert.equal(read(path.join(root, "cpuset", "p", "cpuset.cpus")), "0-3");
  assert.equal(read(path.join(root, "cpuset", "p", "cpuset.mems")), "0");
  assert.equal(read(path.join(root, "cpuset", "p", "cgroup.clone_children")), "1");
  const limits = { cpu: { weight: 100, maxUs: 20000 }, cpuset: { cpus: "2-3" }, memory: { lowBytes: 1 << 20, maxBytes: 64 << 20 }, pids: { max: 7 } };
  d.checkLimits(limits, "");
  d.createCell("a", limits);
  const at = (c: string, f: string) => read(path.join(root, c, "p", "a", f));
  assert.equal(at("cpu", "cpu.shares"), "1024");
  assert.equal(fs.existsSync(path.join(root, "cpu", "p", "a", "cpu.cfs_period_us")), false, "the default period is not rewritten");
  assert.equal(at("cpu", "cpu.cfs_quota_us"), "20000");
  assert.equal(at("cpuset", "cpuset.cpus"), "2-3");
  assert.equal(at("memory", "memory.limit_in_bytes"), String(64 << 20));
  assert.equal(at("memory", "memory.soft_limit_in_bytes"), String(1 << 20));
  assert.equal(at("pids", "pids.max"), "7");
  for (const c of ["cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"]) assert.ok(fs.existsSync(path.join(root, c, "p", "a")), c);
});

test("v1: memory min and high are refused as unsupported and a child quota above the parent's as invalid", (t) => {
  const root = v1Root(t);
  const d = new CgroupDriver({ layout: v1Layout(root), parent: "p", fs: plainDirectoryCgroupFs() });
  d.init();
  assert.throws(() => d.checkLimits({ memory: { minBytes: 1 } }, ""), (e: unknown) => e instanceof CgroupLimitError && e.reason === "unsupported" && /mode: v1/.test(e.message));
  d.createCell("a", { cpu: { maxUs: 20000 } });
  assert.throws(() => d.checkLimits({ cpu: { maxUs: 50000 } }, "a"), (e: unknown) => e instanceof CgroupLimitError && e.field === "cpu.max");
  d.checkLimits({ cpu: { maxUs: 10000 } }, "a");
});

test("v1 without cgroup2: executables are tracked in a freezer leaf, controllers join the cell's process leaf", (t) => {
  const root = v1Root(t);
  const d = new CgroupDriver({ layout: v1Layout(root), parent: "p", fs: plainDirectoryCgroupFs() });
  d.init();
  assert.equal(d.tracker.kind, "freezer");
  d.createCell("a", {});
  d.ensureProcessLeaf("a");
  d.createExecutableLeaf("a", "x");
  assert.deepEqual(d.joinFiles("a", "x"), [
    path.join(root, "freezer", "p", "a", "_", "x", "cgroup.procs"),
    ...["cpu", "cpuacct", "cpuset", "memory", "pids"].map((c) => path.join(root, c, "p", "a", "_", "cgroup.procs")),
  ]);
});

test("hybrid: controllers stay on v1, the cgroup2 mount tracks executables and gets no subtree_control", (t) => {
  const root = v1Root(t);
  fs.mkdirSync(path.join(root, "unified"));
  const layout: CgroupLayout = { ...v1Layout(root), mode: "hybrid", unified: path.join(root, "unified"), v2Controllers: ["hugetlb"] };
  const d = new CgroupDriver({ layout, parent: "p", fs: plainDirectoryCgroupFs() });
  d.init();
  assert.equal(d.cgroupV2, false);
  assert.equal(d.tracker.kind, "v2");
  d.createCell("a", { pids: { max: 3 } });
  assert.equal(fs.existsSync(path.join(root, "unified", "p", "a", "cgroup.subtree_control")), false);
  assert.equal(d.executableDir("a", "x"), path.join(root, "unified", "p", "a", "_", "x"));
});

test("init keeps what an earlier daemon left; subtree lists it parents first and removeLeftover removes a subtree", async (t) => {
  const root = v2Root(t);
  for (const d of ["p/old/_/x", "p/old/child/_", "p/kept/_/y"]) fs.mkdirSync(path.join(root, d), { recursive: true });
  const d = new CgroupDriver({ layout: v2Layout(root), parent: "p", fs: plainDirectoryCgroupFs() });
  d.init();
  assert.deepEqual(d.subtree(), ["_shims", "kept", "old", "kept/_", "old/_", "old/child", "kept/_/y", "old/_/x", "old/child/_"]);
  assert.deepEqual(await d.removeLeftover("old"), []);
  assert.equal(fs.existsSync(path.join(root, "p", "old")), false);
  assert.deepEqual(d.subtree(), ["_shims", "kept", "kept/_", "kept/_/y"]);
  assert.equal(d.cellExists("kept"), true);
  assert.equal(d.cellExists("old"), false);
});
