import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as grpc from "@grpc/grpc-js";
import {
  ObserveServiceClient,
  WorkloadType,
  type Signal,
} from "../../src/api/aurae/observe/v0/observe.js";
import { Logger } from "../../src/daemon/logger.js";
import type { DaemonContext, ServiceModule } from "../../src/daemon/context.js";
import { createObserveService } from "../../src/daemon/observe/service.js";
import type { ExecutableDirectory } from "../../src/daemon/observe/ports.js";
import { defaultEbpfDir, SIGNAL_OBJECT, SignalTracer } from "../../src/platform/ebpf/signal-tracer.js";

/**
 * Signals through the real eBPF tracer: processes sit in cgroups made under a unique test
 * parent, laid out as cells are (`<parent>/<cell>/_`), on a cgroup v1 hierarchy (memory) and on
 * cgroup v2 (the unified mount of this hybrid host, or /sys/fs/cgroup on a pure v2 host).
 */
const parent = `observe-sig-${process.pid}`;
const hierarchies: { name: string; mount: string }[] = [];
for (const [name, mount] of [
  ["cgroup v1 memory", "/sys/fs/cgroup/memory"],
  ["cgroup v2 unified", "/sys/fs/cgroup/unified"],
  ["cgroup v2", "/sys/fs/cgroup"],
] as const) {
  const isV2 = name.startsWith("cgroup v2");
  if (!fs.existsSync(path.join(mount, "cgroup.procs"))) continue;
  if (isV2 !== fs.existsSync(path.join(mount, "cgroup.controllers"))) continue;
  if (isV2 && hierarchies.some((h) => h.name.startsWith("cgroup v2"))) continue;
  hierarchies.push({ name, mount });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), `observe-sig-${process.pid}-`));
const socket = path.join(dir, "observe.sock");
const logger = new Logger({ write: () => {} });
const cells = new Set(["c1", "c1/n", "c2"]);
/** what the cells service would answer for host pids it knows (simulates an isolated cell's pid) */
const described = new Map<number, { cellName: string; reportedPid: number }>();
const directory: ExecutableDirectory = {
  findByPid: () => undefined,
  hasCell: (c) => cells.has(c),
  describeHostPid: (pid) => described.get(pid),
};
const children: ChildProcess[] = [];
const created: string[] = [];
let skip: string | undefined;
let service: ServiceModule;
let server: grpc.Server;
let client: ObserveServiceClient;

function ebpfSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root for eBPF";
  const obj = path.join(defaultEbpfDir(), SIGNAL_OBJECT);
  if (!fs.existsSync(obj)) {
    const build = spawnSync("bash", [new URL("../../src/platform/ebpf/build.sh", import.meta.url).pathname], { encoding: "utf8" });
    if (build.status !== 0) return `eBPF object missing and build.sh failed (clang-14, libbpf-dev?): ${build.stderr.trim()}`;
  }
  try {
    SignalTracer.start(() => {}).stop();
  } catch (err) {
    return `eBPF unavailable here: ${(err as Error).message}`;
  }
  if (hierarchies.length === 0) return "no cgroup hierarchy found";
  return undefined;
}

before(async () => {
  skip = ebpfSkipReason();
  if (skip) return;
  const ctx = {
    mode: "daemon",
    version: "test",
    runtimeDir: dir,
    libraryDir: dir,
    cgroupParent: parent,
    stopGraceMs: 1000,
    logger,
    tls: { caCrt: "", serverCrt: "", serverKey: "" },
  } satisfies DaemonContext;
  service = createObserveService(ctx, { directory });
  server = new grpc.Server();
  server.addService(service.definition, service.implementation);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  client = new ObserveServiceClient(`unix:${socket}`, grpc.credentials.createInsecure());
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once("exit", r)) : null)));
  for (const d of created.reverse()) {
    // anything still in our test cgroups is ours (e.g. a namespace's orphaned init)
    for (let i = 0; i < 100; i++) {
      let pids: string[] = [];
      try {
        pids = fs.readFileSync(path.join(d, "cgroup.procs"), "utf8").split("\n").filter(Boolean);
      } catch {
        break;
      }
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          /* gone */
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    try {
      fs.rmdirSync(d);
    } catch (err) {
      console.log(`# cleanup: ${d}: ${(err as Error).message}`);
    }
  }
  client?.close();
  await service?.shutdown?.();
  if (server) await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  fs.rmSync(dir, { recursive: true, force: true });
});

function mkcg(mount: string, rel: string): string {
  let cur = mount;
  for (const part of rel.split("/")) {
    cur = path.join(cur, part);
    if (!fs.existsSync(cur)) {
      fs.mkdirSync(cur);
      created.push(cur);
    }
  }
  return cur;
}

/** Starts `sleep 100` already inside the cgroup (it moves itself before exec). */
async function sleeperIn(cgroupDir: string): Promise<ChildProcess> {
  const child = spawn("sh", ["-c", `echo $$ > ${cgroupDir}/cgroup.procs && echo ready && exec sleep 100`], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once("data", () => resolve());
    child.once("exit", (code) => reject(new Error(`sleeper exited ${code}`)));
  });
  return child;
}

interface Sub {
  signals: Signal[];
  stream: grpc.ClientReadableStream<{ signal?: Signal }>;
  live: Promise<void>;
  error?: grpc.ServiceError;
}

function subscribe(cell?: string): Sub {
  const stream = client.getPosixSignalsStream(
    { workload: cell ? { workloadType: WorkloadType.WORKLOAD_TYPE_CELL, id: cell } : undefined },
  );
  const sub: Sub = { signals: [], stream, live: new Promise((r) => stream.once("metadata", () => r())) };
  stream.on("data", (m: { signal: Signal }) => sub.signals.push(m.signal));
  stream.on("error", (e: grpc.ServiceError) => (sub.error = e));
  return sub;
}

function waitFor(sub: Sub, pred: (s: Signal) => boolean, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error("signal did not arrive")), ms);
    const check = () => {
      if (sub.signals.some(pred)) {
        clearTimeout(deadline);
        sub.stream.off("data", check);
        resolve();
      }
    };
    sub.stream.on("data", check);
    check();
  });
}

for (const h of hierarchies) {
  test(`a cell's signal stream shows its own and its descendants' signals only (${h.name})`, async (t) => {
    if (skip) return t.skip(skip);
    const base = `${parent}`;
    const c1 = mkcg(h.mount, `${base}/c1/_`);
    const n = mkcg(h.mount, `${base}/c1/n/_`);
    const c2 = mkcg(h.mount, `${base}/c2/_`);
    const p1 = await sleeperIn(c1);
    const p1b = await sleeperIn(c1);
    const pn = await sleeperIn(n);
    const p2 = await sleeperIn(c2);
    // the cells service reports c2's process under another pid (as for an isolated cell)
    described.set(p2.pid!, { cellName: "c2", reportedPid: 4_000_000 + (p2.pid! % 100_000) });

    const host = subscribe();
    const subC1 = subscribe("c1");
    const subN = subscribe("c1/n");
    const subC2 = subscribe("c2");
    await Promise.all([host.live, subC1.live, subN.live, subC2.live]);

    process.kill(p1.pid!, "SIGTERM");
    process.kill(p2.pid!, "SIGKILL");
    process.kill(pn.pid!, "SIGTERM");
    process.kill(p1b.pid!, "SIGKILL");
    const p2Reported = described.get(p2.pid!)!.reportedPid;
    await Promise.all([
      waitFor(host, (s) => s.processId === p1b.pid && s.signal === 9),
      waitFor(host, (s) => s.processId === p2Reported && s.signal === 9),
      waitFor(subC1, (s) => s.processId === p1b.pid),
      waitFor(subN, (s) => s.processId === pn.pid),
      waitFor(subC2, (s) => s.processId === p2Reported),
    ]);
    // signals after the last expected one would have arrived by now if they were to
    await new Promise((r) => setTimeout(r, 100));
    for (const s of [host, subC1, subN, subC2]) s.stream.cancel();

    const ours = new Map([
      [p1.pid!, "p1"],
      [p1b.pid!, "p1b"],
      [pn.pid!, "pn"],
      [p2Reported, "p2"],
    ]);
    const seen = (sub: Sub) =>
      sub.signals
        .filter((s) => ours.has(s.processId))
        .map((s) => `${ours.get(s.processId)}:${s.signal}:${s.cellName}`)
        .sort();
    assert.deepEqual(seen(subC1), ["p1:15:c1", "p1b:9:c1", "pn:15:c1/n"]);
    assert.deepEqual(seen(subN), ["pn:15:c1/n"]);
    assert.deepEqual(seen(subC2), ["p2:9:c2"]);
    assert.deepEqual(seen(host), ["p1:15:c1", "p1b:9:c1", "p2:9:c2", "pn:15:c1/n"]);
    // a cell stream carries nothing from outside the cell (the test process gets SIGCHLDs meanwhile)
    assert.ok(subC1.signals.every((s) => s.cellName === "c1" || s.cellName === "c1/n"));
    assert.ok(subN.signals.every((s) => s.cellName === "c1/n"));
    assert.ok(host.signals.some((s) => s.processId === process.pid && s.signal === 17 && s.cellName === ""), "SIGCHLD to the test process is host-wide only");
  });
}

test("a process in its own pid namespace is reported by its namespace pid when the directory does not know it", async (t) => {
  if (skip) return t.skip(skip);
  const h = hierarchies[0]!;
  const c1 = mkcg(h.mount, `${parent}/c1/_`);
  const holder = spawn("sh", ["-c", `echo $$ > ${c1}/cgroup.procs && exec unshare --pid --fork sh -c 'echo ready; exec sleep 100'`], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(holder);
  await new Promise((r) => holder.stdout!.once("data", r));
  const inner = Number(fs.readFileSync(`/proc/${holder.pid}/task/${holder.pid}/children`, "utf8").trim().split(/\s+/)[0]);
  assert.ok(inner > 0);
  const sub = subscribe("c1");
  await sub.live;
  process.kill(inner, "SIGTERM");
  await waitFor(sub, (s) => s.signal === 15 && s.processId === 1);
  sub.stream.cancel();
  // a namespace's init ignores SIGTERM: end it for real
  process.kill(inner, "SIGKILL");
  assert.ok(!sub.signals.some((s) => s.processId === inner), "the host pid is not reported");
});

test("the tracer is shared, started by the first subscriber and released after the last", async (t) => {
  if (skip) return t.skip(skip);
  // streams cancelled by earlier tests are released asynchronously on the server
  await until(() => bpfLinks() === 0);
  const before = bpfLinks();
  const a = subscribe();
  const b = subscribe("c1");
  await Promise.all([a.live, b.live]);
  assert.equal(bpfLinks() - before, 1, "one program attached for two subscribers");
  a.stream.cancel();
  b.stream.cancel();
  await until(() => bpfLinks() === before);
  assert.equal(bpfLinks(), before, "detached after the last subscriber left");
});

async function until(pred: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** tracing links of this process (bpf_link fds in /proc/self/fdinfo) */
function bpfLinks(): number {
  let n = 0;
  for (const fd of fs.readdirSync("/proc/self/fd")) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === "anon_inode:bpf_link") n++;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}
