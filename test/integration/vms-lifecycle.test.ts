/**
 * VmService in the real daemon (bin/auraed.js over mTLS) with real QEMU micro-VMs (TCG here).
 * Covers validation and status codes, QEMU in its own cell with the cell's limits, List status
 * read from QMP, drive mounts seen in the guest, a guest kernel crash showing as stopped, Stop
 * while starting, and the daemon's graceful shutdown stopping and freeing every VM.
 *
 * Boots are the costly part under TCG (~13 s each): one run of `vm1` is shared by the tests
 * that need a running VM (each boots it if it is not running, so any one of them runs alone),
 * the crash ends that run, and the shutdown test boots it once more.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import { Cell } from "../../src/api/aurae/cells/v0/cells.js";
import { VirtualMachine, VmServiceClient, type VirtualMachineSummary } from "../../src/api/aurae/vms/v0/vms.js";
import { detectCgroupLayout } from "../../src/platform/cgroups/layout.js";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { call, guestClients, makeExt4Image, processOutput, qemuProcesses, removeTestImage, testImage, vmSkipReason } from "../helpers/vms.js";

const SKIP = vmSkipReason();

const expectCode = (code: status, re: RegExp) => (e: unknown) => {
  const se = e as ServiceError;
  if (se.code === code && re.test(se.details)) return true;
  return assert.fail(`expected ${status[code]} matching ${re}, got ${status[se.code]}: ${se.details}`);
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A VM cell's cgroup files on this host, v1 (hybrid hosts like ours) or v2. */
function cellCgroup(cgroupParent: string, id: string) {
  const layout = detectCgroupLayout();
  const rel = path.join(cgroupParent, "_vms", id);
  const v1 = layout.mode !== "v2" && !!layout.v1.memory;
  const memDir = v1 ? path.join(layout.v1.memory!, rel) : path.join(layout.unified!, rel);
  const cpuDir = v1 ? path.join(layout.v1.cpu!, rel) : memDir;
  const acctDir = v1 ? path.join(layout.v1.cpuacct ?? layout.v1.cpu!, rel) : memDir;
  const num = (p: string) => Number(fs.readFileSync(p, "utf8").trim());
  return {
    dirs: [...new Set([memDir, cpuDir, acctDir])],
    memoryMax: () => num(path.join(memDir, v1 ? "memory.limit_in_bytes" : "memory.max")),
    memoryUsage: () => num(path.join(memDir, v1 ? "memory.usage_in_bytes" : "memory.current")),
    cpuQuota: () => (v1
      ? `${num(path.join(cpuDir, "cpu.cfs_quota_us"))} ${num(path.join(cpuDir, "cpu.cfs_period_us"))}`
      : fs.readFileSync(path.join(cpuDir, "cpu.max"), "utf8").trim()),
    /** CPU time charged to the cell, in seconds */
    cpuSeconds: () => (v1
      ? num(path.join(acctDir, "cpuacct.usage")) / 1e9
      : Number(/usage_usec (\d+)/.exec(fs.readFileSync(path.join(acctDir, "cpu.stat"), "utf8"))![1]) / 1e6),
    /** every pid in the cell's memory cgroup and its leaves */
    pids: (): number[] => {
      const out: number[] = [];
      const walk = (d: string) => {
        for (const f of ["cgroup.procs"]) {
          try { out.push(...fs.readFileSync(path.join(d, f), "utf8").split("\n").filter(Boolean).map(Number)); } catch { /* gone */ }
        }
        for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
      };
      walk(memDir);
      return out;
    },
  };
}

/** QEMU's own CPU time (all its threads, from /proc/<pid>/stat), in seconds. */
function processCpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  // fields after "(comm) ": state is [0]; utime is field 14 of stat, i.e. [11]; stime [12]
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
}

describe("VmService in the daemon, with QEMU micro-VMs", { skip: SKIP, timeout: 900_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aurae-vms-"));
  let d: TestDaemon;
  let client: InstanceType<typeof VmServiceClient>;
  let kernel = "";
  let disk = "";
  const v = {
    allocate: (m: Partial<VirtualMachine>) => call(client, client.allocate, { machine: VirtualMachine.fromPartial(m) }),
    start: (vmId: string) => call(client, client.start, { vmId }),
    stop: (vmId: string) => call(client, client.stop, { vmId }),
    free: (vmId: string) => call(client, client.free, { vmId }),
    list: async () => (await call(client, client.list, {})).machines,
  };
  const statusOf = async (id: string): Promise<VirtualMachineSummary | undefined> => (await v.list()).find((m) => m.id === id);
  const vm1Spec = () => ({
    id: "vm1", memSizeMb: 512, vcpuCount: 1, kernelImgPath: kernel,
    driveMounts: [{ imagePath: disk, vmPath: "/data", fsType: "ext4", readOnly: true }],
  });
  const runDir = (id: string) => path.join(d.dir, "run", "vms", id);
  const qemuOf = (id: string) => qemuProcesses(path.join(runDir(id), "qmp.sock"));

  /** vm1 running (allocated and started when needed); resolves with its guest address. */
  let vm1Address = "";
  async function runningVm1(): Promise<string> {
    const st = await statusOf("vm1");
    if (!st) await v.allocate(vm1Spec());
    if (st?.status === "running" && vm1Address) return vm1Address;
    const t0 = performance.now();
    vm1Address = (await v.start("vm1")).auraedAddress;
    process.stderr.write(`# vm1 Start to guest ready: ${Math.round(performance.now() - t0)} ms\n`);
    return vm1Address;
  }

  before(async () => {
    kernel = (await testImage()).kernel;
    disk = path.join(dir, "data.ext4");
    makeExt4Image(disk, "hello from the host\n");
    d = await startDaemon({ stopGraceMs: 2000 });
    client = new VmServiceClient(d.target, d.credentials, d.clientOptions);
  });

  after(async () => {
    client?.close();
    await d?.stop();
    await removeTestImage();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("Allocate rejects bad specs with INVALID_ARGUMENT naming the field", async () => {
    const ok = { id: "ok", memSizeMb: 256, vcpuCount: 1, kernelImgPath: kernel };
    const hostMiB = Math.floor(os.totalmem() / 1048576);
    await assert.rejects(v.allocate({ ...ok, id: "Bad_Id" }), expectCode(status.INVALID_ARGUMENT, /machine\.id .*DNS label/));
    await assert.rejects(v.allocate({ ...ok, id: "" }), expectCode(status.INVALID_ARGUMENT, /machine\.id must not be empty/));
    await assert.rejects(v.allocate({ ...ok, memSizeMb: 63 }), expectCode(status.INVALID_ARGUMENT, /mem_size_mb 63 must be 64\.\./));
    // 4096 GiB: Aurae's 32-bit arithmetic wrapped here; ours compares in 64 bits and refuses.
    await assert.rejects(v.allocate({ ...ok, memSizeMb: 4096 * 1024 }), expectCode(status.INVALID_ARGUMENT, new RegExp(`must be 64\\.\\.${hostMiB}`)));
    await assert.rejects(v.allocate({ ...ok, vcpuCount: 0 }), expectCode(status.INVALID_ARGUMENT, /vcpu_count 0 must be 1\.\./));
    await assert.rejects(v.allocate({ ...ok, vcpuCount: os.availableParallelism() + 1 }), expectCode(status.INVALID_ARGUMENT, /vcpu_count/));
    await assert.rejects(v.allocate({ ...ok, kernelImgPath: "/nonexistent/vmlinux" }), expectCode(status.INVALID_ARGUMENT, /kernel_img_path '\/nonexistent\/vmlinux' does not exist/));
    await assert.rejects(v.allocate({ ...ok, kernelImgPath: "relative" }), expectCode(status.INVALID_ARGUMENT, /absolute path/));
    await assert.rejects(v.allocate({ ...ok, rootDrive: { imagePath: disk, readOnly: false } }), expectCode(status.INVALID_ARGUMENT, /root_drive.*not an initramfs/));
    await assert.rejects(v.allocate({ ...ok, driveMounts: [{ imagePath: "/nonexistent.img", vmPath: "/data", fsType: "ext4", readOnly: true }] }), expectCode(status.INVALID_ARGUMENT, /drive_mounts\[0\]\.image_path .*does not exist/));
    await assert.rejects(v.allocate({ ...ok, driveMounts: [{ imagePath: disk, vmPath: "/proc/x", fsType: "ext4", readOnly: true }] }), expectCode(status.INVALID_ARGUMENT, /drive_mounts\[0\]\.vm_path .*inside \/proc/));
    await assert.rejects(v.allocate({ ...ok, driveMounts: [{ imagePath: disk, vmPath: "/d", fsType: "ntfs", readOnly: true }] }), expectCode(status.INVALID_ARGUMENT, /fs_type 'ntfs' is not supported/));
    await assert.rejects(v.allocate({ ...ok, kernelArgs: ["aurae.iface=x"] }), expectCode(status.INVALID_ARGUMENT, /kernel_args\[0\].*reserved/));
    await assert.rejects(v.allocate({ ...ok, kernelArgs: ["a b"] }), expectCode(status.INVALID_ARGUMENT, /kernel_args\[0\] must be one word/));
    await assert.rejects(v.start("Bad_Id"), expectCode(status.INVALID_ARGUMENT, /vm_id 'Bad_Id'/));
    assert.deepEqual(await v.list(), [], "nothing was allocated");
  });

  test("unknown ids are NOT_FOUND, a taken id ALREADY_EXISTS, a VM never started FAILED_PRECONDITION on Stop", async () => {
    for (const op of [v.start, v.stop, v.free]) await assert.rejects(op("nope"), expectCode(status.NOT_FOUND, /vm 'nope': not found/));
    await v.allocate({ id: "idle", memSizeMb: 128, vcpuCount: 1, kernelImgPath: kernel });
    await assert.rejects(v.allocate({ id: "idle", memSizeMb: 128, vcpuCount: 1, kernelImgPath: kernel }), expectCode(status.ALREADY_EXISTS, /vm 'idle': already exists/));
    await assert.rejects(v.stop("idle"), expectCode(status.FAILED_PRECONDITION, /never started/));
    const idle = await statusOf("idle");
    assert.equal(idle?.status, "allocated");
    assert.equal(idle?.auraedAddress, "");
    await v.free("idle");
    assert.equal(await statusOf("idle"), undefined);
    assert.ok(cellCgroup(d.cgroupParent, "idle").dirs.every((p) => !fs.existsSync(p)), "its cell is gone");
  });

  test("QEMU runs in the VM's own cell from its start: the cell's limits are set and its CPU and memory are charged there", async () => {
    await runningVm1();
    const cg = cellCgroup(d.cgroupParent, "vm1");
    assert.equal(cg.memoryMax(), (512 + 384) * 1048576, "memory limit: guest RAM plus QEMU's overhead");
    assert.match(cg.cpuQuota(), /^150000 100000$/, "CPU quota: one CPU per vCPU plus half for I/O");
    const [qemu, ...more] = qemuOf("vm1");
    assert.ok(qemu && more.length === 0, "one QEMU for the VM");
    assert.ok(cg.pids().includes(qemu), "QEMU's pid is in the VM's cell");
    // The guest's initramfs (~100 MB) sits in guest RAM, i.e. in QEMU's memory: charged to the cell.
    const usage = cg.memoryUsage();
    assert.ok(usage > 150 * 1048576 && usage <= cg.memoryMax(), `memory charged to the cell: ${(usage / 1048576).toFixed(0)} MiB`);
    // Every CPU second QEMU has used was charged to the cell: it never ran outside it.
    const own = processCpuSeconds(qemu);
    const charged = cg.cpuSeconds();
    assert.ok(own > 1 && charged >= own * 0.95, `CPU: QEMU used ${own.toFixed(2)} s, the cell was charged ${charged.toFixed(2)} s`);
  });

  test("List reports QEMU's own status over QMP: running, unresponsive while QEMU is frozen, running again", async () => {
    const address = await runningVm1();
    const listed = await statusOf("vm1");
    assert.equal(listed?.status, "running");
    assert.equal(listed?.auraedAddress, address);
    assert.match(address, /^127\.0\.0\.1:\d+$/);
    assert.equal(listed?.memSizeMb, 512);
    assert.equal(listed?.vcpuCount, 1);
    assert.equal(listed?.kernelImgPath, kernel);
    const [qemu] = qemuOf("vm1");
    process.kill(qemu!, "SIGSTOP");
    try {
      assert.equal((await statusOf("vm1"))?.status, "unresponsive", "a frozen QEMU does not answer query-status");
    } finally {
      process.kill(qemu!, "SIGCONT");
    }
    assert.equal((await statusOf("vm1"))?.status, "running");
  });

  test("a running VM refuses Start and Free with FAILED_PRECONDITION", async () => {
    await runningVm1();
    await assert.rejects(v.start("vm1"), expectCode(status.FAILED_PRECONDITION, /start vm 'vm1': it is running/));
    await assert.rejects(v.free("vm1"), expectCode(status.FAILED_PRECONDITION, /free vm 'vm1': it is running; stop it first/));
  });

  test("drive_mounts are mounted in the guest at vm_path with fs_type, read-only as asked", async () => {
    const g = await guestClients(await runningVm1());
    try {
      assert.equal((await call(g.discovery, g.discovery.discover, {})).healthy, true);
      await call(g.cells, g.cells.allocate, { cell: Cell.fromPartial({ name: "probe" }) });
      const started = await call(g.cells, g.cells.start, {
        cellName: "probe",
        executable: { name: "cat", command: "cat /data/hello.txt; grep ' /data ' /proc/mounts; touch /data/x 2>&1 || true", description: "" },
      });
      const out = await processOutput(g.observe, started.pid);
      assert.equal(out[0], "hello from the host", `the drive's file is readable at /data: ${out.join(" ; ")}`);
      assert.match(out[1] ?? "", /^\/dev\/vd\w+ \/data ext4 ro[, ]/, "mounted as ext4, read-only");
      assert.match(out[2] ?? "", /Read-only file system/, "writes are refused");
      await call(g.cells, g.cells.stop, { cellName: "probe", executableName: "cat" });
      await call(g.cells, g.cells.free, { cellName: "probe" });
    } finally {
      g.close();
    }
  });

  test("a guest kernel crash shows as stopped, without an address, and QEMU is gone", async () => {
    const g = await guestClients(await runningVm1());
    try {
      await call(g.cells, g.cells.allocate, { cell: Cell.fromPartial({ name: "crash" }) });
      await call(g.cells, g.cells.start, { cellName: "crash", executable: { name: "crash", command: "sleep 0.5; echo c > /proc/sysrq-trigger", description: "" } });
    } finally {
      g.close();
    }
    const deadline = Date.now() + 60_000;
    let st = await statusOf("vm1");
    while (st?.status !== "stopped" && Date.now() < deadline) {
      await sleep(200);
      st = await statusOf("vm1");
    }
    assert.equal(st?.status, "stopped", "a crashed guest shows as stopped");
    assert.equal(st?.auraedAddress, "");
    assert.match(fs.readFileSync(path.join(runDir("vm1"), "console.log"), "utf8"), /Kernel panic/, "the guest kernel did panic");
    const deadline2 = Date.now() + 10_000;
    while (qemuOf("vm1").length > 0 && Date.now() < deadline2) await sleep(100);
    assert.deepEqual(qemuOf("vm1"), [], "QEMU is gone");
    vm1Address = "";
  });

  test("Stop while starting aborts the Start with FAILED_PRECONDITION and leaves the VM stopped", async () => {
    if (!(await statusOf("vm1"))) await v.allocate(vm1Spec());
    const starting = v.start("vm1");
    const outcome = starting.then(() => "started", (e: ServiceError) => e);
    // Wait for QEMU to exist, so that the abort has something to stop.
    const deadline = Date.now() + 10_000;
    while (qemuOf("vm1").length === 0 && Date.now() < deadline) await sleep(20);
    assert.equal((await statusOf("vm1"))?.status, "starting");
    await v.stop("vm1");
    const r = await outcome;
    assert.notEqual(r, "started");
    expectCode(status.FAILED_PRECONDITION, /start vm 'vm1': stopped while starting/)(r);
    assert.equal((await statusOf("vm1"))?.status, "stopped");
    assert.deepEqual(qemuOf("vm1"), [], "QEMU is gone");
  });

  test("the daemon's graceful shutdown stops and frees every VM, leaving nothing on the host", async () => {
    await runningVm1();
    await v.allocate({ id: "never", memSizeMb: 128, vcpuCount: 1, kernelImgPath: kernel });
    assert.equal(qemuOf("vm1").length, 1);
    const cells = ["vm1", "never"].flatMap((id) => cellCgroup(d.cgroupParent, id).dirs);
    assert.ok(cells.every((p) => fs.existsSync(p)), "both VMs' cells exist");
    const consoleLog = path.join(runDir("vm1"), "console.log");
    let guestConsole = "";
    const watcher = setInterval(() => { try { guestConsole = fs.readFileSync(consoleLog, "utf8"); } catch { /* removed by Free */ } }, 20);
    const t0 = performance.now();
    const exited = new Promise<number | null>((r) => d.process.once("exit", (c) => r(c)));
    d.process.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([exited, new Promise<string>((r) => { timer = setTimeout(() => r("timeout"), 60_000); })]);
    clearTimeout(timer);
    clearInterval(watcher);
    process.stderr.write(`# daemon shutdown with a running VM: ${Math.round(performance.now() - t0)} ms\n`);
    assert.equal(code, 0, `auraed exit code; logs:\n${d.logs.slice(-15).join("\n")}`);
    assert.match(guestConsole, /power button pressed: shutting down/, `the guest was asked to power off (ACPI); daemon logs:\n${d.logs.slice(-20).join("\n")}`);
    assert.ok(!d.logs.some((l) => /did not power off/.test(l)), "and did so before the kill timeout");
    assert.deepEqual(qemuProcesses(d.dir), [], "no QEMU of this daemon is left");
    const layout = detectCgroupLayout();
    const roots = [...Object.values(layout.v1), layout.unified].filter((m): m is string => !!m);
    assert.deepEqual(roots.map((r) => path.join(r, d.cgroupParent)).filter((p) => fs.existsSync(p)), [], "no cgroup of the daemon is left");
    assert.deepEqual(fs.readdirSync(path.join(d.dir, "run", "vms")), [], "no VM runtime files are left");
    assert.ok(!fs.existsSync(path.join(d.dir, "aurae.sock")), "the socket is removed");
  });
});
