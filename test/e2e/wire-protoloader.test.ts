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
    ["aurae/discovery/v0/discovery.proto", "aurae/cells/v0/cells.proto", "grpc/health/v1/health.proto"],
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
