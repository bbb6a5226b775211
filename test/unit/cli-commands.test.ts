import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { status, type ServerWritableStream } from "@grpc/grpc-js";
import { PassThrough } from "node:stream";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testPki } from "../helpers/pki.js";
import { startFakeDaemon, type FakeDaemon } from "../../src/client/testing.js";
import { clientConfigToml } from "../../src/pki/pki.js";
import { buildProgram, runAer } from "../../src/cli/aer.js";
import type { Command } from "commander";
import { CellServiceService } from "../../src/api/aurae/cells/v0/cells.js";
import { DiscoveryServiceService } from "../../src/api/aurae/discovery/v0/discovery.js";
import { ObserveServiceService } from "../../src/api/aurae/observe/v0/observe.js";
import { VmServiceService } from "../../src/api/aurae/vms/v0/vms.js";
import { HealthService } from "../../src/api/grpc/health/v1/health.js";

let fake: FakeDaemon;
let cfg: string;
const tmp = mkdtempSync(join(tmpdir(), "aurae-cli-unit-"));
let failNext: { code: number; details: string } | undefined;

function maybeFail(): void {
  if (failNext) {
    const f = failNext;
    failNext = undefined;
    throw f;
  }
}

before(async () => {
  const pki = await testPki();
  fake = await startFakeDaemon({
    pki: { caCrt: pki.caCrt, serverCrt: pki.serverCrt, serverKey: pki.serverKey, clientCrt: pki.clients["nova"]!.crt, clientKey: pki.clients["nova"]!.key },
    handlers: {
      "aurae.cells.v0.CellService/Allocate": (req) => (maybeFail(), { cellName: req.cell.name, cgroupV2: false }),
      "aurae.cells.v0.CellService/Free": () => (maybeFail(), {}),
      "aurae.cells.v0.CellService/Start": () => (maybeFail(), { pid: 7, hostPid: 4242, uid: 1000, gid: 1000 }),
      "aurae.cells.v0.CellService/Stop": () => (maybeFail(), {}),
      "aurae.cells.v0.CellService/List": () => ({
        cells: [
          {
            cell: { name: "web", cpu: { max: 50000 }, memory: { max: 64 * 1024 * 1024 } },
            executables: [{ name: "top", command: "sleep 30", pid: 10, hostPid: 10, state: "running" }],
            children: [
              { cell: { name: "web/api" }, executables: [{ name: "srv", command: "true", pid: 11, hostPid: 11, state: "exited", exitCode: 3 }] },
              { cell: { name: "web/db", cpu: { weight: 100 } } },
            ],
          },
        ],
      }),
      "aurae.discovery.v0.DiscoveryService/Discover": () => ({ healthy: true, version: "1.2.3" }),
      "grpc.health.v1.Health/Check": (req) => {
        if (req.service === "nope") throw { code: status.NOT_FOUND, details: `health of service 'nope': unknown service name` };
        return { status: req.service === "" ? 1 : 2 };
      },
      "grpc.health.v1.Health/Watch": () => [{ status: 1 }, { status: 2 }],
      "aurae.observe.v0.ObserveService/GetSubProcessStream": (req) => [
        { item: { channel: req.channelType === 2 ? "stderr" : "stdout", line: "first", timestamp: 1 } },
        { item: { channel: "stdout", line: "second", timestamp: 2, droppedBefore: 5 } },
      ],
      "aurae.observe.v0.ObserveService/GetPosixSignalsStream": () => [{ signal: { signal: 15, processId: 99, cellName: "web" } }],
      "aurae.observe.v0.ObserveService/GetAuraeDaemonLogStream": (_req, call) => {
        const c = call as ServerWritableStream<unknown, unknown>;
        const t = setInterval(() => c.write({ item: { channel: "daemon", line: '{"msg":"tick"}', timestamp: 1 } }), 10);
        c.on("cancelled", () => clearInterval(t));
        return undefined;
      },
      "aurae.vms.v0.VmService/Allocate": (req) => ({ vmId: req.machine.id }),
      "aurae.vms.v0.VmService/List": () => ({
        machines: [{ id: "vm1", status: "running", memSizeMb: 512, vcpuCount: 1, kernelImgPath: "/k/vmlinux", auraedAddress: "127.0.0.1:9000" }],
      }),
    },
  });
  cfg = join(tmp, "config");
  writeFileSync(cfg, clientConfigToml({ caCrt: fake.config.auth.caCrt, clientCrt: fake.config.auth.clientCrt, clientKey: fake.config.auth.clientKey, socket: fake.socket }));
});
after(async () => {
  await fake?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function aer(args: string[], signal?: AbortSignal): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (b) => (out += b));
  stderr.on("data", (b) => (err += b));
  const code = await runAer(["--config", cfg, ...args], { stdout, stderr, signal });
  return { code, stdout: out, stderr: err };
}

function lastRequest<T>(method: string): T {
  const c = [...fake.calls].reverse().find((x) => x.method.endsWith(method));
  assert.ok(c, `no call to ${method}`);
  return c.request as T;
}

describe("aer cell", () => {
  test("allocate turns flags into controllers, memory sizes in binary units", async () => {
    const r = await aer(["cell", "allocate", "web", "--cpu-weight", "100", "--cpu-max", "50000", "--cpu-period", "100000", "--cpuset-cpus", "0-1", "--memory-max", "64M", "--memory-high", "1.5G", "--pids-max", "20", "--isolate-process"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "allocated cell 'web' (cgroup v1)\n");
    const req = lastRequest<{ cell: Record<string, unknown> }>("CellService/Allocate");
    assert.equal(req.cell["name"], "web");
    assert.deepEqual({ ...(req.cell["cpu"] as object) }, { weight: 100, max: 50000, period: 100000 });
    assert.deepEqual({ ...(req.cell["cpuset"] as object) }, { cpus: "0-1", mems: undefined });
    assert.deepEqual({ ...(req.cell["memory"] as object) }, { min: undefined, low: undefined, high: 1.5 * 1024 ** 3, max: 64 * 1024 ** 2 });
    assert.deepEqual({ ...(req.cell["pids"] as object) }, { max: 20 });
    assert.equal(req.cell["isolateProcess"], true);
    assert.equal(req.cell["isolateNetwork"], false);
  });

  test("allocate without limit flags sends no controllers", async () => {
    await aer(["cell", "allocate", "bare"]);
    const req = lastRequest<{ cell: Record<string, unknown> }>("CellService/Allocate");
    assert.equal(req.cell["cpu"], undefined);
    assert.equal(req.cell["memory"], undefined);
    assert.equal(req.cell["pids"], undefined);
  });

  test("allocate --json prints the response as one JSON document", async () => {
    const r = await aer(["--json", "cell", "allocate", "web"]);
    assert.deepEqual(JSON.parse(r.stdout), { cellName: "web", cgroupV2: false });
  });

  test("a bad size is a usage error (exit 2) naming the value", async () => {
    const r = await aer(["cell", "allocate", "web", "--memory-max", "64Q"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: USAGE: .*'64Q' is not a size/m);
  });

  test("a missing argument is a usage error", async () => {
    const r = await aer(["cell", "allocate"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: USAGE: missing required argument 'name'/m);
  });

  test("start sends the executable, uid and gid, and shows both pids", async () => {
    const r = await aer(["cell", "start", "web", "srv", "--command", "echo 'hi' 1>&2", "--description", "d", "--uid", "1000", "--gid", "1000"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "started 'srv' in cell 'web': pid 7, host pid 4242 (uid 1000, gid 1000)\n");
    assert.deepEqual(lastRequest("CellService/Start"), { cellName: "web", executable: { name: "srv", command: "echo 'hi' 1>&2", description: "d" }, uid: 1000, gid: 1000 });
  });

  test("start without --command is a usage error", async () => {
    const r = await aer(["cell", "start", "web", "srv"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--command/);
  });

  test("stop and free name what they acted on", async () => {
    assert.equal((await aer(["cell", "stop", "web", "srv"])).stdout, "stopped 'srv' in cell 'web'\n");
    assert.deepEqual(lastRequest("CellService/Stop"), { cellName: "web", executableName: "srv" });
    assert.equal((await aer(["cell", "free", "web"])).stdout, "freed cell 'web'\n");
    assert.deepEqual(lastRequest("CellService/Free"), { cellName: "web" });
  });

  test("list draws the tree with limits and executables", async () => {
    const r = await aer(["cell", "list"]);
    assert.equal(
      r.stdout,
      [
        "web  cpu.max=50000 memory.max=64M",
        '│  * top  running  pid 10  "sleep 30"',
        "├── web/api",
        '│      * srv  exited (3)  pid 11  "true"',
        "└── web/db  cpu.weight=100",
        "",
      ].join("\n"),
    );
  });

  test("list --json is the List response", async () => {
    const doc = JSON.parse((await aer(["--json", "cell", "list"])).stdout);
    assert.equal(doc.cells[0].cell.name, "web");
    assert.equal(doc.cells[0].children[1].cell.cpu.weight, 100);
    assert.equal(doc.cells[0].executables[0].name, "top");
  });

  for (const [code, name, exit] of [
    [status.NOT_FOUND, "NOT_FOUND", 4],
    [status.ALREADY_EXISTS, "ALREADY_EXISTS", 5],
    [status.INVALID_ARGUMENT, "INVALID_ARGUMENT", 6],
    [status.FAILED_PRECONDITION, "FAILED_PRECONDITION", 7],
    [status.UNAVAILABLE, "UNAVAILABLE", 3],
    [status.UNIMPLEMENTED, "UNIMPLEMENTED", 10],
    [status.INTERNAL, "INTERNAL", 1],
  ] as const) {
    test(`a daemon ${name} exits ${exit} with 'error: ${name}: <message>' on stderr`, async () => {
      failNext = { code, details: `allocate cell 'x': ${name.toLowerCase()}` };
      const r = await aer(["cell", "allocate", "x"]);
      assert.equal(r.code, exit);
      assert.equal(r.stdout, "");
      assert.equal(r.stderr, `error: ${name}: allocate cell 'x': ${name.toLowerCase()}\n`);
    });
  }
});

describe("aer observe", () => {
  test("output streams lines and notes dropped lines", async () => {
    const r = await aer(["observe", "output", "4242"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "first\n[5 line(s) dropped]\nsecond\n");
    assert.deepEqual(JSON.parse(JSON.stringify(lastRequest("GetSubProcessStream"))), { channelType: 1, processId: 4242, maxLinesPerMessage: 1024 });
  });

  test("output --stderr --cell asks for stderr of a pid in that cell", async () => {
    await aer(["observe", "output", "7", "--stderr", "--cell", "web"]);
    assert.deepEqual(lastRequest("GetSubProcessStream"), { channelType: 2, processId: 7, cellName: "web", maxLinesPerMessage: 1024 });
  });

  test("output --json prints one compact document per line", async () => {
    const lines = (await aer(["--json", "observe", "output", "1"])).stdout.trim().split("\n");
    assert.equal(lines.length, 2);
    assert.deepEqual(JSON.parse(lines[0]!), { channel: "stdout", line: "first", timestamp: 1, droppedBefore: 0 });
  });

  test("a pid that is not a number is a usage error", async () => {
    assert.equal((await aer(["observe", "output", "abc"])).code, 2);
  });

  test("signals --cell asks for a CELL workload and names the signal", async () => {
    const r = await aer(["observe", "signals", "--cell", "web"]);
    assert.equal(r.stdout, "SIGTERM (15) -> pid 99 (cell 'web')\n");
    assert.deepEqual(lastRequest("GetPosixSignalsStream"), { workload: { workloadType: 1, id: "web" } });
  });

  test("daemon-logs streams until interrupted, then exits 0", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 150);
    const r = await aer(["observe", "daemon-logs"], ac.signal);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    assert.ok(r.stdout.split("\n").filter((l) => l === '{"msg":"tick"}').length >= 2, r.stdout);
  });
});

describe("aer vm, discovery, health", () => {
  test("vm allocate builds the machine from flags", async () => {
    const r = await aer(["vm", "allocate", "vm1", "--kernel", "/k/vmlinux", "--mem-mb", "256", "--vcpus", "2", "--kernel-arg", "quiet", "--kernel-arg", "panic=-1", "--root-drive", "/d/root.img", "--drive-mount", "/d/data.img:/data:ext4:ro"]);
    assert.equal(r.stdout, "allocated vm 'vm1'\n");
    assert.deepEqual(lastRequest("VmService/Allocate"), {
      machine: {
        id: "vm1",
        memSizeMb: 256,
        vcpuCount: 2,
        kernelImgPath: "/k/vmlinux",
        kernelArgs: ["quiet", "panic=-1"],
        rootDrive: { imagePath: "/d/root.img", readOnly: false },
        driveMounts: [{ imagePath: "/d/data.img", vmPath: "/data", fsType: "ext4", readOnly: true }],
        auraedAddress: "",
      },
    });
  });

  test("a malformed --drive-mount is a usage error", async () => {
    assert.equal((await aer(["vm", "allocate", "v", "--kernel", "k", "--drive-mount", "only:two"])).code, 2);
  });

  test("vm list prints a table", async () => {
    const r = await aer(["vm", "list"]);
    assert.match(r.stdout, /^ID\s+STATUS\s+MEM\s+VCPUS\s+AURAED\s+KERNEL\nvm1\s+running\s+512M\s+1\s+127\.0\.0\.1:9000\s+\/k\/vmlinux\n$/);
  });

  test("an unscripted vm call maps UNIMPLEMENTED to exit 10", async () => {
    const r = await aer(["vm", "start", "vm1"]);
    assert.equal(r.code, 10);
    assert.match(r.stderr, /^error: UNIMPLEMENTED: /);
  });

  test("discovery discover prints health and version", async () => {
    assert.equal((await aer(["discovery", "discover"])).stdout, "healthy: true\nversion: 1.2.3\n");
    assert.deepEqual(JSON.parse((await aer(["--json", "discovery", "discover"])).stdout), { healthy: true, version: "1.2.3" });
  });

  test("health check exits 0 when SERVING and 1 when not", async () => {
    const ok = await aer(["health", "check"]);
    assert.deepEqual([ok.code, ok.stdout], [0, "(daemon): SERVING\n"]);
    const no = await aer(["--json", "health", "check", "--service", "aurae.cells.v0.CellService"]);
    assert.equal(no.code, 1);
    assert.deepEqual(JSON.parse(no.stdout), { service: "aurae.cells.v0.CellService", status: "NOT_SERVING" });
  });

  test("health check of an unknown service exits 4", async () => {
    const r = await aer(["health", "check", "--service", "nope"]);
    assert.equal(r.code, 4);
    assert.equal(r.stderr, "error: NOT_FOUND: health of service 'nope': unknown service name\n");
  });

  test("health watch prints each status as it comes", async () => {
    const r = await aer(["--json", "health", "watch"]);
    assert.deepEqual(r.stdout.trim().split("\n").map((l) => JSON.parse(l).status), ["SERVING", "NOT_SERVING"]);
  });
});

describe("aer pki (no daemon involved)", () => {
  test("create --dns-name adds names to the server certificate, keeping server.unsafe.aurae.io and localhost", async () => {
    const dir = join(tmp, "pki-dns");
    const r = await aer(["--json", "pki", "create", "--dir", dir, "--dns-name", "node1.example", "--dns-name", "node1", "--no-write-config"]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.serverCrt, join(dir, "_signed.server.crt"));
    assert.equal(doc.configPath, null);
    const server = new X509Certificate(readFileSync(doc.serverCrt));
    for (const name of ["server.unsafe.aurae.io", "localhost", "node1.example", "node1"]) assert.equal(server.checkHost(name), name, name);
  });

  test("the global --server-name is not taken for a certificate name", async () => {
    const dir = join(tmp, "pki-global");
    const r = await aer(["--server-name", "elsewhere.example", "pki", "create", "--dir", dir, "--no-write-config"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(new X509Certificate(readFileSync(join(dir, "_signed.server.crt"))).checkHost("elsewhere.example"), undefined);
  });
});

describe("global options and errors", () => {
  test("--socket overrides the config's socket", async () => {
    const r = await aer(["--socket", join(tmp, "nothing.sock"), "--timeout-ms", "3000", "discovery", "discover"]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^error: UNAVAILABLE: /);
  });

  test("a missing config file exits 8 naming the file", async () => {
    const stderr = new PassThrough();
    let err = "";
    stderr.on("data", (b) => (err += b));
    const code = await runAer(["--config", join(tmp, "none"), "cell", "list"], { stdout: new PassThrough(), stderr });
    assert.equal(code, 8);
    assert.equal(err, `error: CONFIG: config '${join(tmp, "none")}': no such file\n`);
  });

  test("--help of every command (walked from the program, so none is missed) shows an example of itself", async () => {
    const program = buildProgram({ stdout: new PassThrough(), stderr: new PassThrough() }, { code: 0 });
    const paths: string[][] = [];
    const walk = (cmd: Command, path: string[]) => {
      for (const c of cmd.commands) {
        if (c.name() === "help") continue;
        paths.push([...path, c.name()]);
        walk(c, [...path, c.name()]);
      }
    };
    walk(program, []);
    assert.ok(paths.length >= 22, `only ${paths.length} commands found`);
    for (const p of [[], ...paths]) {
      const r = await aer([...p, "--help"]);
      assert.equal(r.code, 0, p.join(" "));
      // an "Example(s):" section with at least one line that runs this very command
      assert.match(r.stdout, new RegExp(`\\nExamples?:\\n(  \\$ .*\\n)*  \\$ .*\\baer ${p.join(" ")}`), `${p.join(" ") || "aer"}:\n${r.stdout}`);
    }
  });

  test("an unknown command is a usage error", async () => {
    const r = await aer(["frobnicate"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: USAGE: unknown command 'frobnicate'/m);
  });
});

test("every RPC of every service is reached by an aer command", async () => {
  const commands = [
    ["cell", "allocate", "a"], ["cell", "free", "a"], ["cell", "start", "a", "e", "--command", "true"], ["cell", "stop", "a", "e"], ["cell", "list"],
    ["observe", "output", "1"], ["observe", "signals"],
    ["vm", "allocate", "v", "--kernel", "/k"], ["vm", "start", "v"], ["vm", "stop", "v"], ["vm", "free", "v"], ["vm", "list"],
    ["discovery", "discover"], ["health", "check"], ["health", "watch"],
  ];
  for (const c of commands) await aer(c);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  await aer(["observe", "daemon-logs"], ac.signal);
  const rpcs = [CellServiceService, ObserveServiceService, VmServiceService, DiscoveryServiceService, HealthService].flatMap((def) =>
    Object.values(def).map((m) => (m as { path: string }).path.slice(1)),
  );
  assert.equal(rpcs.length, 16);
  const called = new Set(fake.calls.map((c) => c.method));
  assert.deepEqual(rpcs.filter((r) => !called.has(r)), []);
});
