/**
 * VMs survive the daemon: after `kill -9` of the daemon a running VM's QEMU keeps running, and
 * the restarted daemon re-adopts it (List: running, same address; the guest answers; Stop
 * powers it off; Free leaves nothing). A VM whose QEMU dies while no daemon runs shows as
 * stopped after the next restart and boots again; SIGTERM with --keep-workloads leaves a VM
 * running for the next daemon; an allocated VM stays allocated; one that was starting is
 * stopped with its QEMU; a VM cell without a record is freed. Three boots.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { VirtualMachine, VmServiceClient } from "../../src/api/aurae/vms/v0/vms.js";
import { detectCgroupLayout } from "../../src/platform/cgroups/layout.js";
import { forceRemoveCgroupTree } from "../../src/platform/cgroups/cleanup.js";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { call, guestClients, qemuProcesses, removeTestImage, testImage, vmSkipReason } from "../helpers/vms.js";

const SKIP = vmSkipReason() || (fs.existsSync(path.resolve(import.meta.dirname, "../../bin/auraed.js")) ? false : "bin/auraed.js missing");

describe("VMs across a daemon restart", { skip: SKIP, timeout: 600_000 }, () => {
  let d: TestDaemon;
  let vms: InstanceType<typeof VmServiceClient>;
  let kernel = "";
  const id = `keep-${process.pid}`;
  const idle = `idle-${process.pid}`;

  const connect = (daemon: TestDaemon) => {
    vms?.close();
    vms = new VmServiceClient(daemon.target, daemon.credentials, daemon.clientOptions);
  };
  const listed = async (vmId: string) => (await call(vms, vms.list, {})).machines.find((m) => m.id === vmId);
  const restart = async () => {
    await d.kill9();
    d = await startDaemon({ restartOf: d, stopGraceMs: 2000 });
    connect(d);
  };

  before(async () => {
    kernel = (await testImage()).kernel;
    d = await startDaemon({ stopGraceMs: 2000 });
    connect(d);
  });

  after(async () => {
    vms?.close();
    // whatever happened: no daemon, no QEMU, no cgroup, no file of this test stays
    await d?.kill9();
    for (const pid of qemuProcesses(`-${process.pid}/`)) process.kill(pid, "SIGKILL");
    if (d) {
      assert.deepEqual(await forceRemoveCgroupTree(detectCgroupLayout(), d.cgroupParent), [], "test cleanup");
      fs.rmSync(d.dir, { recursive: true, force: true });
    }
    await removeTestImage();
  });

  test("a running VM is re-adopted after kill -9; one that died meanwhile is stopped and boots again", async () => {
    await call(vms, vms.allocate, { machine: VirtualMachine.fromPartial({ id, memSizeMb: 512, vcpuCount: 1, kernelImgPath: kernel }) });
    await call(vms, vms.allocate, { machine: VirtualMachine.fromPartial({ id: idle, memSizeMb: 256, vcpuCount: 1, kernelImgPath: kernel }) });
    const { auraedAddress } = await call(vms, vms.start, { vmId: id });
    const qemu = qemuProcesses(`vms/${id}/`);
    assert.equal(qemu.length, 1, "one QEMU");

    // the daemon dies; the VM does not
    await restart();
    assert.deepEqual(qemuProcesses(`vms/${id}/`), qemu, "the same QEMU still runs");
    const back = await listed(id);
    assert.equal(back?.status, "running", "status from QMP again");
    assert.equal(back?.auraedAddress, auraedAddress, "the same address");
    assert.equal((await listed(idle))?.status, "allocated", "an allocated VM stays allocated");
    assert.ok(d.logs.some((l) => /vm '.*' re-adopted, running/.test(l)), "the daemon says it re-adopted the VM");
    const g = await guestClients(auraedAddress);
    try {
      assert.equal((await call(g.discovery, g.discovery.discover, {})).healthy, true, "the guest answers through the same forward");
    } finally {
      g.close();
    }

    // the daemon dies again, and QEMU dies while no daemon runs
    await d.kill9();
    for (const pid of qemu) process.kill(pid, "SIGKILL");
    while (qemuProcesses(`vms/${id}/`).length > 0) await new Promise((r) => setTimeout(r, 50));
    d = await startDaemon({ restartOf: d, stopGraceMs: 2000, args: ["--keep-workloads"] });
    connect(d);
    const dead = await listed(id);
    assert.equal(dead?.status, "stopped", "a QEMU that ended while the daemon was down is a stopped VM");
    assert.equal(dead?.auraedAddress, "");

    // it boots again; an upgrade (SIGTERM with --keep-workloads) leaves it running for the next
    // daemon, which re-adopts it; then Stop and Free work on it, and nothing is left
    const again = await call(vms, vms.start, { vmId: id });
    assert.match(again.auraedAddress, /^127\.0\.0\.1:\d+$/);
    const second = qemuProcesses(`vms/${id}/`);
    const exit = new Promise((res) => d.process.once("exit", (code) => res(code)));
    d.process.kill("SIGTERM");
    assert.equal(await exit, 0, "a clean exit");
    assert.deepEqual(qemuProcesses(`vms/${id}/`), second, "--keep-workloads left QEMU running");
    d = await startDaemon({ restartOf: d, stopGraceMs: 2000 });
    connect(d);
    const upgraded = await listed(id);
    assert.equal(upgraded?.status, "running", "re-adopted after the upgrade");
    assert.equal(upgraded?.auraedAddress, again.auraedAddress);
    await call(vms, vms.stop, { vmId: id });
    assert.equal((await listed(id))?.status, "stopped");
    await call(vms, vms.free, { vmId: id });
    await call(vms, vms.free, { vmId: idle });
    assert.deepEqual((await call(vms, vms.list, {})).machines, []);
    assert.deepEqual(qemuProcesses(`vms/${id}/`), [], "no QEMU process");
    assert.deepEqual(fs.readdirSync(path.join(d.dir, "run", "state", "vms")), [], "no VM record");
    assert.ok(!fs.existsSync(path.join(d.dir, "run", "vms", id)), "no runtime files");
  });

  test("a VM that was starting when the daemon died is stopped, its QEMU with it, and starts again", async () => {
    const booting = `boot-${process.pid}`;
    await call(vms, vms.allocate, { machine: VirtualMachine.fromPartial({ id: booting, memSizeMb: 512, vcpuCount: 1, kernelImgPath: kernel }) });
    const pending = call(vms, vms.start, { vmId: booting }).catch((e: Error) => e);
    // QEMU runs and its executable is recorded (a kill before the record leaves a QEMU the next
    // daemon removes as a leftover: stopped too, by another path than the one tested here)
    const exes = path.join(d.dir, "run", "state", "executables");
    const recorded = () =>
      fs.existsSync(exes) &&
      fs.readdirSync(exes).some((e) => e.startsWith(`${encodeURIComponent(`_vms/${booting}`)}~qemu-`) && fs.existsSync(path.join(exes, e, "executable.json")));
    while (qemuProcesses(`vms/${booting}/`).length === 0 || !recorded()) await new Promise((r) => setTimeout(r, 20));
    await restart();
    assert.ok((await pending) instanceof Error, "the Start call failed with its daemon");
    assert.equal((await listed(booting))?.status, "stopped");
    assert.deepEqual(qemuProcesses(`vms/${booting}/`), [], "its QEMU was stopped");
    assert.ok(d.logs.some((l) => /was starting when the daemon stopped: stopping its QEMU/.test(l)), "by the restarted daemon, which says so");
    const { auraedAddress } = await call(vms, vms.start, { vmId: booting });
    assert.match(auraedAddress, /^127\.0\.0\.1:\d+$/, "it boots again (no stale QEMU holds its name or files)");
    await call(vms, vms.stop, { vmId: booting });
    await call(vms, vms.free, { vmId: booting });
    assert.deepEqual(qemuProcesses(`vms/${booting}/`), []);
  });

  test("a VM cell that no record explains is freed at start", async () => {
    const orphan = `orphan-${process.pid}`;
    await call(vms, vms.allocate, { machine: VirtualMachine.fromPartial({ id: orphan, memSizeMb: 256, vcpuCount: 1, kernelImgPath: kernel }) });
    await d.kill9();
    fs.rmSync(path.join(d.dir, "run", "state", "vms", `${orphan}.json`));
    d = await startDaemon({ restartOf: d, stopGraceMs: 2000 });
    connect(d);
    assert.deepEqual((await call(vms, vms.list, {})).machines, []);
    assert.ok(d.logs.some((l) => l.includes(`vm cell '${orphan}' has no record: freeing it`)));
    const leftovers = ["memory", "cpu", "pids", "unified"].map((c) => path.join("/sys/fs/cgroup", c, d.cgroupParent, "_vms", orphan)).filter((p) => fs.existsSync(p));
    assert.deepEqual(leftovers, [], "its cgroups are gone");
  });
});
