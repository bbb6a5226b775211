import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect as h2connect } from "node:http2";
import { connect as tlsConnect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { credentials, makeGenericClientConstructor, Metadata, Server, status, type Client, type ClientReadableStream } from "@grpc/grpc-js";
import { AuraeError } from "../../src/daemon/errors.js";
import { Logger } from "../../src/daemon/logger.js";
import { serverStream } from "../../src/daemon/server/rpc.js";
import { directMethods, encodeGrpcMessage, parseGrpcTimeout, routeDirectStreams } from "../../src/daemon/server/direct-stream.js";
import { DirectSession, directStreamCall, messageDecoder } from "../../src/client/direct-stream.js";
import { AuraeClientError } from "../../src/client/errors.js";
import { loadServerCredentials } from "../../src/daemon/server/tls.js";
import { SERVER_NAME } from "../../src/pki/pki.js";
import { testPki } from "../helpers/pki.js";

// The direct path with a test service on a grpc-js server with the daemon's mTLS credentials:
// framing, statuses, deadlines, cancellation, bad requests. The daemon's own streams are tested
// in test/integration/observe-service.test.ts and test/e2e.

const raw = { requestStream: false, responseStream: true, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
const DEF = { direct: { ...raw, path: "/t.T/Direct" }, viaGrpc: { ...raw, path: "/t.T/ViaGrpc" } };

/** What a request asks the handler to do (JSON). */
interface Ask {
  n?: number;
  fail?: string;
  failAfter?: number;
  hang?: boolean;
  /** messages to write in one go, as one buffer of frames where the call takes that (writeFrames) */
  framed?: number;
}

async function setup() {
  const pki = await testPki();
  const nova = pki.clients["nova"]!;
  const tls = { ca: readFileSync(pki.caCrt), cert: readFileSync(nova.crt), key: readFileSync(nova.key) };
  const dir = mkdtempSync(join(tmpdir(), "aurae-direct-"));
  const socket = join(dir, "s.sock");
  const logs: string[] = [];
  const logger = new Logger({ write: (l) => logs.push(l) });
  const seen = { calls: 0, cancelled: 0, sent: 0 };
  const handler = serverStream<Buffer, Buffer>(logger, "T", async (req, call) => {
    seen.calls++;
    const ask = JSON.parse(req.toString() || "{}") as Ask;
    call.on("cancelled", () => seen.cancelled++);
    if (ask.fail && !ask.failAfter) throw new AuraeError("not_found", ask.fail);
    for (let i = 0; i < (ask.n ?? 0); i++) {
      if (ask.failAfter === i) throw new AuraeError("failed_precondition", ask.fail ?? "failed");
      if (!call.write(Buffer.from(`message ${i}`))) await new Promise((r) => call.once("drain", r));
      if (call.cancelled) return;
    }
    if (ask.framed) {
      const msgs = Array.from({ length: ask.framed }, (_, i) => Buffer.from(`framed ${i}`));
      const frames = Buffer.concat(msgs.flatMap((m) => [Buffer.from([0, 0, 0, 0, m.length]), m]));
      const direct = call as unknown as { writeFrames?: (f: Buffer, m: Buffer[]) => boolean };
      if (direct.writeFrames) direct.writeFrames(frames, msgs);
      else for (const m of msgs) call.write(m);
    }
    if (ask.hang) await new Promise<void>((r) => call.on("cancelled", () => r()));
  });
  const impl = { direct: handler, viaGrpc: handler };
  const server = new Server();
  server.addService(DEF, impl);
  await new Promise<void>((res, rej) => server.bindAsync(`unix://${socket}`, loadServerCredentials({ caCrt: pki.caCrt, serverCrt: pki.serverCrt, serverKey: pki.serverKey }), (e) => (e ? rej(e) : res())));
  const routed = routeDirectStreams(server, directMethods(DEF, impl, ["direct"], () => seen.sent++), logger);
  const Ctor = makeGenericClientConstructor(DEF, "T");
  const client = new Ctor(`unix://${socket}`, credentials.createSsl(tls.ca, tls.key, tls.cert), { "grpc.ssl_target_name_override": SERVER_NAME, "grpc.default_authority": SERVER_NAME }) as Client & Record<string, (req: Buffer, md?: Metadata, opts?: object) => ClientReadableStream<Buffer>>;
  const close = async () => {
    client.close();
    await new Promise<void>((r) => server.tryShutdown(() => r()));
    rmSync(dir, { recursive: true, force: true });
  };
  return { socket, server, client, routed, seen, logs, close, tls };
}

type Setup = Awaited<ReturnType<typeof setup>>;

/** Reads a stream with grpc-js: its messages and its status. */
function readAll(s: ClientReadableStream<Buffer>): Promise<{ msgs: string[]; code: number; details: string }> {
  return new Promise((resolve) => {
    const msgs: string[] = [];
    s.on("data", (b: Buffer) => msgs.push(b.toString()));
    s.on("error", (e: { code: number; details: string }) => resolve({ msgs, code: e.code, details: e.details }));
    s.on("status", (st: { code: number; details: string }) => {
      if (st.code === status.OK) resolve({ msgs, code: 0, details: st.details });
    });
  });
}

const ask = (a: Ask) => Buffer.from(JSON.stringify(a));

async function withSetup(fn: (s: Setup) => Promise<void>): Promise<void> {
  const s = await setup();
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

test("this grpc-js lets its HTTP/2 streams be routed (routeDirectStreams finds its servers)", () =>
  withSetup(async (s) => {
    assert.equal(s.routed, true, "grpc-js's http2Servers field was not found: the direct streams fall back to grpc-js");
  }));

test("a grpc-js client gets the same messages and status from the direct path as from grpc-js", () =>
  withSetup(async (s) => {
    const direct = await readAll(s.client.direct!(ask({ n: 500 })));
    const grpc = await readAll(s.client.viaGrpc!(ask({ n: 500 })));
    assert.equal(direct.code, 0);
    assert.deepEqual(direct.msgs, grpc.msgs);
    assert.equal(direct.msgs.length, 500);
    assert.equal(direct.msgs[499], "message 499");
    // each response's bytes were reported sent
    assert.equal(s.seen.sent, 500);
  }));

test("responses written as one buffer of frames arrive as the same messages; each is reported sent", () =>
  withSetup(async (s) => {
    const direct = await readAll(s.client.direct!(ask({ n: 2, framed: 300 })));
    const grpc = await readAll(s.client.viaGrpc!(ask({ n: 2, framed: 300 })));
    assert.equal(direct.code, 0);
    assert.deepEqual(direct.msgs, grpc.msgs);
    assert.equal(direct.msgs.length, 302);
    assert.equal(direct.msgs[301], "framed 299");
    assert.equal(s.seen.sent, 302);
  }));

test("errors arrive as their status: before any message (trailers only) and after some", () =>
  withSetup(async (s) => {
    const before = await readAll(s.client.direct!(ask({ fail: "process 7: not found ✗ 100%" })));
    assert.equal(before.code, status.NOT_FOUND);
    assert.equal(before.details, "process 7: not found ✗ 100%");
    assert.deepEqual(before.msgs, []);
    const after = await readAll(s.client.direct!(ask({ n: 10, failAfter: 3, fail: "stopped" })));
    assert.equal(after.code, status.FAILED_PRECONDITION);
    assert.equal(after.details, "stopped");
    assert.deepEqual(after.msgs, ["message 0", "message 1", "message 2"]);
  }));

test("a deadline ends the call with DEADLINE_EXCEEDED and cancels the handler", () =>
  withSetup(async (s) => {
    const t0 = Date.now();
    const r = await readAll(s.client.direct!(ask({ hang: true }), new Metadata(), { deadline: Date.now() + 300 }));
    assert.equal(r.code, status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - t0 < 3000);
    await waitFor(() => s.seen.cancelled > 0);
  }));

test("a client that cancels cancels the handler", () =>
  withSetup(async (s) => {
    const call = s.client.direct!(ask({ hang: true }));
    call.on("error", () => undefined);
    await waitFor(() => s.seen.calls > 0);
    call.cancel();
    await waitFor(() => s.seen.cancelled > 0);
  }));

test("bad requests get a clear status, and the handler is not called", () =>
  withSetup(async (s) => {
    const session = h2connect(`https://${SERVER_NAME}`, {
      createConnection: () => tlsConnect({ path: s.socket, ...s.tls, servername: SERVER_NAME, ALPNProtocols: ["h2"] }),
    });
    const post = (body: Buffer, headers: Record<string, string> = {}) =>
      new Promise<{ status?: string; message?: string }>((resolve) => {
        const r = session.request({ ":method": "POST", ":path": "/t.T/Direct", "content-type": "application/grpc", te: "trailers", ...headers });
        let result: { status?: string; message?: string } = {};
        const take = (h: Record<string, unknown>) => {
          if (h["grpc-status"] !== undefined) result = { status: String(h["grpc-status"]), message: decodeURIComponent(String(h["grpc-message"] ?? "")) };
        };
        r.on("response", take);
        r.on("trailers", take);
        r.on("data", () => undefined);
        r.on("error", () => undefined);
        r.on("close", () => resolve(result));
        r.end(body);
      });
    const frame = (msg: Buffer, compressed = 0) => {
      const p = Buffer.alloc(5);
      p[0] = compressed;
      p.writeUInt32BE(msg.length, 1);
      return Buffer.concat([p, msg]);
    };
    try {
      assert.deepEqual(await post(Buffer.from([0, 0])), { status: String(status.INVALID_ARGUMENT), message: "request: no message received" });
      assert.deepEqual(await post(frame(ask({})).subarray(0, 6)), { status: String(status.INVALID_ARGUMENT), message: "request: message cut short" });
      assert.deepEqual(await post(Buffer.concat([frame(ask({})), frame(ask({}))])), {
        status: String(status.INVALID_ARGUMENT),
        message: "request: more than one message for a unary request",
      });
      assert.deepEqual(await post(frame(ask({}), 1), { "grpc-encoding": "snappy" }), { status: String(status.UNIMPLEMENTED), message: "request: compression 'snappy' is not supported" });
      const big = await post(Buffer.alloc(4 * 1024 * 1024 + 100));
      assert.equal(big.status, String(status.RESOURCE_EXHAUSTED));
      assert.equal(s.seen.calls, 0);
      // a gzip-compressed request is taken
      assert.deepEqual(await post(frame(gzipSync(ask({ n: 1 })), 1), { "grpc-encoding": "gzip" }), { status: "0", message: "" });
      assert.equal(s.seen.calls, 1);
    } finally {
      session.close();
    }
  }));

test("the SDK's direct client reads the stream, reports statuses, and cancels when the loop is left", () =>
  withSetup(async (s) => {
    const session = new DirectSession({ socket: { kind: "unix", path: s.socket }, ...s.tls, serverName: SERVER_NAME, window: 1 << 20 });
    const whole = () => messageDecoder((b: Buffer) => [b.toString()]);
    try {
      const got: string[] = [];
      for await (const m of directStreamCall(session, "/t.T/Direct", "t.T/Direct", ask({ n: 300 }), whole)) got.push(m);
      assert.equal(got.length, 300);
      assert.equal(got[299], "message 299");
      await assert.rejects(
        (async () => {
          for await (const _ of directStreamCall(session, "/t.T/Direct", "t.T/Direct", ask({ fail: "cell 'x': not found" }), whole));
        })(),
        (e: unknown) => e instanceof AuraeClientError && e.code === status.NOT_FOUND && e.details === "cell 'x': not found",
      );
      await assert.rejects(
        (async () => {
          for await (const _ of directStreamCall(session, "/t.T/Direct", "t.T/Direct", ask({ hang: true }), whole, { deadlineMs: 200 }));
        })(),
        (e: unknown) => e instanceof AuraeClientError && e.code === status.DEADLINE_EXCEEDED,
      );
      const cancelledBefore = s.seen.cancelled;
      for await (const _ of directStreamCall(session, "/t.T/Direct", "t.T/Direct", ask({ n: 100_000 }), whole)) break;
      await waitFor(() => s.seen.cancelled > cancelledBefore);
      await assert.rejects(
        (async () => {
          for await (const _ of directStreamCall(session, "/t.T/Nope", "t.T/Nope", ask({}), whole));
        })(),
        (e: unknown) => e instanceof AuraeClientError && e.code === status.UNIMPLEMENTED,
      );
    } finally {
      session.close();
    }
  }));

test("without a client certificate the direct path is not reached", () =>
  withSetup(async (s) => {
    const session = new DirectSession({ socket: { kind: "unix", path: s.socket }, ca: s.tls.ca, cert: undefined as unknown as Buffer, key: undefined as unknown as Buffer, serverName: SERVER_NAME, window: 1 << 20 });
    try {
      await assert.rejects(
        (async () => {
          for await (const _ of directStreamCall(session, "/t.T/Direct", "t.T/Direct", ask({ n: 1 }), () => messageDecoder((b: Buffer) => [b]), { deadlineMs: 5000 }));
        })(),
        (e: unknown) => e instanceof AuraeClientError && e.code === status.UNAVAILABLE,
      );
      assert.equal(s.seen.calls, 0);
    } finally {
      session.close();
    }
  }));

test("grpc-timeout and grpc-message encodings", () => {
  assert.equal(parseGrpcTimeout("100m"), 100);
  assert.equal(parseGrpcTimeout("5S"), 5000);
  assert.equal(parseGrpcTimeout("2M"), 120_000);
  assert.equal(parseGrpcTimeout("1H"), 3_600_000);
  assert.equal(parseGrpcTimeout("3000u"), 3);
  assert.equal(parseGrpcTimeout("x"), undefined);
  assert.equal(parseGrpcTimeout("123456789S"), undefined, "at most 8 digits");
  assert.equal(parseGrpcTimeout(undefined), undefined);
  assert.equal(encodeGrpcMessage("plain text: ok"), "plain text: ok");
  assert.equal(encodeGrpcMessage("100% ✗\n"), "100%25 %E2%9C%97%0A");
  assert.equal(decodeURIComponent(encodeGrpcMessage("100% ✗\n")), "100% ✗\n");
});

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}
