import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { AuraeError } from "../../src/daemon/errors.js";
import { cellOfCgroupPath, isCellWithin } from "../../src/daemon/observe/cell-of-cgroup.js";
import { SignalHub } from "../../src/daemon/observe/signal-hub.js";
import type { ExecutableDirectory } from "../../src/daemon/observe/ports.js";
import { parseSignalsStreamRequest, parseSubProcessStreamRequest } from "../../src/daemon/observe/validation.js";
import { CgroupIndex, readCgroupMounts } from "../../src/platform/ebpf/cgroup-index.js";
import { EbpfUnavailableError, type RawSignalEvent } from "../../src/platform/ebpf/signal-tracer.js";
import { LogChannelType, WorkloadType } from "../../src/api/aurae/observe/v0/observe.js";

function event(p: Partial<RawSignalEvent> & { pid: number; cgroup?: string }): RawSignalEvent {
  return {
    signal: p.signal ?? 15,
    result: 0,
    tid: p.pid,
    level: p.level ?? 0,
    tgids: p.tgids ?? [p.pid, 0, 0, 0],
    senderTgid: 1,
    cgroupV2Id: 0n,
    cgroupV1Ids: [],
    // the fake resolver below reads the path from here
    ...({ cgroup: p.cgroup } as object),
  };
}

const noDirectory: ExecutableDirectory = { findByPid: () => undefined, hasCell: () => true, describeHostPid: () => undefined };

function hub(opts: { directory?: ExecutableDirectory; queueLimit?: number; daemonPidLevel?: number } = {}) {
  let emit: ((e: RawSignalEvent) => void) | undefined;
  const counts = { starts: 0, stops: 0 };
  const h = new SignalHub({
    start: (onEvent) => {
      counts.starts++;
      emit = onEvent;
      return { stop: () => { counts.stops++; emit = undefined; } };
    },
    resolveCgroup: (e) => (e as unknown as { cgroup?: string }).cgroup,
    directory: opts.directory ?? noDirectory,
    queueLimit: opts.queueLimit,
    daemonPidLevel: opts.daemonPidLevel,
  });
  return { h, counts, emit: (e: RawSignalEvent) => emit?.(e) };
}

test("the cell of a cgroup path is its leading run of cell labels", () => {
  assert.equal(cellOfCgroupPath("c1/_"), "c1");
  assert.equal(cellOfCgroupPath("a/b/_"), "a/b");
  assert.equal(cellOfCgroupPath("a/b"), "a/b");
  assert.equal(cellOfCgroupPath("a/_/x"), "a");
  assert.equal(cellOfCgroupPath("_"), undefined);
  assert.equal(cellOfCgroupPath("a/b/_/exe-1"), "a/b");
  assert.equal(cellOfCgroupPath("_executables/_/x"), "_executables");
  assert.equal(cellOfCgroupPath("a/_b"), "a");
  assert.equal(cellOfCgroupPath(""), undefined);
  assert.ok(isCellWithin("a/b", "a"));
  assert.ok(isCellWithin("a", "a"));
  assert.ok(!isCellWithin("ab", "a"));
});

test("the cgroup index maps directory inode numbers under the subtree to relative paths, on v2 then v1", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `observe-cgidx-${process.pid}-`));
  try {
    const v2 = path.join(root, "unified");
    const mem = path.join(root, "memory");
    for (const d of [`${v2}/p/c1/_`, `${mem}/p/c2/n/_`, `${v2}/elsewhere`]) fs.mkdirSync(d, { recursive: true });
    const ino = (p: string) => fs.statSync(p, { bigint: true }).ino;
    const idx = new CgroupIndex("p", { v2, v1BySubsys: [undefined, mem] });
    assert.equal(idx.resolve({ cgroupV2Id: ino(`${v2}/p/c1/_`), cgroupV1Ids: [0n, 1n] }), "c1/_");
    assert.equal(idx.resolve({ cgroupV2Id: ino(`${v2}/elsewhere`), cgroupV1Ids: [0n, ino(`${mem}/p/c2/n/_`)] }), "c2/n/_");
    assert.equal(idx.resolve({ cgroupV2Id: ino(`${v2}/elsewhere`), cgroupV1Ids: [] }), undefined);
    // a cgroup made after the first walk is found on the next miss
    fs.mkdirSync(`${v2}/p/c3`);
    assert.equal(idx.resolve({ cgroupV2Id: ino(`${v2}/p/c3`), cgroupV1Ids: [] }), "c3");
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("cgroup mounts are read from mountinfo with v1 hierarchies in /proc/cgroups order", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `observe-mnt-${process.pid}-`));
  try {
    fs.writeFileSync(`${root}/mountinfo`, [
      "30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw",
      "31 25 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu",
      "32 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
      "33 25 0:28 /sub /mnt/bind rw - cgroup cgroup rw,pids",
    ].join("\n"));
    fs.writeFileSync(`${root}/cgroups`, "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t1\t1\nnet_cls\t0\t1\t1\nmemory\t4\t5\t1\npids\t8\t1\t1\n");
    const m = readCgroupMounts(`${root}/mountinfo`, `${root}/cgroups`);
    assert.equal(m.v2, "/sys/fs/cgroup/unified");
    assert.deepEqual(m.v1BySubsys, ["/sys/fs/cgroup/cpu", undefined, "/sys/fs/cgroup/memory", undefined]);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("one source serves every subscriber; it starts with the first and stops after the last", () => {
  const { h, counts } = hub();
  const a = h.subscribe();
  const b = h.subscribe({ cellName: "c1" });
  assert.deepEqual(counts, { starts: 1, stops: 0 });
  a.close();
  assert.equal(counts.stops, 0);
  b.close();
  assert.deepEqual(counts, { starts: 1, stops: 1 });
  h.subscribe().close();
  assert.deepEqual(counts, { starts: 2, stops: 2 });
});

test("a cell subscriber gets signals of its cell and descendants, the host subscriber all", () => {
  const { h, emit } = hub();
  const all = h.subscribe();
  const c1 = h.subscribe({ cellName: "c1" });
  const n = h.subscribe({ cellName: "c1/n" });
  emit(event({ pid: 10, cgroup: "c1/_" }));
  emit(event({ pid: 11, cgroup: "c1/n/_" }));
  emit(event({ pid: 12, cgroup: "c2/_" }));
  emit(event({ pid: 13 }));
  const pids = (s: ReturnType<typeof h.subscribe>) => s.take()!.map((x) => `${x.pid}:${x.cellName}`);
  assert.deepEqual(pids(all), ["10:c1", "11:c1/n", "12:c2", "13:"]);
  assert.deepEqual(pids(c1), ["10:c1", "11:c1/n"]);
  assert.deepEqual(pids(n), ["11:c1/n"]);
});

test("pids are reported as Start reports them: the directory's answer, else the namespace pid", () => {
  const directory: ExecutableDirectory = {
    ...noDirectory,
    describeHostPid: (pid) => (pid === 500 ? { cellName: "iso", reportedPid: 7 } : undefined),
  };
  const { h } = hub({ directory });
  // alive and known to the cells service
  assert.deepEqual(h.translate(event({ pid: 500, level: 1, tgids: [500, 7, 0, 0], cgroup: "iso/_" })), { signal: 15, pid: 7, cellName: "iso" });
  // gone already: the pid in its own namespace, the cell from the kernel's cgroup
  assert.deepEqual(h.translate(event({ pid: 501, level: 1, tgids: [501, 3, 0, 0], cgroup: "iso/_" })), { signal: 15, pid: 3, cellName: "iso" });
  // a daemon in a pid namespace sees pids at its own level; deeper ones are not visible
  const nested = hub({ daemonPidLevel: 1 }).h;
  assert.deepEqual(nested.translate(event({ pid: 900, level: 1, tgids: [900, 42, 0, 0] })), { signal: 15, pid: 42, cellName: "" });
  assert.equal(nested.translate(event({ pid: 901, level: 0, tgids: [901, 0, 0, 0] })), undefined);
});

test("a subscriber that falls behind loses the oldest signals and counts them", () => {
  const { h, emit } = hub({ queueLimit: 3 });
  const s = h.subscribe();
  for (let i = 1; i <= 5; i++) emit(event({ pid: i }));
  assert.deepEqual(s.take()!.map((x) => x.pid), [3, 4, 5]);
  assert.equal(s.dropped, 2);
});

test("a source that cannot start is UNAVAILABLE naming the reason, and later subscribers retry", () => {
  let fail = true;
  const h = new SignalHub({
    start: () => {
      if (fail) throw new EbpfUnavailableError("the kernel has no BTF");
      return { stop: () => {} };
    },
    resolveCgroup: () => undefined,
    directory: noDirectory,
  });
  assert.throws(() => h.subscribe(), (e: unknown) => e instanceof AuraeError && e.kind === "unavailable" && /no BTF/.test(e.message));
  fail = false;
  h.subscribe().close();
});

test("shutdown ends every subscription and stops the source", async () => {
  const { h, counts } = hub();
  const s = h.subscribe();
  const waiting = s.wait();
  h.shutdown();
  await waiting;
  assert.equal(s.take(), null);
  assert.equal(counts.stops, 1);
  assert.throws(() => h.subscribe(), (e: unknown) => e instanceof AuraeError && e.kind === "unavailable");
});

test("requests are validated: channels, pids and workloads", () => {
  const inv = (fn: () => unknown, kind = "invalid_argument") =>
    assert.throws(fn, (e: unknown) => e instanceof AuraeError && e.kind === kind);
  assert.deepEqual(parseSubProcessStreamRequest({ processId: 5, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDERR }), {
    pid: 5,
    channel: "stderr",
    cellName: undefined,
    maxLinesPerMessage: 0,
  });
  assert.equal(parseSubProcessStreamRequest({ processId: 5, channelType: 1, maxLinesPerMessage: 100 }).maxLinesPerMessage, 100);
  assert.equal(parseSubProcessStreamRequest({ processId: 5, channelType: 1, cellName: "a/b" }).cellName, "a/b");
  inv(() => parseSubProcessStreamRequest({ processId: 5, channelType: LogChannelType.LOG_CHANNEL_TYPE_UNSPECIFIED }));
  inv(() => parseSubProcessStreamRequest({ processId: 5, channelType: 3 as LogChannelType }));
  inv(() => parseSubProcessStreamRequest({ processId: 0, channelType: 1 }));
  assert.deepEqual(parseSignalsStreamRequest({ workload: undefined }), {});
  assert.deepEqual(parseSignalsStreamRequest({ workload: { workloadType: WorkloadType.WORKLOAD_TYPE_UNSPECIFIED, id: "" } }), {});
  assert.deepEqual(parseSignalsStreamRequest({ workload: { workloadType: WorkloadType.WORKLOAD_TYPE_CELL, id: "a" } }), { cellName: "a" });
  inv(() => parseSignalsStreamRequest({ workload: { workloadType: WorkloadType.WORKLOAD_TYPE_CELL, id: "" } }));
  inv(() => parseSignalsStreamRequest({ workload: { workloadType: WorkloadType.WORKLOAD_TYPE_UNSPECIFIED, id: "x" } }));
  inv(() => parseSignalsStreamRequest({ workload: { workloadType: WorkloadType.WORKLOAD_TYPE_VM, id: "v" } }), "unimplemented");
  inv(() => parseSignalsStreamRequest({ workload: { workloadType: WorkloadType.WORKLOAD_TYPE_POD_SANDBOX, id: "p" } }), "unimplemented");
});
