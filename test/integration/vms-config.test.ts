/**
 * The pure pieces of micro-VMs and pid 1, without booting anything: the kernel command line
 * contract between the VM service and the guest's pid 1, QEMU's command line, QMP answers,
 * the cpio writer (checked with the real `cpio` when installed), and mountinfo parsing.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { formatBootArgs, parseBootConfig } from "../../src/daemon/init/boot-config.js";
import { guestCmdline, MAX_CMDLINE } from "../../src/daemon/vms/cmdline.js";
import { vmCellLimits } from "../../src/daemon/vms/vm-domain.js";
import { vmIdProblem } from "../../src/daemon/vms/validation.js";
import { acceleratorKernelArgs, hostTscKhz } from "../../src/platform/qemu/accel.js";
import { qemuArgv } from "../../src/platform/qemu/argv.js";
import { parseHostForwardPort } from "../../src/platform/qemu/qmp.js";
import { parseMountInfo } from "../../src/platform/mounts.js";
import { CpioWriter } from "../../src/vmimage/cpio.js";

describe("the guest's boot configuration", () => {
  test("round-trips through the kernel command line, paths with spaces and colons included", () => {
    const cfg = {
      iface: "eth0", address: "10.0.2.15/24", gateway: "10.0.2.2", hostname: "vm1",
      mounts: [{ serial: "aurae-d0", fsType: "ext4", readOnly: true, path: "/data/my disk:1" }, { serial: "aurae-d1", fsType: "ext2", readOnly: false, path: "/w" }],
    };
    const words = formatBootArgs(cfg);
    assert.ok(words.every((w) => !/\s/.test(w)), "each parameter is one word");
    assert.deepEqual(parseBootConfig(`console=ttyS0 quiet ${words.join(" ")} root=/dev/x`), cfg);
  });

  test("ignores unknown and malformed parameters", () => {
    assert.deepEqual(parseBootConfig("aurae.mount=x aurae.mount=s:ext4:maybe:/p aurae.other=1 aurae.iface"), { mounts: [] });
  });

  test("the VM's command line carries the user's arguments before pid 1's configuration", () => {
    const line = guestCmdline({ id: "vm1", kernelArgs: ["loglevel=3"], drives: [{ imagePath: "/x", vmPath: "/data", fsType: "ext4", readOnly: true }] }, ["tsc=reliable"]);
    assert.match(line, /^console=ttyS0 panic=-1 quiet tsc=reliable loglevel=3 aurae\.iface=eth0 aurae\.address=10\.0\.2\.15\/24 aurae\.gateway=10\.0\.2\.2 aurae\.hostname=vm1 aurae\.mount=aurae-d0:ext4:ro:\/data$/);
    assert.ok(line.length < MAX_CMDLINE);
  });
});

describe("QEMU's command line", () => {
  const argv = qemuArgv({
    accel: "tcg", memMiB: 1024, vcpus: 2, kernel: "/k/vmlinux", initrd: "/k/initramfs.img", cmdline: "console=ttyS0",
    drives: [{ id: "drive0", path: "/img/a,b.ext4", readOnly: true, serial: "aurae-d0" }],
    forwards: [{ hostAddress: "127.0.0.1", hostPort: 0, guestAddress: "10.0.2.15", guestPort: 8080 }],
    qmpSocket: "/run/q.sock", consoleLog: "/run/console.log",
  });
  const after = (flag: string) => argv[argv.indexOf(flag) + 1];

  test("is a microvm with PIT and RTC, no defaults and no reboot", () => {
    assert.equal(argv[0], "qemu-system-x86_64");
    assert.equal(after("-M"), "microvm,pit=on,rtc=on,acpi=on");
    assert.match(after("-accel")!, /^tcg,/);
    assert.equal(after("-m"), "1024M");
    assert.equal(after("-smp"), "2");
    for (const f of ["-nodefaults", "-no-user-config", "-no-reboot"]) assert.ok(argv.includes(f), f);
  });

  test("user networking is restricted and forwards only loopback to the guest's auraed", () => {
    assert.equal(after("-netdev"), "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:0-10.0.2.15:8080");
    assert.equal(after("-device"), "virtio-net-device,netdev=net0");
  });

  test("drives are raw virtio-blk devices with a serial, commas in paths escaped", () => {
    assert.equal(after("-drive"), "id=drive0,file=/img/a,,b.ext4,format=raw,if=none,readonly=on");
    assert.ok(argv.includes("virtio-blk-device,drive=drive0,serial=aurae-d0"));
  });

  test("the forwarded port is read back from `info usernet`", () => {
    const usernet = "Hub -1 (net0):\r\n  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n  TCP[HOST_FORWARD]   8       127.0.0.1 42879       10.0.2.15  8080     0     0\r\n";
    assert.equal(parseHostForwardPort(usernet, 8080), 42879);
    assert.equal(parseHostForwardPort(usernet, 22), undefined);
  });

  test("under TCG the guest is told the TSC rate; under KVM nothing is added", () => {
    assert.equal(hostTscKhz("bogomips\t: 5192.27\ncpu MHz\t\t: 2596.138\n"), 2596135);
    assert.equal(hostTscKhz("cpu MHz\t\t: 2000.000\n"), 2000000);
    assert.deepEqual(acceleratorKernelArgs("tcg", 2596135), ["tsc_early_khz=2596135", "tsc=reliable"]);
    assert.deepEqual(acceleratorKernelArgs("kvm", 2596135), []);
  });
});

describe("VM specs", () => {
  test("ids are DNS labels", () => {
    for (const ok of ["a", "vm-1", "A9", "x".repeat(63)]) assert.equal(vmIdProblem(ok), undefined, ok);
    for (const bad of ["", "-a", "a-", "a_b", "a.b", "x".repeat(64), "a/b"]) assert.ok(vmIdProblem(bad), bad);
  });

  test("a VM's cell limits memory to its RAM plus QEMU's overhead, computed without 32-bit overflow", () => {
    const spec = { id: "big", memMiB: 8192, vcpus: 2, kernel: "", initramfs: "", kernelArgs: [], drives: [] };
    const l = vmCellLimits(spec, 384);
    assert.equal(l.memory?.maxBytes, (8192 + 384) * 1048576);
    assert.ok(l.memory!.maxBytes! > 2 ** 32);
    assert.equal(l.cpu?.maxUs, 250_000);
  });
});

describe("the initramfs cpio writer", () => {
  test("writes a newc archive the cpio tool lists, with directories, files, symlinks and device nodes", async (t) => {
    const chunks: Buffer[] = [];
    const sink = new PassThrough();
    sink.on("data", (c: Buffer) => chunks.push(c));
    const w = new CpioWriter(sink);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "cpio-"));
    try {
      fs.writeFileSync(path.join(tmp, "big"), Buffer.alloc(3 * 1024 * 1024 + 5, 7));
      await w.dir("etc");
      await w.file("etc/hello", Buffer.from("hi\n"), 0o640);
      await w.symlink("etc/link", "hello");
      await w.charDevice("console", 5, 1);
      await w.copyFrom(path.join(tmp, "big"), "big");
      await w.file("etc/hello", Buffer.from("again")); // duplicates are skipped
      await w.finish();
      sink.end();
      const archive = Buffer.concat(chunks);
      assert.equal(archive.length % 512, 0);
      assert.equal(archive.subarray(0, 6).toString(), "070701");
      if (!fs.existsSync("/usr/bin/cpio") && !fs.existsSync("/bin/cpio")) return t.skip("cpio is not installed to cross-check");
      const listing = execFileSync("cpio", ["-t", "-v", "--quiet"], { input: archive, encoding: "utf8" });
      assert.match(listing, /^drwxr-xr-x .* etc$/m);
      assert.match(listing, /^-rw-r----- .* 3 .* etc\/hello$/m);
      assert.match(listing, /^lrwxrwxrwx .* etc\/link -> hello$/m);
      assert.match(listing, /^crw------- .* 5,\s*1 .* console$/m);
      assert.match(listing, /^-rw-r--r-- .* 3145733 .* big$/m);
      assert.equal(listing.trim().split("\n").length, 5);
      const out = fs.mkdtempSync(path.join(os.tmpdir(), "cpio-x-"));
      try {
        execFileSync("cpio", ["-i", "-d", "--quiet", "--no-absolute-filenames", "etc/hello", "big"], { input: archive, cwd: out });
        assert.equal(fs.readFileSync(path.join(out, "etc/hello"), "utf8"), "hi\n");
        assert.ok(fs.readFileSync(path.join(out, "big")).equals(fs.readFileSync(path.join(tmp, "big"))));
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe("mountinfo", () => {
  test("parses targets with escaped spaces, fs types and devices", () => {
    const m = parseMountInfo("36 35 98:0 / /mnt/my\\040disk rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n40 1 0:5 / /dev rw - devtmpfs udev rw\n");
    assert.deepEqual(m.map((e) => [e.target, e.fstype, e.source, e.dev]), [["/mnt/my disk", "ext3", "/dev/root", "98:0"], ["/dev", "devtmpfs", "udev", "0:5"]]);
  });
});
