import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCpuList, isSubset, formatCpuList } from "../../src/platform/cgroups/cpulist.js";
import { checkCpu, cpuWritesV1, cpuWritesV2, weightToShares, checkV1RatioWithin } from "../../src/platform/cgroups/controllers/cpu.js";
import { checkCpuset, checkWithinParent, cpusetWrites } from "../../src/platform/cgroups/controllers/cpuset.js";
import { checkMemory, memoryWritesV1, memoryWritesV2 } from "../../src/platform/cgroups/controllers/memory.js";
import { checkPids, pidsWrites } from "../../src/platform/cgroups/controllers/pids.js";
import { CgroupLimitError } from "../../src/platform/cgroups/limits.js";

const files = (ws: { file: string; value: string }[]) => Object.fromEntries(ws.map((w) => [w.file, w.value]));

test("cpu lists with multi-digit numbers and ranges parse into merged ranges", () => {
  assert.deepEqual(parseCpuList("0-3,8,10-11"), [[0, 3], [8, 8], [10, 11]]);
  assert.deepEqual(parseCpuList("12,10-11,3,0-2"), [[0, 3], [10, 12]]);
  assert.equal(formatCpuList(parseCpuList("1,0,2")), "0-2");
  for (const bad of ["a", "1-", "-1", "3-1", "1,,2", "1 2", "99999999"]) {
    assert.throws(() => parseCpuList(bad), Error, bad);
  }
  assert.ok(isSubset(parseCpuList("10-11"), parseCpuList("0-3,8,10-11")));
  assert.ok(!isSubset(parseCpuList("4"), parseCpuList("0-3,8,10-11")));
  assert.ok(!isSubset(parseCpuList("3-8"), parseCpuList("0-3,8")));
});

test("cpu weight is written as is on v2 and as the kernel's shares on v1", () => {
  assert.deepEqual(files(cpuWritesV2({ weight: 10000 })), { "cpu.weight": "10000" });
  assert.deepEqual(files(cpuWritesV1({ weight: 100 })), { "cpu.shares": "1024" });
  assert.equal(weightToShares(1), 10);
  assert.equal(weightToShares(10000), 102400);
});

test("cpu max and period become cpu.max on v2 and cfs period then quota on v1", () => {
  assert.deepEqual(files(cpuWritesV2({ maxUs: 20000 })), { "cpu.max": "20000 100000" });
  assert.deepEqual(files(cpuWritesV2({ maxUs: 5000, periodUs: 10000 })), { "cpu.max": "5000 10000" });
  assert.deepEqual(files(cpuWritesV2({ periodUs: 50000 })), { "cpu.max": "max 50000" });
  const v1 = cpuWritesV1({ maxUs: 20000, periodUs: 50000 });
  assert.deepEqual(v1.map((w) => w.file), ["cpu.cfs_period_us", "cpu.cfs_quota_us"]);
  assert.deepEqual(files(v1), { "cpu.cfs_period_us": "50000", "cpu.cfs_quota_us": "20000" });
  assert.deepEqual(files(cpuWritesV1({ maxUs: 20000 })), { "cpu.cfs_quota_us": "20000" }, "a new cgroup has the default period");
});

test("cpu values the kernel would refuse are rejected naming the field", () => {
  for (const [limits, field] of [
    [{ weight: 0 }, "cpu.weight"],
    [{ weight: 10001 }, "cpu.weight"],
    [{ maxUs: 999 }, "cpu.max"],
    [{ maxUs: -1 }, "cpu.max"],
    [{ maxUs: 2 ** 44 }, "cpu.max"],
    [{ periodUs: 999 }, "cpu.period"],
    [{ periodUs: 1_000_001 }, "cpu.period"],
  ] as const) {
    assert.throws(() => checkCpu(limits), (e: unknown) => e instanceof CgroupLimitError && e.field === field && e.message.startsWith(field));
  }
  checkCpu({ weight: 1, maxUs: 1000, periodUs: 1000 });
  checkCpu({ weight: 10000, periodUs: 1_000_000 });
});

test("a v1 child quota above its ancestor's ratio is refused, equal or lower is allowed", () => {
  const parent = { quotaUs: 20000, periodUs: 100000 };
  assert.throws(() => checkV1RatioWithin({ maxUs: 30000 }, parent), CgroupLimitError);
  assert.throws(() => checkV1RatioWithin({ maxUs: 3000, periodUs: 10000 }, parent), CgroupLimitError);
  checkV1RatioWithin({ maxUs: 20000 }, parent);
  checkV1RatioWithin({ maxUs: 1000, periodUs: 10000 }, parent);
  checkV1RatioWithin({ maxUs: 900000 }, undefined);
});

test("cpuset lists are validated, normalised and must lie within the parent's set", () => {
  assert.deepEqual(files(cpusetWrites({ cpus: "1,0", mems: "0" })), { "cpuset.cpus": "0-1", "cpuset.mems": "0" });
  assert.throws(() => checkCpuset({ cpus: "" }), /cpuset.cpus must not be empty/);
  assert.throws(() => checkCpuset({ mems: "x" }), /cpuset.mems 'x' is not a valid list/);
  checkWithinParent("cpuset.cpus", "10-11", "0-3,8,10-11");
  assert.throws(() => checkWithinParent("cpuset.cpus", "0-4", "0-3"), /not within the parent's set '0-3'/);
});

test("memory writes all four files on v2 and maps max and low on v1", () => {
  const m = { minBytes: 1, lowBytes: 2, highBytes: 3, maxBytes: 4 };
  assert.deepEqual(files(memoryWritesV2(m)), { "memory.min": "1", "memory.low": "2", "memory.high": "3", "memory.max": "4" });
  assert.deepEqual(files(memoryWritesV1({ lowBytes: 2, maxBytes: 4 }, "hybrid")), {
    "memory.soft_limit_in_bytes": "2",
    "memory.limit_in_bytes": "4",
  });
});

test("memory min and high are refused on v1 naming the field and the host's mode", () => {
  for (const field of ["min", "high"] as const) {
    assert.throws(
      () => memoryWritesV1({ [`${field}Bytes`]: 1 }, "hybrid"),
      (e: unknown) => e instanceof CgroupLimitError && e.reason === "unsupported" && e.field === `memory.${field}` && /hybrid/.test(e.message),
    );
  }
  assert.throws(() => checkMemory({ maxBytes: -1 }), /memory.max -1 bytes is outside/);
});

test("pids max accepts the kernel's range only", () => {
  assert.deepEqual(files(pidsWrites({ max: 10 })), { "pids.max": "10" });
  checkPids({ max: 0 });
  checkPids({ max: 4194304 });
  assert.throws(() => checkPids({ max: 4194305 }), /pids.max/);
  assert.throws(() => checkPids({ max: -1 }), /pids.max/);
});
