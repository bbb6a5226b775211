/**
 * Aurae's VM scenario through the real daemon (bin/auraed.js over mTLS): allocate a VM with
 * 2 vCPUs and 1024 MB, start it, reach the guest's auraed at the returned address with the
 * normal client, Discover healthy; in the guest (a pure cgroup v2 system) allocate a cell with
 * CPU and memory limits, check the v2 driver and that the limits bind, start and stop
 * executables, free the cell; stop and free the VM; nothing of it is left on the host.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { Cell, type CellGraphNode } from "../../src/api/aurae/cells/v0/cells.js";
import { VirtualMachine, VmServiceClient } from "../../src/api/aurae/vms/v0/vms.js";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { call, guestClients, processOutput, qemuProcesses, removeTestImage, testImage, vmSkipReason, type GuestClients } from "../helpers/vms.js";

const SKIP = vmSkipReason() || (fs.existsSync(path.resolve(import.meta.dirname, "../../bin/auraed.js")) ? false : "bin/auraed.js missing");

describe("Aurae's VM scenario through the daemon", { skip: SKIP, timeout: 600_000 }, () => {
  let d: TestDaemon;
  let vms: InstanceType<typeof VmServiceClient>;
  let kernel = "";
  let g: GuestClients | undefined;

  before(async () => {
    kernel = (await testImage()).kernel;
    d = await startDaemon({ stopGraceMs: 2000 });
    vms = new VmServiceClient(d.target, d.credentials, d.clientOptions);
  });

  after(async () => {
    g?.close();
    vms?.close();
    await d?.stop();
    await removeTestImage();
  });

  test("a guest's auraed runs cells with binding cgroup v2 limits, and nothing is left afterwards", async () => {
    const id = `scenario-${process.pid}`;
    await call(vms, vms.allocate, { machine: VirtualMachine.fromPartial({ id, memSizeMb: 1024, vcpuCount: 2, kernelImgPath: kernel }) });
    const t0 = performance.now();
    const { auraedAddress } = await call(vms, vms.start, { vmId: id });
    const startMs = performance.now() - t0;
    assert.match(auraedAddress, /^127\.0\.0\.1:\d+$/);
    const running = (await call(vms, vms.list, {})).machines.find((m) => m.id === id);
    assert.equal(running?.status, "running", "QEMU's own status (QMP)");
    assert.equal(running?.auraedAddress, auraedAddress);

    g = await guestClients(auraedAddress);
    const disc = await call(g.discovery, g.discovery.discover, {});
    process.stderr.write(`# scenario: Start to healthy Discover in the guest ${Math.round(performance.now() - t0)} ms (Start ${Math.round(startMs)} ms)\n`);
    assert.equal(disc.healthy, true);

    // A pure cgroup v2 system in the guest.
    const alloc = await call(g.cells, g.cells.allocate, {
      cell: Cell.fromPartial({ name: "limited", cpu: { max: 20_000, period: 100_000 }, memory: { max: 16 * 1048576 } }),
    });
    assert.equal(alloc.cgroupV2, true, "the guest's cells use the cgroup v2 driver");

    const cells = g.cells;
    const start = (name: string, command: string) => call(cells, cells.start, { cellName: "limited", executable: { name, command, description: "" } });
    const listed = async (name: string) => {
      const nodes: CellGraphNode[] = (await call(cells, cells.list, {})).cells;
      return nodes.find((n) => n.cell?.name === "limited")?.executables.find((e) => e.name === name);
    };

    // CPU: a busy loop under a 20% quota gets throttled.
    const busy = await start("busy", "while :; do :; done");
    await new Promise((r) => setTimeout(r, 2500));
    const probe = await call(cells, cells.start, {
      executable: {
        name: "cpu-probe",
        description: "",
        command: `p=$(cut -d: -f3 /proc/${busy.pid}/cgroup); while [ -n "$p" ] && [ "$p" != / ]; do echo "$p|$(cat /sys/fs/cgroup$p/cpu.max)|$(grep nr_throttled /sys/fs/cgroup$p/cpu.stat)"; p=\${p%/*}; done`,
      },
    });
    const lines = await processOutput(g.observe, probe.pid);
    const limitedDir = lines.find((l) => l.includes("|20000 100000|"));
    assert.ok(limitedDir, `a cgroup of the cell carries cpu.max 20000 100000: ${lines.join(" ; ")}`);
    const throttled = Number(/nr_throttled (\d+)/.exec(limitedDir!)?.[1] ?? 0);
    assert.ok(throttled > 0, `the busy loop was throttled: ${limitedDir}`);
    await call(cells, cells.stop, { executableName: "cpu-probe" });
    await call(cells, cells.stop, { cellName: "limited", executableName: "busy" });

    // Memory: holding 40 MB under a 16 MiB memory.max gets the process OOM-killed.
    const hog = await start("hog", `x=$(head -c 40000000 /dev/zero | tr '\\0' a); echo survived \${#x}`);
    const out = await processOutput(g.observe, hog.pid, 120_000);
    assert.ok(!out.some((l) => l.startsWith("survived")), `the hog must not survive: ${out.join(" ; ")}`);
    const hogState = await listed("hog");
    assert.equal(hogState?.state, "exited");
    assert.equal(hogState?.exitSignal, 9, "killed by the OOM killer (SIGKILL)");
    await call(cells, cells.stop, { cellName: "limited", executableName: "hog" });

    // A plain executable starts and stops; then the cell is freed.
    await start("sleeper", "sleep 60");
    assert.equal((await listed("sleeper"))?.state, "running");
    await call(cells, cells.stop, { cellName: "limited", executableName: "sleeper" });
    await call(cells, cells.free, { cellName: "limited" });
    assert.equal((await call(cells, cells.list, {})).cells.find((n) => n.cell?.name === "limited"), undefined);

    // An isolated cell in the guest: its own pid, mount, uts, ipc and network namespaces.
    await call(cells, cells.allocate, { cell: Cell.fromPartial({ name: "iso", isolateProcess: true, isolateNetwork: true }) });
    const look = await call(cells, cells.start, {
      cellName: "iso",
      executable: { name: "look", description: "", command: "hostname; ls /proc | grep -c '^[0-9]'; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ,; echo; ip link show lo | head -n 1" },
    });
    const seen = await processOutput(g.observe, look.pid, 60_000, "iso");
    assert.equal(seen[0], "iso", `the cell's hostname: ${seen.join(" ; ")}`);
    assert.ok(Number(seen[1]) > 0 && Number(seen[1]) < 8, `only the cell's processes in its /proc: ${seen.join(" ; ")}`);
    assert.equal(seen[2], "lo,", `only lo in the cell's network namespace: ${seen.join(" ; ")}`);
    assert.match(seen[3] ?? "", /\bUP\b/, `lo is up: ${seen.join(" ; ")}`);
    await call(cells, cells.stop, { cellName: "iso", executableName: "look" });
    await call(cells, cells.free, { cellName: "iso" });
    g.close();
    g = undefined;

    // Stop and free the VM: nothing of it remains on the host.
    const t1 = performance.now();
    await call(vms, vms.stop, { vmId: id });
    process.stderr.write(`# scenario: Stop (ACPI power-off) ${Math.round(performance.now() - t1)} ms\n`);
    const stopped = (await call(vms, vms.list, {})).machines.find((m) => m.id === id);
    assert.equal(stopped?.status, "stopped");
    assert.equal(stopped?.auraedAddress, "");
    const guestConsole = fs.readFileSync(path.join(d.dir, "run", "vms", id, "console.log"), "utf8");
    assert.match(guestConsole, /power button pressed: shutting down/, "Stop pressed the guest's ACPI power button");
    assert.match(guestConsole, /"msg":"output line encoder: native"/, "the guest's auraed loads the C line encoder its image carries");
    assert.match(guestConsole, /"msg":"auraed stopped"[\s\S]*reboot: Power down/, "the guest's auraed shut down, then powered off");
    assert.ok(!d.logs.some((l) => /did not power off/.test(l)), "no kill was needed");
    await call(vms, vms.free, { vmId: id });
    assert.deepEqual((await call(vms, vms.list, {})).machines, []);
    assert.deepEqual(qemuProcesses(`vms/${id}/`), [], "no QEMU process");
    assert.ok(!fs.existsSync(path.join(d.dir, "run", "vms", id)), "no runtime files");
    const leftovers = ["memory", "cpu", "pids", "unified"].map((c) => path.join("/sys/fs/cgroup", c, d.cgroupParent, "_vms", id)).filter((p) => fs.existsSync(p));
    assert.deepEqual(leftovers, [], "no cgroup of the VM's cell");
  });
});
