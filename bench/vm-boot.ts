/**
 * Micro-VM boot: VmService Start to the first healthy Discover answered by the guest's auraed,
 * against the floor of booting the same kernel and initramfs with busybox as init printing a
 * marker (`rdinit=/bin/echo -- BOOT-MARKER`), under the same accelerator, alternating in the
 * same run. Both boots use the same QEMU command line builder.
 *
 * Usage: node --import tsx bench/vm-boot.ts [--runs N]    (root; builds the image if needed)
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { credentials } from "@grpc/grpc-js";
import { DiscoveryServiceClient } from "../src/api/aurae/discovery/v0/discovery.js";
import { Logger } from "../src/daemon/logger.js";
import { processLauncher } from "../src/daemon/vms/launcher.js";
import { parseVirtualMachine } from "../src/daemon/vms/validation.js";
import { VmDomain } from "../src/daemon/vms/vm-domain.js";
import { createDevPki } from "../src/pki/pki.js";
import { acceleratorKernelArgs, detectAccelerator } from "../src/platform/qemu/accel.js";
import { qemuArgv } from "../src/platform/qemu/argv.js";
import { buildVmImage } from "../src/vmimage/build.js";
import { renderTable, writeResults, type Row } from "./lib/report.js";
import { nowMs, summarize } from "./lib/stats.js";

const REPO = resolve(import.meta.dirname, "..");

function busyboxMarkerBoot(kernel: string, initrd: string, accel: "kvm" | "tcg", dir: string): Promise<number> {
  const argv = qemuArgv({
    accel, memMiB: 1024, vcpus: 2, kernel, initrd,
    cmdline: ["console=ttyS0", "panic=-1", "quiet", ...acceleratorKernelArgs(accel), "rdinit=/bin/echo", "--", "BOOT-MARKER"].join(" "),
    drives: [], forwards: [], qmpSocket: join(dir, "marker-qmp.sock"), consoleLog: "",
  });
  argv[argv.indexOf("-serial") + 1] = "stdio";
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

function discover(address: string, ca: Buffer, key: Buffer, crt: Buffer): Promise<boolean> {
  const c = new DiscoveryServiceClient(address, credentials.createSsl(ca, key, crt), { "grpc.ssl_target_name_override": "server.unsafe.aurae.io" });
  return new Promise((res, rej) => c.discover({}, (err, r) => { c.close(); if (err) rej(err); else res(r.healthy); }));
}

async function main(): Promise<void> {
  const runsArg = process.argv.indexOf("--runs");
  const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;
  const dir = mkdtempSync(join(tmpdir(), "aurae-bench-vm-"));
  try {
    const pki = await createDevPki({ dir: join(dir, "pki"), clients: ["bench"] });
    const image = await buildVmImage({
      libraryDir: join(REPO, ".cache/vm-test"), caCrt: pki.caCrt, caKey: pki.caKey,
      onProgress: (p) => process.stderr.write(`vm image: ${p.message}\n`),
    });
    const accel = await detectAccelerator({ kernel: image.kernel, force: process.env.AURAE_VM_ACCEL === "tcg" || process.env.AURAE_VM_ACCEL === "kvm" ? process.env.AURAE_VM_ACCEL : undefined });
    process.stderr.write(`accelerator: ${accel.accel} (${accel.reason})\n`);
    const domain = new VmDomain({ launcher: processLauncher(), runtimeDir: join(dir, "run"), caCrt: pki.caCrt, logger: new Logger({ level: "warn" }), accel: accel.accel });
    await domain.allocate(parseVirtualMachine({ id: "bench", memSizeMb: 1024, vcpuCount: 2, kernelImgPath: image.kernel, kernelArgs: [], driveMounts: [], rootDrive: undefined, auraedAddress: "" }));
    const ca = readFileSync(pki.caCrt);
    const key = readFileSync(pki.clients["bench"]!.key);
    const crt = readFileSync(pki.clients["bench"]!.crt);
    const product: number[] = [];
    const floor: number[] = [];
    for (let i = 0; i < runs; i++) {
      floor.push(await busyboxMarkerBoot(image.kernel, image.initramfs, accel.accel, dir));
      const t0 = nowMs();
      const address = await domain.start("bench");
      if (!(await discover(address, ca, key, crt))) throw new Error("guest not healthy");
      product.push(nowMs() - t0);
      const t1 = nowMs();
      await domain.stop("bench");
      process.stderr.write(`run ${i + 1}: marker ${floor.at(-1)!.toFixed(0)} ms, Start->Discover ${product.at(-1)!.toFixed(0)} ms, Stop ${(nowMs() - t1).toFixed(0)} ms\n`);
    }
    await domain.shutdown();
    const rows: Row[] = [{
      scenario: `vm boot (${accel.accel}, 2 vCPU, 1024 MB): Start -> healthy Discover vs busybox echo as init`,
      product: summarize(product),
      floor: summarize(floor),
      unit: "ms",
      note: `initramfs ${(image.initramfsBytes / 1048576).toFixed(0)} MiB; same kernel, initramfs and QEMU command line`,
    }];
    process.stdout.write(renderTable(rows) + "\n");
    writeResults(join(REPO, "bench/results"), rows, { bench: "vm-boot", runs, accel });
    rmSync(image.dir, { recursive: true, force: true }); // this run's CA overlay; kernel and base stay cached
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
