/**
 * Micro-VM boot, through the real daemon: VmService Start (over mTLS, QEMU in the VM's cell) to
 * the first healthy Discover answered by the guest's auraed, against the floor of booting the
 * same kernel and initramfs with busybox as init printing a marker (`rdinit=/bin/echo --
 * BOOT-MARKER`): same QEMU command line builder, same machine size, same accelerator (the
 * daemon is told the one the floor uses), alternating in the same run.
 *
 * Usage: node --import tsx bench/vm-boot.ts [--runs N]    (root; builds the image if needed)
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DiscoveryServiceClient } from "../src/api/aurae/discovery/v0/discovery.js";
import { VirtualMachine, VmServiceClient } from "../src/api/aurae/vms/v0/vms.js";
import { acceleratorKernelArgs, detectAccelerator } from "../src/platform/qemu/accel.js";
import { qemuArgv, type Accelerator } from "../src/platform/qemu/argv.js";
import { startDaemon } from "../test/helpers/daemon.js";
import { call, GUEST_OPTIONS, guestCredentials, removeTestImage, testImage } from "../test/helpers/vms.js";
import { renderTable, writeResults, type Row } from "./lib/report.js";
import { nowMs, summarize } from "./lib/stats.js";

const REPO = resolve(import.meta.dirname, "..");
const MEM_MB = 1024;
const VCPUS = 2;

/** QEMU spawn to the marker on the serial console; QEMU is killed then. */
function markerBoot(kernel: string, initrd: string, accel: Accelerator): Promise<number> {
  const argv = qemuArgv({
    accel, memMiB: MEM_MB, vcpus: VCPUS, kernel, initrd,
    cmdline: ["console=ttyS0", "panic=-1", "quiet", ...acceleratorKernelArgs(accel), "rdinit=/bin/echo", "--", "BOOT-MARKER"].join(" "),
    drives: [], forwards: [], qmpSocket: "/dev/null", consoleLog: "/dev/null",
  });
  // serial on stdout (to see the marker) and no QMP socket
  argv[argv.indexOf("-serial") + 1] = "stdio";
  argv.splice(argv.indexOf("-qmp"), 2);
  return new Promise((res, rej) => {
    const t0 = nowMs();
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    let done = false;
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (!done && out.includes("BOOT-MARKER")) {
        done = true;
        res(nowMs() - t0);
        child.kill("SIGKILL");
      }
    });
    child.once("exit", () => { if (!done) rej(new Error(`marker boot ended without the marker:\n${out.slice(-2000)}`)); });
  });
}

/** The guest's own account of its boot, from pid 1's records on the console (guest clock). */
function guestTimeline(consoleLog: string): { kernelToNodeMs: number; nodeToBootedMs: number; bootedToServingMs: number } | undefined {
  const records = readFileSync(consoleLog, "utf8").split("\n").filter((l) => l.includes("{")).map((l) => {
    try {
      return JSON.parse(l.slice(l.indexOf("{"))) as { msg: string; time: string; uptimeMs?: number; processUptimeMs?: number };
    } catch {
      return undefined;
    }
  });
  const booted = records.find((r) => r?.msg === "booted as pid 1");
  const started = records.find((r) => r?.msg === "auraed started");
  if (!booted || !started || booted.uptimeMs === undefined || booted.processUptimeMs === undefined) return undefined;
  return {
    kernelToNodeMs: booted.uptimeMs - booted.processUptimeMs,
    nodeToBootedMs: booted.processUptimeMs,
    bootedToServingMs: Date.parse(started.time) - Date.parse(booted.time),
  };
}

async function main(): Promise<void> {
  const runsArg = process.argv.indexOf("--runs");
  const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;
  const image = await testImage();
  const forced = process.env.AURAE_VM_ACCEL === "tcg" || process.env.AURAE_VM_ACCEL === "kvm" ? process.env.AURAE_VM_ACCEL : undefined;
  const accel = await detectAccelerator({ kernel: image.kernel, force: forced });
  process.stderr.write(`accelerator: ${accel.accel} (${accel.reason})\n`);
  const d = await startDaemon({ env: { AURAE_VM_ACCEL: accel.accel } });
  const vms = new VmServiceClient(d.target, d.credentials, d.clientOptions);
  const creds = await guestCredentials();
  const id = `bench-${process.pid}`;
  const product: number[] = [];
  const floor: number[] = [];
  const stops: number[] = [];
  const kernelToNode: number[] = [];
  const nodeToBooted: number[] = [];
  const bootedToServing: number[] = [];
  try {
    await call(vms, vms.allocate, { machine: VirtualMachine.fromPartial({ id, memSizeMb: MEM_MB, vcpuCount: VCPUS, kernelImgPath: image.kernel }) });
    for (let i = 0; i < runs; i++) {
      floor.push(await markerBoot(image.kernel, image.initramfs, accel.accel));
      const t0 = nowMs();
      const { auraedAddress } = await call(vms, vms.start, { vmId: id });
      const guest = new DiscoveryServiceClient(auraedAddress, creds, GUEST_OPTIONS);
      const healthy = await call(guest, guest.discover, {}).finally(() => guest.close());
      if (!healthy.healthy) throw new Error("the guest's auraed is not healthy");
      product.push(nowMs() - t0);
      const timeline = guestTimeline(join(d.dir, "run", "vms", id, "console.log"));
      if (timeline) {
        kernelToNode.push(timeline.kernelToNodeMs);
        nodeToBooted.push(timeline.nodeToBootedMs);
        bootedToServing.push(timeline.bootedToServingMs);
      }
      const t1 = nowMs();
      await call(vms, vms.stop, { vmId: id });
      stops.push(nowMs() - t1);
      process.stderr.write(`run ${i + 1}: marker ${floor.at(-1)!.toFixed(0)} ms, Start->Discover ${product.at(-1)!.toFixed(0)} ms, Stop ${stops.at(-1)!.toFixed(0)} ms\n`);
    }
    await call(vms, vms.free, { vmId: id });
  } finally {
    vms.close();
    await d.stop();
    await removeTestImage(); // this run's CA overlay; kernel and base stay cached
  }
  const p50 = (xs: number[]) => (xs.length ? summarize(xs).p50.toFixed(0) : "?");
  const rows: Row[] = [{
    scenario: `vm boot (${accel.accel}, ${VCPUS} vCPU, ${MEM_MB} MB): Start -> healthy Discover in the guest vs busybox echo as init printing a marker`,
    product: summarize(product),
    floor: summarize(floor),
    unit: "ms",
    note: `initramfs ${(image.initramfsBytes / 1048576).toFixed(0)} MiB; same kernel, initramfs, QEMU command line and accelerator; ` +
      `guest p50: power-on to node ${p50(kernelToNode)} ms, node start to booted pid 1 ${p50(nodeToBooted)} ms, booted to serving ${p50(bootedToServing)} ms; ` +
      `Stop (ACPI power-off) p50 ${p50(stops)} ms`,
    extra: { stopMs: summarize(stops), kernelToNodeMs: kernelToNode, nodeToBootedMs: nodeToBooted, bootedToServingMs: bootedToServing },
  }];
  process.stdout.write(renderTable(rows) + "\n");
  writeResults(join(REPO, "bench/results"), rows, { bench: "vm-boot", runs, accel });
}

await main();
