import { test } from "node:test";
import assert from "node:assert/strict";
import { layoutFromMounts, parseCgroupMounts } from "../../src/platform/cgroups/layout.js";
import { parseCellPath } from "../../src/platform/cgroups/driver.js";

const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const V2 = `25 20 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
`;
const V1_COMOUNTED = `30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
33 25 0:29 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
34 25 0:30 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset
`;

test("this host's hybrid layout is detected with v1 controllers and the cgroup2 mount", () => {
  const l = layoutFromMounts(parseCgroupMounts(HYBRID), () => ["hugetlb"]);
  assert.equal(l.mode, "hybrid");
  assert.equal(l.v1.cpu, "/sys/fs/cgroup/cpu");
  assert.equal(l.v1.cpuacct, "/sys/fs/cgroup/cpuacct");
  assert.equal(l.unified, "/sys/fs/cgroup/unified");
  assert.deepEqual(l.v2Controllers, ["hugetlb"]);
});

test("a pure cgroup2 mount is detected as v2 with its controllers", () => {
  const l = layoutFromMounts(parseCgroupMounts(V2), (mp) => (mp === "/sys/fs/cgroup" ? ["cpuset", "cpu", "io", "memory", "pids"] : []));
  assert.equal(l.mode, "v2");
  assert.deepEqual(l.v1, {});
  assert.ok(l.v2Controllers.includes("memory"));
});

test("comounted v1 controllers share one hierarchy and mode is v1 without cgroup2", () => {
  const l = layoutFromMounts(parseCgroupMounts(V1_COMOUNTED), () => []);
  assert.equal(l.mode, "v1");
  assert.equal(l.v1.cpu, "/sys/fs/cgroup/cpu,cpuacct");
  assert.equal(l.v1.cpuacct, "/sys/fs/cgroup/cpu,cpuacct");
  assert.equal(l.unified, undefined);
});

test("a process's cgroup path names its cell and executable leaf", () => {
  assert.deepEqual(parseCellPath("/aurae/a/b/_/web", "aurae"), { cellPath: "a/b", executable: "web" });
  assert.deepEqual(parseCellPath("/aurae/_executables/_/x", "aurae"), { cellPath: "_executables", executable: "x" });
  assert.deepEqual(parseCellPath("/aurae/a/_", "aurae"), { cellPath: "a", executable: undefined });
  assert.equal(parseCellPath("/other/a/_/x", "aurae"), undefined);
  assert.equal(parseCellPath("/aurae/a", "aurae"), undefined);
});
