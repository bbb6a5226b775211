/**
 * `aer vm image build`, the real binary: progress on stderr, the image's paths on stdout (or
 * JSON), a second build reused from the cache, a stable `current` link, and a CA key that does
 * not belong to the CA certificate refused with FAILED_PRECONDITION (exit 7).
 *
 * It builds into the test cache (.cache/vm-test, shared with the VM tests: the kernel package
 * and the base initramfs are reused) and removes the images it made.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createDevPki, type DevPki } from "../../src/pki/pki.js";
import { REPO } from "../helpers/daemon.js";
import { runNode } from "../helpers/run.js";
import { VM_CACHE, vmSkipReason } from "../helpers/vms.js";

const AER = path.join(REPO, "bin/aer.js");

const aer = (args: string[]) => runNode(AER, args, { timeoutMs: 600_000 });

describe("aer vm image build", { skip: vmSkipReason(), timeout: 900_000 }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "aurae-vm-image-"));
  let pki: DevPki;
  let other: DevPki;
  const made = new Set<string>();

  before(async () => {
    pki = await createDevPki({ dir: path.join(tmp, "pki"), clients: ["nova"] });
    other = await createDevPki({ dir: path.join(tmp, "other"), clients: [] });
  });

  after(() => {
    for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(path.join(VM_CACHE, "vm-images", "current"), { force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test("builds a guest image with progress, prints where it is, and reuses it from the cache", async () => {
    const first = await aer(["vm", "image", "build", "--library-dir", VM_CACHE, "--pki-dir", pki.dir]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /^\[\d+\.\ds\] modules: \d+ modules: virtio_ring virtio virtio_mmio/m, "progress on stderr");
    assert.match(first.stderr, /^\[\d+\.\ds\] tls: issuing the guest's server certificate$/m, "a certificate of the guest's own");
    assert.match(first.stderr, /^\[\d+\.\ds\] done: image \w+ in /m);
    const kernel = /^kernel: +(\S+)$/m.exec(first.stdout)?.[1];
    const initramfs = /^initramfs: +(\S+) \([\d.]+ MiB\)$/m.exec(first.stdout)?.[1];
    assert.ok(kernel && initramfs, first.stdout);
    made.add(path.dirname(kernel));
    assert.equal(path.dirname(initramfs), path.dirname(kernel), "initramfs.img beside the kernel (Allocate finds it there)");
    assert.equal(fs.readFileSync(kernel).subarray(0, 4).toString("latin1"), "\x7fELF", "an uncompressed vmlinux");
    assert.equal(fs.readFileSync(initramfs).subarray(0, 6).toString(), "070701", "a cpio archive");
    assert.doesNotMatch(first.stdout, /\(cached\)/);

    const again = await aer(["--json", "vm", "image", "build", "--library-dir", VM_CACHE, "--pki-dir", pki.dir]);
    assert.equal(again.code, 0, again.stderr);
    const j = JSON.parse(again.stdout) as { kernel: string; initramfs: string; cached: boolean; current: string };
    assert.equal(j.kernel, kernel);
    assert.equal(j.cached, true, "the second build is the cached image");
    assert.match(again.stderr, /done: image \w+ \(cached\)/);
    assert.equal(fs.realpathSync(path.join(j.current, "vmlinux")), fs.realpathSync(kernel), "current points at the newest image");
  });

  test("a CA key that does not belong to the CA certificate is refused with FAILED_PRECONDITION", async () => {
    const r = await aer(["vm", "image", "build", "--library-dir", VM_CACHE, "--ca-crt", pki.caCrt, "--ca-key", other.caKey]);
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stderr, /^error: FAILED_PRECONDITION: vm image build: CA key '.*' does not belong to CA certificate '.*'$/m);
  });

  test("a missing CA is refused with FAILED_PRECONDITION naming the file", async () => {
    const r = await aer(["vm", "image", "build", "--library-dir", VM_CACHE, "--pki-dir", path.join(tmp, "none")]);
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stderr, /^error: FAILED_PRECONDITION: vm image build: CA file '.*none\/ca\.crt' does not exist$/m);
  });
});
