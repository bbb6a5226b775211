/**
 * auraed as pid 1 of a new pid + mount + net namespace (Aurae's own scenario): an empty tmpfs
 * over /dev and a bare `eth0` (dummy, or a veth when this kernel has no dummy driver). The
 * daemon (dist/daemon/init/guest.js: bootPid1 + the real daemon + powerOff) must mount what is
 * missing, configure the network, serve mTLS on TCP 8080 in the namespace, reap orphans, and
 * on SIGTERM shut down gracefully and power off, which ends the namespace.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseMountInfo } from "../../src/platform/mounts.js";
import { detectCgroupLayout } from "../../src/platform/cgroups/layout.js";
import { forceRemoveCgroupTree } from "../../src/platform/cgroups/cleanup.js";
import { testPki } from "../helpers/pki.js";

const REPO = path.resolve(import.meta.dirname, "../..");
const GUEST_ENTRY = path.join(REPO, "dist/daemon/init/guest.js");
const has = (bin: string) => ["/usr/bin", "/bin", "/usr/sbin", "/sbin"].some((d) => fs.existsSync(path.join(d, bin)));
const SKIP =
  process.getuid?.() !== 0 ? "needs root (namespaces, mounts)"
  : !fs.existsSync(GUEST_ENTRY) ? "dist/ is not built (npm run build)"
  : !has("unshare") || !has("nsenter") || !has("ip") ? "needs unshare, nsenter (util-linux) and ip (iproute2)"
  : false;

/** The host pid of the namespace's pid 1: the only child of `unshare --fork`. */
function nsInitPid(unsharePid: number): number | undefined {
  try {
    const kids = fs.readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, "utf8").trim();
    return kids ? Number(kids.split(" ")[0]) : undefined;
  } catch {
    return undefined;
  }
}

/** Runs a Discover from inside the namespace's network (mTLS unless `noClientCert`). */
function discoverInNamespace(initPid: number, target: string, pki: { caCrt: string; key: string; crt: string }, noClientCert = false): { ok: boolean; text: string } {
  const code = `
    import { credentials } from "@grpc/grpc-js";
    import { readFileSync } from "node:fs";
    import { DiscoveryServiceClient } from ${JSON.stringify(path.join(REPO, "dist/api/aurae/discovery/v0/discovery.js"))};
    const ca = readFileSync(${JSON.stringify(pki.caCrt)});
    const creds = ${noClientCert} ? credentials.createSsl(ca) : credentials.createSsl(ca, readFileSync(${JSON.stringify(pki.key)}), readFileSync(${JSON.stringify(pki.crt)}));
    const c = new DiscoveryServiceClient(${JSON.stringify(target)}, creds, { "grpc.ssl_target_name_override": "server.unsafe.aurae.io" });
    c.discover({}, { deadline: Date.now() + 5000 }, (err, res) => {
      console.log(err ? "ERR " + err.code + " " + err.details : "OK " + JSON.stringify(res));
      c.close();
    });`;
  try {
    const out = execFileSync("nsenter", [`--net=/proc/${initPid}/ns/net`, process.execPath, "--input-type=module", "-e", code], {
      cwd: REPO, encoding: "utf8", timeout: 20_000,
    }).trim();
    return { ok: out.startsWith("OK "), text: out };
  } catch (err) {
    return { ok: false, text: String((err as { stdout?: string }).stdout ?? err) };
  }
}

describe("auraed as pid 1 of a new pid+mount+net namespace", { skip: SKIP }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aurae-pid1-"));
  const cgroupParent = `aurae-test-pid1-${process.pid}`;
  let unshare: ChildProcess;
  let initPid = 0;
  const logs: string[] = [];
  let exited: Promise<number | null>;
  let pki: Awaited<ReturnType<typeof testPki>>;

  before(async () => {
    pki = await testPki();
    const script = [
      "set -e",
      "mount -t tmpfs -o mode=0755 tmpfs /dev", // empty: no /dev/null
      "ip link add eth0 type dummy 2>/dev/null || ip link add eth0 type veth peer name eth0-peer",
      `exec ${process.execPath} ${GUEST_ENTRY} --ca-crt ${pki.caCrt} --server-crt ${pki.serverCrt} --server-key ${pki.serverKey}` +
        ` --runtime-dir ${dir}/run --library-dir ${dir}/lib --cgroup-parent ${cgroupParent} --stop-grace-ms 1000`,
    ].join("\n");
    unshare = spawn("unshare", ["--pid", "--fork", "--mount", "--net", "--propagation", "private", "sh", "-c", script], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, AURAED_IFACE: "eth0", AURAED_ADDRESS: "10.99.0.2/24" },
    });
    exited = new Promise((r) => unshare.once("exit", (code) => r(code)));
    let buf = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pid 1 did not start within 30 s:\n${logs.join("\n")}${buf}`)), 30_000);
      const onData = (d: Buffer) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          logs.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
        if (logs.some((l) => l.includes('"auraed started"'))) {
          clearTimeout(timer);
          resolve();
        }
      };
      unshare.stderr!.on("data", onData);
      unshare.stdout!.on("data", onData);
      unshare.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`unshare exited (${code}) before pid 1 started:\n${logs.join("\n")}${buf}`));
      });
    });
    initPid = nsInitPid(unshare.pid!) ?? 0;
    assert.ok(initPid > 0, "found the namespace's init");
  });

  after(async () => {
    if (unshare && unshare.exitCode === null && unshare.signalCode === null) {
      if (initPid) try { process.kill(initPid, "SIGKILL"); } catch { /* gone */ }
      unshare.kill("SIGKILL");
      await exited;
    }
    await forceRemoveCgroupTree(detectCgroupLayout(), cgroupParent).catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("the daemon runs as pid 1 and mounts what was missing, keeping what exists", () => {
    const status = fs.readFileSync(`/proc/${initPid}/status`, "utf8");
    assert.match(status, /^NSpid:\s+\d+\s+1$/m, "pid 1 in its namespace");
    const booted = logs.find((l) => l.includes('"booted as pid 1"'));
    assert.ok(booted, "boot logged");
    const mounted = (JSON.parse(booted) as { mounted: string[] }).mounted;
    // /proc belonged to the parent pid namespace and /dev was an empty tmpfs: both replaced;
    // /sys and the host's cgroup mounts existed and are kept.
    for (const m of ["/proc", "/dev", "/dev/pts", "/run"]) assert.ok(mounted.includes(m), `${m} mounted (${mounted.join(",")})`);
    assert.ok(!mounted.includes("/sys") && !mounted.includes("/sys/fs/cgroup"), "existing /sys and cgroup mounts kept");
    const mounts = parseMountInfo(fs.readFileSync(`/proc/${initPid}/mountinfo`, "utf8"));
    const top = (t: string) => mounts.filter((m) => m.target === t).pop();
    assert.equal(top("/proc")?.fstype, "proc");
    assert.equal(top("/dev")?.fstype, "devtmpfs");
    assert.equal(top("/dev/pts")?.fstype, "devpts");
    assert.equal(top("/run")?.fstype, "tmpfs");
    assert.ok(fs.lstatSync(`/proc/${initPid}/root/dev/null`).isCharacterDevice(), "/dev/null exists in the namespace");
    assert.equal(fs.readlinkSync(`/proc/${initPid}/root/proc/1/exe`), process.execPath, "the namespace's /proc shows its own pid 1");
  });

  test("lo and eth0 are up and eth0 has the configured address", () => {
    const out = execFileSync("nsenter", [`--net=/proc/${initPid}/ns/net`, "ip", "-o", "addr", "show"], { encoding: "utf8" });
    assert.match(out, /\blo\s+inet 127\.0\.0\.1\/8/);
    assert.match(out, /\beth0\s+inet 10\.99\.0\.2\/24/);
    const links = execFileSync("nsenter", [`--net=/proc/${initPid}/ns/net`, "ip", "-o", "link", "show"], { encoding: "utf8" });
    assert.match(links, /: lo: <[^>]*\bUP\b/);
    assert.match(links, /: eth0[@:][^<]*<[^>]*\bUP\b/);
  });

  test("it serves mTLS on TCP 8080 and refuses a client without a certificate", () => {
    const nova = pki.clients["nova"]!;
    const creds = { caCrt: pki.caCrt, key: nova.key, crt: nova.crt };
    const viaLo = discoverInNamespace(initPid, "127.0.0.1:8080", creds);
    assert.ok(viaLo.ok, viaLo.text);
    assert.match(viaLo.text, /"healthy":true/);
    const viaEth0 = discoverInNamespace(initPid, "10.99.0.2:8080", creds);
    assert.ok(viaEth0.ok, viaEth0.text);
    const anonymous = discoverInNamespace(initPid, "127.0.0.1:8080", creds, true);
    assert.ok(!anonymous.ok, `no response without a client certificate: ${anonymous.text}`);
    assert.match(anonymous.text, /^ERR 14 /, "a transport failure (UNAVAILABLE)");
  });

  test("it reaps orphans: nothing of them remains, not even a zombie", async () => {
    // sh exits at once; its two sleeps (their output away from our pipe, so nsenter returns at
    // once) are orphaned and reparented to the namespace's init, which must reap them when they
    // exit. They live 1.5 s, so that a loaded machine still sees them as pid 1's children.
    const out = execFileSync("nsenter", ["--target", String(initPid), "--pid", "--mount", "sh", "-c", "sleep 1.5 >/dev/null 2>&1 & sleep 1.5 >/dev/null 2>&1 & echo $!"], { encoding: "utf8" });
    assert.match(out.trim(), /^\d+$/);
    const sleeps = fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).map(Number).filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, "utf8") === "sleep\u00001.5\u0000" && fs.readlinkSync(`/proc/${p}/ns/pid`) === fs.readlinkSync(`/proc/${initPid}/ns/pid`);
      } catch {
        return false;
      }
    });
    assert.equal(sleeps.length, 2, "both sleeps run in the namespace");
    const ppid = (p: number) => Number(/^PPid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${p}/status`, "utf8"))![1]);
    const orphanWindow = Date.now() + 1000;
    while (Date.now() < orphanWindow && !sleeps.every((p) => ppid(p) === initPid)) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(sleeps.map(ppid), [initPid, initPid], "the sleeps were reparented to pid 1");
    const deadline = Date.now() + 5000;
    const exists = (p: number) => fs.existsSync(`/proc/${p}`);
    while (sleeps.some(exists) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const states = sleeps.filter(exists).map((p) => { try { return fs.readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]?.[0]; } catch { return "gone"; } });
    assert.deepEqual(states, [], "nothing of the orphans is left, not even a zombie");
  });

  test("SIGTERM shuts down gracefully, then powers off, which ends the namespace", async () => {
    process.kill(initPid, "SIGTERM");
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("timeout"), 20_000))]);
    assert.notEqual(code, "timeout", `the namespace did not end:\n${logs.slice(-10).join("\n")}`);
    const order = ["shutting down", "auraed stopped", "powering off"].map((m) => logs.findIndex((l) => l.includes(`"msg":"${m}"`)));
    assert.ok(order.every((i) => i >= 0) && order[0]! < order[1]! && order[1]! < order[2]!, `graceful order: ${order.join(",")}`);
    const layout = detectCgroupLayout();
    const roots = [...Object.values(layout.v1), layout.unified].filter((m): m is string => !!m);
    const left = roots.map((r) => path.join(r, cgroupParent)).filter((d) => fs.existsSync(d));
    assert.deepEqual(left, [], "the daemon removed its cgroups before powering off");
  });
});

/** auraed as pid 1 of a new pid+mount+net namespace with /proc of its own (the rest is the host's). */
function spawnMountedPid1(pki: Awaited<ReturnType<typeof testPki>>, dir: string, cgroupParent: string): ChildProcess {
  // --mount-proc gives a /proc of the new namespace; /dev, /sys and cgroups are the host's.
  return spawn("unshare", ["--pid", "--fork", "--mount", "--net", "--mount-proc", "--propagation", "private",
    "sh", "-c", `mount -t tmpfs tmpfs /run && exec ${process.execPath} ${GUEST_ENTRY} --ca-crt ${pki.caCrt} --server-crt ${pki.serverCrt} --server-key ${pki.serverKey} --runtime-dir ${dir}/run --library-dir ${dir}/lib --cgroup-parent ${cgroupParent}`],
  { stdio: ["ignore", "ignore", "pipe"] });
}

/** Kills what is left of a spawnMountedPid1 (SIGKILL to the namespace's init ends the namespace). */
async function killNamespace(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  const init = nsInitPid(child.pid!);
  if (init) try { process.kill(init, "SIGKILL"); } catch { /* gone */ }
  child.kill("SIGKILL");
  await exited;
}

/** Resolves true once stderr contains `marker`, false if the process exits first or after 30 s. */
function waitForStderr(child: ChildProcess, marker: string, seen: { text: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 30_000);
    const check = () => { if (seen.text.includes(marker)) { clearTimeout(timer); resolve(true); } };
    child.stderr!.on("data", check);
    child.once("exit", () => { clearTimeout(timer); resolve(seen.text.includes(marker)); });
    check();
  });
}

describe("auraed as pid 1 where everything is already mounted", { skip: SKIP }, () => {
  test("boots without mounting anything and never fails on what exists", async () => {
    const pki = await testPki();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aurae-pid1b-"));
    const cgroupParent = `aurae-test-pid1b-${process.pid}`;
    const child = spawnMountedPid1(pki, dir, cgroupParent);
    try {
      const err = { text: "" };
      child.stderr!.on("data", (d: Buffer) => { err.text += d.toString(); });
      const started = await waitForStderr(child, '"auraed started"', err);
      assert.ok(started, err.text);
      const booted = err.text.split("\n").find((l) => l.includes('"booted as pid 1"'))!;
      const mounted = (JSON.parse(booted) as { mounted: string[] }).mounted;
      assert.deepEqual(mounted, [], "nothing was missing");
      assert.doesNotMatch(err.text, /"level":"(warn|error)"/, "no mount warnings");
      const initPid = nsInitPid(child.pid!)!;
      const exited = new Promise((r) => child.once("exit", r));
      process.kill(initPid, "SIGTERM");
      await exited;
    } finally {
      await killNamespace(child);
      await forceRemoveCgroupTree(detectCgroupLayout(), cgroupParent).catch(() => {});
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a SIGTERM that arrives while the daemon is still starting shuts it down once it is up", async () => {
    const pki = await testPki();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aurae-pid1c-"));
    const cgroupParent = `aurae-test-pid1c-${process.pid}`;
    const child = spawnMountedPid1(pki, dir, cgroupParent);
    try {
      const err = { text: "" };
      const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
      child.stderr!.on("data", (d: Buffer) => { err.text += d.toString(); });
      // Right after the boot record the daemon is loading its certificates and services: a pid 1
      // ignores a signal it has no handler for, so without an early handler this one is lost.
      assert.ok(await waitForStderr(child, '"booted as pid 1"', err), err.text);
      process.kill(nsInitPid(child.pid!)!, "SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([exited, new Promise<string>((res) => { timer = setTimeout(() => res("timeout"), 20_000); })]);
      clearTimeout(timer);
      assert.notEqual(r, "timeout", `the signal was lost:\n${err.text}`);
      const at = (m: string) => err.text.indexOf(`"msg":"${m}"`);
      assert.ok(at("booted as pid 1") >= 0 && at("booted as pid 1") < at("shutting down"), err.text);
      assert.ok(at("shutting down") < at("auraed stopped") && at("auraed stopped") < at("powering off"), `graceful order:\n${err.text}`);
    } finally {
      await killNamespace(child);
      await forceRemoveCgroupTree(detectCgroupLayout(), cgroupParent).catch(() => {});
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
