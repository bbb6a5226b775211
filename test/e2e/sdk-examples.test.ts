import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CellServiceClient, createClient } from "../../src/client/index.js";
import { REPO, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { ebpfMissing } from "../helpers/ebpf.js";
import { runNode, type Run } from "../helpers/run.js";
import { removeTestImage, testImage, vmSkipReason } from "../helpers/vms.js";

const AURAESCRIPT = join(REPO, "bin/auraescript.js");
let d: TestDaemon;

function runExample(file: string, daemon: TestDaemon = d, opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return runNode(AURAESCRIPT, [join(REPO, file), "--config", daemon.configPath], { env: opts.env, timeoutMs: opts.timeoutMs ?? 60_000 });
}

/** The names of the cells a daemon has (top level; children go with their parent). */
async function cellNames(daemon: TestDaemon): Promise<(string | undefined)[]> {
  const c = createClient({ kind: "path", path: daemon.configPath });
  try {
    return (await new CellServiceClient(c).list()).cells.map((n) => n.cell?.name);
  } finally {
    c.close();
  }
}

const tested = new Set<string>();

/**
 * Runs an example and checks that it left no cell behind, whatever happened. A printed
 * `skip: reason` becomes a skipped test, unless `mustRun` says why it may not skip here.
 * Returns stdout otherwise.
 */
async function example(
  t: { skip(msg: string): void },
  file: string,
  mustRun?: string,
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string | undefined> {
  const daemon = d;
  tested.add(file);
  const r = await runExample(file, daemon, opts);
  assert.deepEqual(await cellNames(daemon), [], `${file} left cells behind`);
  assert.equal(r.code, 0, `${file} failed:\n${r.stdout}${r.stderr}`);
  const skip = /^skip: (.*)$/m.exec(r.stdout);
  if (skip) {
    assert.equal(mustRun, undefined, `${file} skipped (${skip[1]}) although ${mustRun}`);
    t.skip(skip[1]!);
    return undefined;
  }
  return r.stdout;
}

before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d?.stop();
});

test("docs/sdk.md shows each examples/sdk file verbatim, and every such file is shown", () => {
  const doc = readFileSync(join(REPO, "docs/sdk.md"), "utf8");
  const blocks = [...doc.matchAll(/```ts file=(\S+)\n([\s\S]*?)```\n/g)];
  assert.ok(blocks.length >= 4);
  for (const [, file, body] of blocks) assert.equal(body, readFileSync(join(REPO, file!), "utf8"), `${file} differs from its block in docs/sdk.md`);
  const shown = new Set(blocks.map((b) => b[1]));
  for (const f of readdirSync(join(REPO, "examples/sdk"))) assert.ok(shown.has(`examples/sdk/${f}`), `examples/sdk/${f} is not in docs/sdk.md`);
});

test("sdk quickstart discovers the daemon", async (t) => {
  assert.match((await example(t, "examples/sdk/quickstart.ts"))!, /^auraed \d+\.\d+\.\d+\S* healthy=true\n$/);
});

test("sdk cells example starts, stops and reports the second stop as NOT_FOUND", async (t) => {
  const out = (await example(t, "examples/sdk/cells.ts"))!;
  assert.match(out, /^nap runs as pid \d+\n/);
  assert.match(out, /^second stop: NOT_FOUND \(5\): .*'nap'/m);
});

test("sdk streams example reads output to its end and aborts an endless stream", async (t) => {
  const out = (await example(t, "examples/sdk/streams.ts"))!;
  assert.match(out, /^output: 1,2,3,4,5$/m);
  assert.match(out, /^as bytes: 10$/m, "readOutput gives the same five lines as bytes");
  const n = Number(/^read (\d+) daemon log records until aborted$/m.exec(out)?.[1]);
  assert.ok(n > 0, out);
});

test("sdk options example connects with Aurae's explicit options and with ours", async (t) => {
  const out = (await example(t, "examples/sdk/options.ts"))!;
  assert.equal(out, `target ${d.target}: status 1\n`.repeat(2));
});

test("examples/allocate.ts allocates a limited cell and a child, then frees them", async (t) => {
  const out = (await example(t, "examples/allocate.ts"))!;
  assert.match(out, /^allocated ex-allocate-\d+ \(cgroup v[12]\)\nex-allocate-\d+ cpu\.max=50000 memory\.max=67108864\n  ex-allocate-\d+\/child cpu\.max=- memory\.max=-\nfreed ex-allocate-\d+\n$/);
});

test("examples/start.ts starts, lists and stops an executable", async (t) => {
  const out = (await example(t, "examples/start.ts"))!;
  const pid = /^started sleeper: pid (\d+)$/m.exec(out)?.[1];
  assert.ok(pid, out);
  assert.match(out, new RegExp(`^listed: sleeper running pid ${pid}$`, "m"));
  assert.match(out, /^stopped sleeper$/m);
});

test("examples/output.ts reads stdout and stderr separately and completely", async (t) => {
  assert.equal(await example(t, "examples/output.ts"), "stdout: out 1 | out 2 | out 3\nstderr: err 1 | err 2 | err 3\n");
});

test("examples/isolation.ts sees the cell's hostname and only its own processes", async (t) => {
  const out = await example(t, "examples/isolation.ts");
  if (out === undefined) return;
  assert.match(out, /^hostname inside: ex-isolated-\d+$/m);
  const n = Number(/^processes visible inside: (\d+)$/m.exec(out)?.[1]);
  assert.ok(n >= 1 && n <= 5, out);
  assert.match(out, /^network interfaces inside: lo$/m);
});

test("examples/signals.ts sees the SIGTERM of a stop delivered into the cell", async (t) => {
  const out = await example(t, "examples/signals.ts", ebpfMissing() ? undefined : "the eBPF object is built");
  if (out === undefined) return;
  assert.match(out, /^saw SIGTERM delivered to pid \d+$/m);
});

test("examples/health.ts: every service SERVING and a first Watch update", async (t) => {
  const out = (await example(t, "examples/health.ts"))!;
  assert.match(out, /^auraed \S+, healthy: true$/m);
  for (const s of ["(daemon)", "aurae.cells.v0.CellService", "aurae.discovery.v0.DiscoveryService", "aurae.observe.v0.ObserveService"]) {
    assert.match(out, new RegExp(`^${s.replace(/[().]/g, "\\$&")}: SERVING$`, "m"));
  }
  assert.match(out, /^watch: SERVING$/m);
});

test("examples/vms.ts runs a micro-VM through its lifecycle and reaches the auraed inside", { timeout: 300_000 }, async (t) => {
  const why = vmSkipReason();
  if (why) {
    tested.add("examples/vms.ts");
    return t.skip(why);
  }
  // A guest image whose certificate the test PKI signed (the daemon's and the client's CA).
  const image = await testImage();
  try {
    const out = (await example(t, "examples/vms.ts", "QEMU and a guest image are here", { env: { AURAE_VM_KERNEL: image.kernel }, timeoutMs: 240_000 }))!;
    assert.match(out, /^started ex-vm-\d+; its auraed listens on 127\.0\.0\.1:\d+$/m);
    assert.match(out, /^guest auraed \d+\.\d+\.\d+\S* healthy=true$/m);
    assert.match(out, /^listed ex-vm-\d+: running$/m);
    assert.match(out, /^stopped ex-vm-\d+$/m);
  } finally {
    await removeTestImage();
  }
});

describe("on a daemon without eBPF (as on a machine where the signal tracer is not built)", () => {
  let bare: TestDaemon | undefined;
  const noEbpf = mkdtempSync(join(tmpdir(), "aurae-no-ebpf-"));
  before(async () => {
    bare = await startDaemon({ env: { AURAE_EBPF_DIR: noEbpf } });
  });
  after(async () => {
    await bare?.stop();
    rmSync(noEbpf, { recursive: true, force: true });
  });

  test("examples/signals.ts prints why it skips, exits 0 and frees its cell", async () => {
    const r = await runExample("examples/signals.ts", bare);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^skip: signal tracing: UNAVAILABLE: .+$/m);
    assert.deepEqual(await cellNames(bare!), []);
  });
});

test("every example in examples/ is run by a test above", () => {
  const files = readdirSync(join(REPO, "examples")).filter((f) => f.endsWith(".ts") && f !== "connect.ts").map((f) => `examples/${f}`);
  files.push(...readdirSync(join(REPO, "examples/sdk")).map((f) => `examples/sdk/${f}`));
  assert.deepEqual(files.filter((f) => !tested.has(f)), []);
});
