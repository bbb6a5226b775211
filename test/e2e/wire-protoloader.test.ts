import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { join } from "node:path";
import { REPO, startDaemon, type TestDaemon } from "../helpers/daemon.js";

// A client that shares no code with the SDK: the .proto files are loaded at run time.
let d: TestDaemon;
let pkg: grpc.GrpcObject;
before(async () => {
  d = await startDaemon();
  const def = protoLoader.loadSync(
    ["aurae/discovery/v0/discovery.proto", "aurae/cells/v0/cells.proto", "aurae/observe/v0/observe.proto", "grpc/health/v1/health.proto"],
    { includeDirs: [join(REPO, "api")], keepCase: true, defaults: true, enums: String, longs: Number },
  );
  pkg = grpc.loadPackageDefinition(def);
});
after(async () => {
  await d?.stop();
});

type Ctor = new (target: string, creds: grpc.ChannelCredentials, opts: object) => grpc.Client & Record<string, Function>;
function ctor(path: string): Ctor {
  return path.split(".").reduce((o: any, k) => o[k], pkg) as Ctor;
}
function call<T>(client: Record<string, Function>, method: string, req: object): Promise<T> {
  return new Promise((resolve, reject) =>
    client[method]!(req, { deadline: Date.now() + 5000 }, (e: Error | null, r: T) => (e ? reject(e) : resolve(r))),
  );
}

test("a run-time-loaded .proto client reads Discover's fields by their wire numbers", async () => {
  const Discovery = ctor("aurae.discovery.v0.DiscoveryService");
  const c = new Discovery(d.target, d.credentials, d.clientOptions);
  const res = await call<{ healthy: boolean; version: string }>(c, "Discover", {});
  c.close();
  assert.equal(res.healthy, true);
  assert.match(res.version, /^\d+\.\d+\.\d+/);
});

test("a run-time-loaded .proto client gets the standard health answers", async () => {
  const Health = ctor("grpc.health.v1.Health");
  const c = new Health(d.target, d.credentials, d.clientOptions);
  const res = await call<{ status: string }>(c, "Check", { service: "aurae.cells.v0.CellService" });
  c.close();
  assert.equal(res.status, "SERVING");
});

test("a run-time-loaded .proto client drives cells and reads an output stream with Aurae's snake_case fields", async () => {
  const Cells = ctor("aurae.cells.v0.CellService");
  const Observe = ctor("aurae.observe.v0.ObserveService");
  const cells = new Cells(d.target, d.credentials, d.clientOptions);
  const observe = new Observe(d.target, d.credentials, d.clientOptions);
  const name = `wire-${process.pid}`;
  try {
    const allocated = await call<{ cell_name: string }>(cells, "Allocate", {
      cell: { name, cpu: { max: 50_000, period: 100_000 }, memory: { max: 64 * 1024 * 1024 }, isolate_process: false, isolate_network: false },
    });
    assert.equal(allocated.cell_name, name);
    type Node = { cell: { name: string; cpu: { max: number; period: number }; memory: { max: number } }; children: Node[] };
    const listed = await call<{ cells: Node[] }>(cells, "List", {});
    const mine = listed.cells.find((n) => n.cell.name === name);
    assert.ok(mine, JSON.stringify(listed));
    assert.equal(mine.cell.cpu.max, 50_000);
    assert.equal(mine.cell.cpu.period, 100_000);
    assert.equal(mine.cell.memory.max, 64 * 1024 * 1024);

    const started = await call<{ pid: number }>(cells, "Start", { cell_name: name, executable: { name: "say", command: "echo over the wire", description: "d" } });
    assert.ok(started.pid > 0);
    const lines = await new Promise<{ channel: string; line: string }[]>((resolve, reject) => {
      const got: { channel: string; line: string }[] = [];
      const stream = observe["GetSubProcessStream"]!({ process_id: started.pid, channel_type: "LOG_CHANNEL_TYPE_STDOUT" }, { deadline: Date.now() + 10_000 });
      stream.on("data", (r: { item: { channel: string; line: string } }) => got.push(r.item));
      stream.on("end", () => resolve(got));
      stream.on("error", reject);
    });
    assert.deepEqual(lines.map((l) => l.line), ["over the wire"]);
    await call(cells, "Stop", { cell_name: name, executable_name: "say" }); // an exited executable keeps its name until Stop
  } finally {
    await call(cells, "Free", { cell_name: name });
    cells.close();
    observe.close();
  }
});
