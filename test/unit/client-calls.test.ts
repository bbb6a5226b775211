import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { status, type ServerWritableStream } from "@grpc/grpc-js";
import { testPki } from "../helpers/pki.js";
import { startFakeDaemon, type FakeDaemon } from "../../src/client/testing.js";
import {
  AuraeClientError,
  Cell,
  CellServiceClient,
  DiscoveryServiceClient,
  HealthClient,
  HealthCheckResponse_ServingStatus,
  LogChannelType,
  ObserveServiceClient,
  VmServiceClient,
  createClient,
  cells as cellsNs,
} from "../../src/client/index.js";
import { CellServiceService } from "../../src/api/aurae/cells/v0/cells.js";
import { DiscoveryServiceService } from "../../src/api/aurae/discovery/v0/discovery.js";
import { ObserveServiceService } from "../../src/api/aurae/observe/v0/observe.js";
import { VmServiceService } from "../../src/api/aurae/vms/v0/vms.js";
import { HealthService } from "../../src/api/grpc/health/v1/health.js";

let fake: FakeDaemon;
let streamCancelled: Promise<void>;
let markCancelled: () => void;

before(async () => {
  const pki = await testPki();
  streamCancelled = new Promise((r) => (markCancelled = r));
  fake = await startFakeDaemon({
    pki: { caCrt: pki.caCrt, serverCrt: pki.serverCrt, serverKey: pki.serverKey, clientCrt: pki.clients["nova"]!.crt, clientKey: pki.clients["nova"]!.key },
    handlers: {
      "aurae.cells.v0.CellService/Allocate": (req) => ({ cellName: req.cell.name, cgroupV2: false }),
      "aurae.cells.v0.CellService/Free": (req) => {
        throw { code: status.NOT_FOUND, details: `free cell '${req.cellName}': not found` };
      },
      "aurae.cells.v0.CellService/Stop": () => ({}),
      "aurae.cells.v0.CellService/List": () => new Promise((r) => setTimeout(() => r({ cells: [] }), 2000)),
      "aurae.discovery.v0.DiscoveryService/Discover": () => ({ healthy: true, version: "9.9.9" }),
      "grpc.health.v1.Health/Check": (req) => ({ status: req.service === "" ? 1 : 2 }),
      "aurae.observe.v0.ObserveService/GetSubProcessStream": (req) =>
        [1, 2, 3].map((i) => ({ item: { channel: String(req.channelType), line: `line ${i} of ${req.processId}`, timestamp: i } })),
      "aurae.observe.v0.ObserveService/GetAuraeDaemonLogStream": (_req, call) => {
        const c = call as ServerWritableStream<unknown, unknown>;
        c.on("cancelled", () => markCancelled());
        let i = 0;
        const t = setInterval(() => c.write({ item: { channel: "daemon", line: `log ${i++}`, timestamp: Date.now() } }), 5);
        c.on("cancelled", () => clearInterval(t));
        return undefined;
      },
      "grpc.health.v1.Health/Watch": () => {
        throw { code: status.UNAVAILABLE, details: "shutting down" };
      },
    },
  });
});
after(async () => {
  await fake?.stop();
});

test("a unary call resolves with the decoded response and the request carries Aurae's field names", async () => {
  const cells = new CellServiceClient(fake.client());
  const res = await cells.allocate({ cell: Cell.fromPartial({ name: "web", cpu: { max: 400_000, weight: 2 } }) });
  assert.deepEqual(res, { cellName: "web", cgroupV2: false });
  const req = fake.calls.at(-1)!;
  assert.equal(req.method, "aurae.cells.v0.CellService/Allocate");
  assert.deepEqual({ ...(req.request as { cell: Cell }).cell.cpu }, { weight: 2, max: 400_000, period: undefined });
});

test("a partial request is completed with proto defaults before it is sent", async () => {
  await new CellServiceClient(fake.client()).stop({ cellName: "web" } as never);
  assert.deepEqual(fake.calls.at(-1)!.request, { cellName: "web", executableName: "" });
});

test("a failed call rejects with AuraeClientError carrying code, codeName and details", async () => {
  await assert.rejects(new CellServiceClient(fake.client()).free({ cellName: "nope" }), (e: unknown) => {
    assert.ok(e instanceof AuraeClientError);
    assert.equal(e.code, status.NOT_FOUND);
    assert.equal(e.codeName, "NOT_FOUND");
    assert.equal(e.details, "free cell 'nope': not found");
    assert.equal(e.method, "aurae.cells.v0.CellService/Free");
    return true;
  });
});

test("an unscripted method surfaces as UNIMPLEMENTED", async () => {
  await assert.rejects(new VmServiceClient(fake.client()).list(), (e: AuraeClientError) => e.codeName === "UNIMPLEMENTED");
});

test("deadlineMs makes a slow call fail with DEADLINE_EXCEEDED", async () => {
  const t0 = Date.now();
  await assert.rejects(new CellServiceClient(fake.client()).list({}, { deadlineMs: 100 }), (e: AuraeClientError) => e.codeName === "DEADLINE_EXCEEDED");
  assert.ok(Date.now() - t0 < 1500, "the deadline, not the handler, ended the call");
});

test("the client's defaultDeadlineMs applies to calls that set none", async () => {
  const c = fake.client();
  c.defaultDeadlineMs = 100;
  await assert.rejects(new CellServiceClient(c).list(), (e: AuraeClientError) => e.codeName === "DEADLINE_EXCEEDED");
});

test("an AbortSignal cancels a unary call with CANCELLED", async () => {
  const ac = new AbortController();
  const p = new CellServiceClient(fake.client()).list({}, { signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(p, (e: AuraeClientError) => e.codeName === "CANCELLED");
});

test("an already aborted signal rejects without calling", async () => {
  const before = fake.calls.length;
  await assert.rejects(new DiscoveryServiceClient(fake.client()).discover({}, { signal: AbortSignal.abort() }), (e: AuraeClientError) => e.codeName === "CANCELLED");
  assert.equal(fake.calls.length, before);
});

test("a server stream is an async iterable that ends when the server ends it", async () => {
  const observe = new ObserveServiceClient(fake.client());
  const lines: string[] = [];
  for await (const res of observe.getSubProcessStream({ processId: 42, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDERR })) lines.push(res.item!.line);
  assert.deepEqual(lines, ["line 1 of 42", "line 2 of 42", "line 3 of 42"]);
});

test("toArray collects a whole stream", async () => {
  const all = await new ObserveServiceClient(fake.client()).getSubProcessStream({ processId: 7, channelType: 1 }).toArray();
  assert.equal(all.length, 3);
});

test("leaving a for-await loop early cancels the stream on the server", async () => {
  const observe = new ObserveServiceClient(fake.client());
  let n = 0;
  for await (const _ of observe.getAuraeDaemonLogStream()) if (++n === 3) break;
  assert.equal(n, 3);
  await Promise.race([streamCancelled, new Promise((_, rej) => setTimeout(() => rej(new Error("server never saw the cancel")), 3000))]);
});

test("a stream error arrives as AuraeClientError from the iteration", async () => {
  const it = new HealthClient(fake.client()).watch({ service: "" });
  await assert.rejects(
    (async () => {
      for await (const _ of it) { /* none */ }
    })(),
    (e: AuraeClientError) => e.codeName === "UNAVAILABLE" && e.details === "shutting down",
  );
});

test("a stream is aborted by its signal", async () => {
  const ac = new AbortController();
  const it = new ObserveServiceClient(fake.client()).getAuraeDaemonLogStream({}, { signal: ac.signal });
  let n = 0;
  await assert.rejects(
    (async () => {
      for await (const _ of it) if (++n === 2) ac.abort();
    })(),
    (e: AuraeClientError) => e.codeName === "CANCELLED",
  );
});

test("health check returns the serving status enum", async () => {
  const h = new HealthClient(fake.client());
  assert.equal((await h.check({ service: "" })).status, HealthCheckResponse_ServingStatus.SERVING);
  assert.equal((await h.check({ service: "x" })).status, HealthCheckResponse_ServingStatus.NOT_SERVING);
});

test("createClient({kind: 'opts'}) accepts PEM contents as well as paths", async () => {
  const { readFileSync } = await import("node:fs");
  const a = fake.config.auth;
  const c = createClient({ kind: "opts", ca_crt: readFileSync(a.caCrt, "utf8"), client_crt: readFileSync(a.clientCrt, "utf8"), client_key: a.clientKey, socket: fake.socket });
  try {
    assert.deepEqual(await new DiscoveryServiceClient(c).discover(), { healthy: true, version: "9.9.9" });
  } finally {
    c.close();
  }
});

test("a client whose server name does not match the certificate cannot connect", async () => {
  const c = createClient({ config: fake.config, serverName: "wrong.example" });
  try {
    await assert.rejects(new DiscoveryServiceClient(c).discover({}, { deadlineMs: 3000 }), (e: AuraeClientError) => e.codeName === "UNAVAILABLE");
  } finally {
    c.close();
  }
});

test("the namespaced exports mirror Aurae's module shape", () => {
  assert.equal(cellsNs.CellServiceClient, CellServiceClient);
  assert.equal(typeof cellsNs.Cell.fromPartial, "function");
});

test("a missing socket fails with UNAVAILABLE and says the socket does not exist", async () => {
  const c = createClient({ config: fake.config, socket: "/nonexistent/aurae.sock" });
  try {
    await assert.rejects(new DiscoveryServiceClient(c).discover({}, { deadlineMs: 3000 }), (e: AuraeClientError) => e.codeName === "UNAVAILABLE" && /socket does not exist|ENOENT|No such file/.test(e.details));
  } finally {
    c.close();
  }
});

test("every RPC of every service has a typed method: unary ones return promises, streaming ones async iterables", async () => {
  const pairs = [
    [CellServiceClient, CellServiceService],
    [ObserveServiceClient, ObserveServiceService],
    [VmServiceClient, VmServiceService],
    [DiscoveryServiceClient, DiscoveryServiceService],
    [HealthClient, HealthService],
  ] as const;
  const client = fake.client();
  let n = 0;
  for (const [Ctor, def] of pairs) {
    const svc = new Ctor(client) as unknown as Record<string, (req: object) => unknown>;
    for (const [key, method] of Object.entries(def)) {
      const path = (method as { path: string }).path.slice(1);
      assert.equal(typeof svc[key], "function", `${Ctor.name}.${key} for ${path}`);
      const out = svc[key]!({});
      if ((method as { responseStream: boolean }).responseStream) {
        assert.equal(typeof (out as AsyncIterable<unknown>)[Symbol.asyncIterator], "function", `${path} returns an async iterable`);
        (out as { cancel(): void }).cancel();
      } else {
        assert.ok(out instanceof Promise, `${path} returns a promise`);
        // unscripted methods fail with UNIMPLEMENTED, naming the method; that they arrive at all is the point
        await (out as Promise<unknown>).catch((e: AuraeClientError) => assert.equal(e.method, path));
      }
      n++;
    }
  }
  assert.equal(n, 16);
  assert.ok(
    ["Allocate", "Free", "Start", "Stop", "List"].every((rpc) => fake.calls.some((c) => c.method === `aurae.vms.v0.VmService/${rpc}`)),
    "the calls reached the daemon under their wire names",
  );
});
