import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AURAED, REPO, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { ebpfMissing } from "../helpers/ebpf.js";
import { run, runNode, type Run } from "../helpers/run.js";

const AER = join(REPO, "bin/aer.js");
let d: TestDaemon;
const tmp = mkdtempSync(join(tmpdir(), "aurae-aer-e2e-"));

/**
 * Runs `aer` with the test daemon's config; `interruptWhen` sends SIGINT once stdout matches,
 * `interruptOn` once that promise resolves. A run still going after `timeoutMs` is killed (code null).
 */
function aer(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; config?: string | null; interruptWhen?: RegExp; interruptOn?: Promise<unknown>; timeoutMs?: number } = {},
): Promise<Run> {
  const config = opts.config === undefined ? d.configPath : opts.config;
  let sent = false;
  const interrupt = (child: ChildProcess) => {
    if (!sent && child.exitCode === null) child.kill("SIGINT");
    sent = true;
  };
  return runNode(AER, [...(config ? ["--config", config] : []), ...args], {
    env: opts.env,
    timeoutMs: opts.timeoutMs,
    onSpawn: (child) => void opts.interruptOn?.then(() => interrupt(child)),
    onStdout: (stdout, child) => {
      if (opts.interruptWhen?.test(stdout)) interrupt(child);
    },
  });
}

before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe("aer cell against a live daemon", () => {
  test("allocate prints the cell and the cgroup mode; --json is the Allocate response", async () => {
    const r = await aer(["cell", "allocate", "web", "--cpu-max", "50000", "--memory-max", "64M", "--pids-max", "50"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^allocated cell 'web' \(cgroup v[12]\)\n$/);
    const j = await aer(["--json", "cell", "allocate", "web/api"]);
    assert.equal(j.code, 0, j.stderr);
    const doc = JSON.parse(j.stdout);
    assert.deepEqual(Object.keys(doc).sort(), ["cellName", "cgroupV2"]);
    assert.equal(doc.cellName, "web/api");
  });

  test("allocating an existing cell exits 5 with ALREADY_EXISTS", async () => {
    const r = await aer(["cell", "allocate", "web"]);
    assert.equal(r.code, 5);
    assert.match(r.stderr, /^error: ALREADY_EXISTS: .*'web'/);
  });

  test("an invalid cell name exits 6 with INVALID_ARGUMENT naming it", async () => {
    const r = await aer(["cell", "allocate", "bad_name"]);
    assert.equal(r.code, 6);
    assert.match(r.stderr, /^error: INVALID_ARGUMENT: .*bad_name/);
  });

  test("a child of a missing parent exits 4 with NOT_FOUND", async () => {
    const r = await aer(["cell", "allocate", "ghost/child"]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^error: NOT_FOUND: .*ghost/);
  });

  let pid = 0;
  test("start runs the command in the cell and reports pid, uid and gid", async () => {
    const r = await aer(["--json", "cell", "start", "web/api", "srv", "--command", "echo hello; echo oops 1>&2; sleep 30"]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.ok(doc.pid > 0);
    assert.equal(doc.uid, 0);
    pid = doc.pid;
    const human = await aer(["cell", "start", "web", "top", "--command", "sleep 30", "--uid", "65534", "--gid", "65534"]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^started 'top' in cell 'web': pid \d+ \(uid 65534, gid 65534\)\n$/);
  });

  test("a second executable of the same name in the cell exits 5", async () => {
    const r = await aer(["cell", "start", "web/api", "srv", "--command", "true"]);
    assert.equal(r.code, 5);
  });

  test("list draws the tree with limits and running executables", async () => {
    const r = await aer(["cell", "list"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^web  cpu\.max=50000 memory\.max=64M pids\.max=50$/);
    assert.match(r.stdout, /^│  \* top  running  pid \d+  "sleep 30"$/m);
    assert.match(r.stdout, /^└── web\/api$/m);
    assert.match(r.stdout, new RegExp(`^ {4} {2} \\* srv  running  pid ${pid}  "echo hello; echo oops 1>&2; sleep 30"$`, "m"));
  });

  test("list --json is the tree with our executables extension", async () => {
    const doc = JSON.parse((await aer(["--json", "cell", "list"])).stdout);
    const web = doc.cells.find((c: { cell: { name: string } }) => c.cell.name === "web");
    assert.equal(web.cell.memory.max, 64 * 1024 * 1024);
    assert.equal(web.children[0].cell.name, "web/api");
    assert.equal(web.children[0].executables[0].pid, pid);
    assert.equal(web.children[0].executables[0].state, "running");
  });

  test("observe output streams the history, then live lines, until interrupted (exit 0)", async () => {
    const r = await aer(["observe", "output", String(pid)], { interruptWhen: /hello\n/ });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "hello\n");
    const e = await aer(["--json", "observe", "output", String(pid), "--stderr"], { interruptWhen: /oops/ });
    assert.equal(e.code, 0, e.stderr);
    const item = JSON.parse(e.stdout.trim().split("\n")[0]!);
    assert.equal(item.line, "oops");
    assert.equal(typeof item.timestamp, "number");
  });

  test("observe output of an unknown pid exits 4", async () => {
    const r = await aer(["observe", "output", "999999"]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^error: NOT_FOUND: /);
  });

  test("observe output ends by itself once the process has exited", async () => {
    const s = await aer(["--json", "cell", "start", "web", "short", "--command", "echo one; echo two"]);
    const spid = JSON.parse(s.stdout).pid;
    const r = await aer(["observe", "output", String(spid)], { timeoutMs: 15_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "one\ntwo\n");
  });

  test("observe signals --cell shows the SIGTERM of a stop (skips only where the eBPF object is not built)", async (t) => {
    const probe = await aer(["observe", "signals", "--cell", "web"], { timeoutMs: 2000 });
    if ((probe.code === 3 || probe.code === 10) && ebpfMissing()) {
      t.skip(`signals unavailable here (${ebpfMissing()}): ${probe.stderr.trim()}`);
      return;
    }
    const watching = aer(["observe", "signals", "--cell", "web/api"], { interruptWhen: /SIGTERM \(15\) -> pid \d+/, timeoutMs: 15_000 });
    const watchingJson = aer(["--json", "observe", "signals", "--cell", "web/api"], { interruptWhen: /"signal":15/, timeoutMs: 15_000 });
    await new Promise((r) => setTimeout(r, 700)); // let the streams attach before the stop
    const stop = await aer(["cell", "stop", "web/api", "srv"]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.stdout, "stopped 'srv' in cell 'web/api'\n");
    const r = await watching;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^SIGTERM \\(15\\) -> pid ${pid} \\(cell 'web/api'\\)$`, "m"));
    const j = await watchingJson;
    assert.equal(j.code, 0, j.stderr);
    const docs = j.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(docs.find((x) => x.signal === 15), { signal: 15, processId: pid, cellName: "web/api" });
  });

  test("--timeout-ms on a slow call (stopping an executable that ignores SIGTERM) exits 9 with DEADLINE_EXCEEDED", async () => {
    const s = await aer(["cell", "start", "web", "stubborn", "--command", "trap '' TERM; sleep 60"]);
    assert.equal(s.code, 0, s.stderr);
    // the daemon waits its stop grace (2 s in tests) before SIGKILL: longer than the deadline
    const r = await aer(["--timeout-ms", "300", "cell", "stop", "web", "stubborn"]);
    assert.equal(r.code, 9, r.stderr);
    assert.match(r.stderr, /^error: DEADLINE_EXCEEDED: /);
    assert.equal(r.stdout, "");
  });

  test("Ctrl-C during a unary call exits 130 with CANCELLED (an interrupted stream ends with 0, above)", async () => {
    const s = await aer(["--json", "cell", "start", "web", "stubborn2", "--command", "trap 'echo got-term' TERM; while :; do sleep 0.1; done"]);
    assert.equal(s.code, 0, s.stderr);
    // interrupt the stop once the executable has its SIGTERM, while the daemon waits out the grace
    const termed = aer(["observe", "output", String(JSON.parse(s.stdout).pid)], { interruptWhen: /got-term/, timeoutMs: 15_000 });
    const r = await aer(["cell", "stop", "web", "stubborn2"], { interruptOn: termed });
    assert.equal((await termed).code, 0);
    assert.equal(r.code, 130, r.stderr);
    assert.equal(r.stderr, "error: CANCELLED: interrupted before the daemon answered\n");
  });

  test("a reader that goes away (aer ... | head -n 1) ends a stream without an EPIPE crash", async () => {
    const s = await aer(["--json", "cell", "start", "web", "chatty", "--command", "while true; do echo x; sleep 0.05; done"]);
    const cpid = JSON.parse(s.stdout).pid;
    const { stdout: out, stderr: err } = await run("bash", ["-c", `"${process.execPath}" "${AER}" --config "${d.configPath}" observe output ${cpid} | head -n 1; echo "status \${PIPESTATUS[0]}"`], {
      timeoutMs: 15_000,
    });
    assert.equal(out, "x\nstatus 0\n", err);
    assert.equal(err, "");
    assert.equal((await aer(["--json", "cell", "stop", "web", "chatty"])).stdout, "{}\n");
  });

  test("stop releases the name (a second stop exits 4); free removes the tree (a second free exits 4)", async () => {
    await aer(["cell", "stop", "web/api", "srv"]); // may already be stopped by the signals test
    const again = await aer(["cell", "stop", "web/api", "srv"]);
    assert.equal(again.code, 4);
    assert.match(again.stderr, /^error: NOT_FOUND: .*'srv'/);
    const free = await aer(["cell", "free", "web"]);
    assert.equal(free.code, 0, free.stderr);
    assert.equal(free.stdout, "freed cell 'web'\n");
    const again2 = await aer(["--json", "cell", "free", "web"]);
    assert.equal(again2.code, 4);
    assert.equal(again2.stdout, "", "no JSON document for a failure");
    assert.match(again2.stderr, /^error: NOT_FOUND: .*'web'/);
    const freeJson = await aer(["--json", "cell", "allocate", "tmp-json"]).then(() => aer(["--json", "cell", "free", "tmp-json"]));
    assert.deepEqual([freeJson.code, freeJson.stdout], [0, "{}\n"]);
    assert.equal((await aer(["cell", "list"])).stdout, "no cells\n");
  });
});

describe("aer observe, vm, discovery, health", () => {
  test("observe daemon-logs prints the daemon's records and ends cleanly on Ctrl-C", async () => {
    const r = await aer(["--json", "observe", "daemon-logs"], { interruptWhen: /auraed started/ });
    assert.equal(r.code, 0, r.stderr);
    const docs = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    for (const doc of docs) assert.deepEqual(Object.keys(doc).sort(), ["channel", "droppedBefore", "line", "timestamp"]);
    const started = docs.find((x) => x.line.includes('"msg":"auraed started"'));
    assert.ok(started && typeof started.timestamp === "number", r.stdout);
    const human = await aer(["observe", "daemon-logs"], { interruptWhen: /auraed started/ });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^\{.*"msg":"auraed started".*\}$/m);
  });

  test("every vm command answers with a status: exit 10 while micro-VMs are not built in, else list, validation and NOT_FOUND", async () => {
    const list = await aer(["vm", "list"]);
    if (list.code === 10) {
      // this daemon has no VmService: each command must say so, never exit 0
      for (const args of [["vm", "list"], ["vm", "allocate", "v1", "--kernel", "/nonexistent/vmlinux"], ["vm", "start", "v1"], ["vm", "stop", "v1"], ["vm", "free", "v1"]]) {
        const r = await aer(args);
        assert.equal(r.code, 10, `${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, /^error: UNIMPLEMENTED: .+\n$/, args.join(" "));
        assert.equal(r.stdout, "");
      }
      return;
    }
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^(no virtual machines|ID\s+STATUS\s+MEM\s+VCPUS\s+AURAED\s+KERNEL)\n/);
    assert.ok(Array.isArray(JSON.parse((await aer(["--json", "vm", "list"])).stdout).machines));
    const bad = await aer(["vm", "allocate", "v1", "--kernel", join(tmp, "no-vmlinux")]);
    assert.equal(bad.code, 6, bad.stderr);
    assert.match(bad.stderr, /^error: INVALID_ARGUMENT: .*kernel_img_path/);
    for (const args of [["vm", "start", "nope"], ["vm", "stop", "nope"], ["vm", "free", "nope"]]) {
      const r = await aer(args);
      assert.equal(r.code, 4, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /^error: NOT_FOUND: .*'nope'/, args.join(" "));
    }
  });

  test("discovery discover reports healthy and the package version", async () => {
    const { version } = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8"));
    const r = await aer(["discovery", "discover"]);
    assert.equal(r.stdout, `healthy: true\nversion: ${version}\n`);
    assert.deepEqual(JSON.parse((await aer(["--json", "discovery", "discover"])).stdout), { healthy: true, version });
  });

  test("health check: SERVING exits 0; an unknown service exits 4", async () => {
    const ok = await aer(["health", "check", "--service", "aurae.cells.v0.CellService"]);
    assert.deepEqual([ok.code, ok.stdout], [0, "aurae.cells.v0.CellService: SERVING\n"]);
    const json = await aer(["--json", "health", "check"]);
    assert.deepEqual([json.code, JSON.parse(json.stdout)], [0, { service: "", status: "SERVING" }]);
    const unknown = await aer(["health", "check", "--service", "no.such.Service"]);
    assert.equal(unknown.code, 4);
    assert.match(unknown.stderr, /^error: NOT_FOUND: .*no\.such\.Service/);
  });

  test("health watch prints the current status and keeps watching until Ctrl-C", async () => {
    const r = await aer(["--json", "health", "watch"], { interruptWhen: /SERVING/ });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim().split("\n")[0]!), { service: "", status: "SERVING" });
  });

  test("--socket overrides the config; a dead socket exits 3 with UNAVAILABLE", async () => {
    const r = await aer(["--socket", join(tmp, "dead.sock"), "--timeout-ms", "3000", "discovery", "discover"]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^error: UNAVAILABLE: /);
  });

  test("a peer that accepts but never answers: the deadline exits 9 with DEADLINE_EXCEEDED, and aer does not linger", async () => {
    // grpc-js cannot cancel the pending TLS handshake, so aer must exit by itself once it is done
    const { createServer } = await import("node:net");
    const sock = join(tmp, "silent.sock");
    const held: import("node:net").Socket[] = [];
    const silent = createServer((s) => held.push(s)).listen(sock);
    try {
      const r = await aer(["--socket", sock, "--timeout-ms", "300", "discovery", "discover"], { timeoutMs: 15_000 });
      assert.equal(r.code, 9, `exit ${r.code} (null: killed after 15 s) ${r.stderr}`);
      assert.match(r.stderr, /^error: DEADLINE_EXCEEDED: .*no connection to the daemon was established in time\)\n$/);
      assert.equal(held.length, 1, "aer connected to the silent peer");
    } finally {
      held.forEach((s) => s.destroy());
      silent.close();
    }
  });
});

describe("aer against a daemon without eBPF", () => {
  let bare: TestDaemon | undefined;
  const noEbpf = join(tmp, "no-ebpf");
  before(async () => {
    mkdirSync(noEbpf);
    bare = await startDaemon({ env: { AURAE_EBPF_DIR: noEbpf } });
  });
  after(async () => {
    await bare?.stop();
  });

  test("observe signals exits 3 with UNAVAILABLE and the reason; the rest of the daemon answers", async () => {
    const r = await aer(["observe", "signals"], { config: bare!.configPath, timeoutMs: 15_000 });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^error: UNAVAILABLE: .+\n$/);
    assert.equal(r.stdout, "");
    assert.equal((await aer(["health", "check"], { config: bare!.configPath })).code, 0);
  });
});

describe("aer pki on a fresh machine", () => {
  const home = join(tmp, "home");
  const install = join(tmp, "etc-aurae-pki");
  let daemon: ChildProcess | undefined;
  let socket = "";

  after(async () => {
    if (daemon && daemon.exitCode === null) {
      daemon.kill("SIGTERM");
      await new Promise((r) => daemon!.once("exit", r));
    }
  });

  test("pki create writes ~/.aurae/pki and ~/.aurae/config, and --install copies the server side", async () => {
    socket = join(tmp, "fresh.sock");
    const r = await aer(["--json", "--socket", socket, "pki", "create", "--install", install], { env: { HOME: home }, config: null });
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.dir, join(home, ".aurae/pki"));
    assert.equal(doc.configPath, join(home, ".aurae/config"));
    for (const f of ["ca.crt", "ca.key", "server.key", "_signed.server.crt", "client.nova.key", "_signed.client.nova.crt"]) {
      assert.ok(existsSync(join(home, ".aurae/pki", f)), f);
    }
    assert.equal(statSync(join(home, ".aurae/pki/client.nova.key")).mode & 0o777, 0o600);
    for (const f of ["ca.crt", "server.key", "_signed.server.crt"]) assert.ok(existsSync(join(install, f)), f);
    assert.ok(!existsSync(join(install, "ca.key")), "the CA key stays with the user");
    const config = readFileSync(join(home, ".aurae/config"), "utf8");
    assert.match(config, /^\[auth\]\nca_crt = ".*\/home\/\.aurae\/pki\/ca\.crt"/);
    assert.match(config, new RegExp(`socket = "${socket.replace(/[.]/g, "\\.")}"`));
  });

  test("running pki create again keeps the CA and the config", async () => {
    const ca = readFileSync(join(home, ".aurae/pki/ca.crt"), "utf8");
    const r = await aer(["--socket", socket, "pki", "create"], { env: { HOME: home }, config: null });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(home, ".aurae/pki/ca.crt"), "utf8"), ca);
  });

  test("pki create refuses to replace a different config without --force (exit 5), before writing anything", async () => {
    const r = await aer(["--socket", join(tmp, "other.sock"), "pki", "create", "--dir", join(tmp, "pki-refused")], { env: { HOME: home }, config: null });
    assert.equal(r.code, 5);
    assert.match(r.stderr, /^error: ALREADY_EXISTS: config '.*' exists and differs; pass --force/);
    assert.ok(!existsSync(join(tmp, "pki-refused")), "no PKI was made");
  });

  test("pki create with a bad client name exits 6 and writes nothing", async () => {
    const r = await aer(["pki", "create", "--dir", join(tmp, "pki-bad"), "--client", "no/slash", "--no-write-config"], { env: { HOME: home }, config: null });
    assert.equal(r.code, 6);
    assert.match(r.stderr, /^error: INVALID_ARGUMENT: create the PKI in '.*pki-bad': client name 'no\/slash' is invalid/);
    assert.ok(!existsSync(join(tmp, "pki-bad")));
  });

  test("a daemon using the installed files serves aer using the written config, with no flags", async () => {
    daemon = spawn(
      process.execPath,
      [AURAED, "--ca-crt", join(install, "ca.crt"), "--server-crt", join(install, "_signed.server.crt"), "--server-key", join(install, "server.key"),
        "--socket", socket, "--runtime-dir", join(tmp, "run"), "--library-dir", join(tmp, "lib"), "--cgroup-parent", `aurae-aer-e2e-${process.pid}`],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    await new Promise<void>((resolve, reject) => {
      let logs = "";
      daemon!.stderr!.on("data", (b) => {
        logs += b;
        if (logs.includes('"msg":"auraed started"')) resolve();
      });
      daemon!.once("exit", (c) => reject(new Error(`auraed exited ${c}: ${logs}`)));
    });
    const r = await aer(["discovery", "discover"], { env: { HOME: home }, config: null });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^healthy: true\n/);
  });

  test("pki client issues another identity that the same daemon accepts", async () => {
    const r = await aer(["--socket", socket, "pki", "client", "ops", "--write-config", join(tmp, "ops.toml")], { env: { HOME: home }, config: null });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^issued client 'ops': .*_signed\.client\.ops\.crt/);
    const ok = await aer(["health", "check"], { config: join(tmp, "ops.toml") });
    assert.equal(ok.code, 0, ok.stderr);
  });

  test("pki client without a CA exits 4 and says how to make one", async () => {
    const r = await aer(["pki", "client", "x", "--dir", join(tmp, "empty")], { env: { HOME: home }, config: null });
    assert.equal(r.code, 4);
    assert.match(r.stderr, /no CA in .*empty.*aer pki create/);
  });

  test("pki create --install into a place it cannot write exits non-zero with the reason", async () => {
    // procfs answers ENOENT to mkdir although /proc exists: Node's recursive mkdir spins on it for ever
    const r = await aer(["pki", "create", "--dir", join(tmp, "pki2"), "--no-write-config", "--install", "/proc/aurae-cannot-write"], { env: { HOME: home }, config: null, timeoutMs: 15_000 });
    assert.equal(r.code, 7, `exit ${r.code} (null: killed after 15 s) ${r.stderr}`);
    assert.equal(r.stderr, "error: FAILED_PRECONDITION: install the server side into '/proc/aurae-cannot-write': cannot create directory '/proc/aurae-cannot-write': '/proc' does not accept new directories\n");
  });
});

describe("aer completion", () => {
  test("completion bash prints a script bash accepts", async () => {
    const r = await aer(["completion", "bash"], { config: null });
    assert.equal(r.code, 0);
    const check = spawn("bash", ["-n"], { stdio: ["pipe", "ignore", "pipe"] });
    check.stdin.end(r.stdout);
    assert.equal(await new Promise((res) => check.on("exit", res)), 0);
    assert.match(r.stdout, /complete -o default -F _aer aer/);
  });

  test("completion zsh prints a compdef script; an unknown shell exits 2", async () => {
    const z = await aer(["completion", "zsh"], { config: null });
    assert.match(z.stdout, /^#compdef aer\n/);
    assert.equal((await aer(["completion", "fish"], { config: null })).code, 2);
  });
});
