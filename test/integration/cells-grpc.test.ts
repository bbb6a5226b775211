/**
 * The CellService over gRPC (a plain local server on a Unix socket; mTLS is the server's job
 * and is tested with the real daemon): status codes, messages naming the object, the List
 * tree with the executables extension, Start/Stop.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Server, ServerCredentials, credentials, status, type ServiceError } from "@grpc/grpc-js";
import { Cell, CellServiceClient, type CellGraphNode } from "../../src/api/aurae/cells/v0/cells.js";
import { createCellService, type CellsModule } from "../../src/daemon/cells/service.js";
import { Logger } from "../../src/daemon/logger.js";
import type { DaemonContext } from "../../src/daemon/context.js";
import { detectCgroupLayout } from "../../src/platform/cgroups/layout.js";
import { forceRemoveCgroupTree } from "../../src/platform/cgroups/cleanup.js";

const SKIP = process.getuid?.() === 0 ? false : "needs root and real cgroups";

type Call<Req, Res> = (req: Req, cb: (err: ServiceError | null, res: Res) => void) => unknown;
const call = <Req, Res>(fn: Call<Req, Res>, req: Req) =>
  new Promise<Res>((resolve, reject) => fn(req, (err, res) => (err ? reject(err) : resolve(res))));
const grpcError = (code: status, re: RegExp) => (e: unknown) =>
  (e as ServiceError).code === code && re.test((e as ServiceError).details) ? true : assert.fail(`expected ${status[code]} ${re}, got ${status[(e as ServiceError).code]}: ${(e as ServiceError).details}`);

describe("CellService over gRPC", { skip: SKIP }, () => {
  const parent = `aurae-test-grpc-${process.pid}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cells-grpc-"));
  const socket = path.join(dir, "s.sock");
  let server: Server;
  let module: CellsModule;
  let client: InstanceType<typeof CellServiceClient>;
  let c: {
    allocate: (r: Parameters<typeof client.allocate>[0]) => Promise<{ cellName: string; cgroupV2: boolean }>;
    free: (r: { cellName: string }) => Promise<unknown>;
    start: (r: Parameters<typeof client.start>[0]) => Promise<{ pid: number; uid: number; gid: number; hostPid: number }>;
    stop: (r: Parameters<typeof client.stop>[0]) => Promise<unknown>;
    list: () => Promise<{ cells: CellGraphNode[] }>;
  };

  before(async () => {
    const ctx: DaemonContext = {
      mode: "daemon",
      version: "test",
      runtimeDir: dir,
      libraryDir: dir,
      cgroupParent: parent,
      stopGraceMs: 500,
      logger: new Logger({ level: "error", write: () => {} }),
      tls: { caCrt: "", serverCrt: "", serverKey: "" },
    };
    module = await createCellService(ctx);
    server = new Server();
    server.addService(module.definition, module.implementation);
    await new Promise<void>((res, rej) => server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
    client = new CellServiceClient(`unix://${socket}`, credentials.createInsecure());
    c = {
      allocate: (r) => call(client.allocate.bind(client), r),
      free: (r) => call(client.free.bind(client), r),
      start: (r) => call(client.start.bind(client), r),
      stop: (r) => call(client.stop.bind(client), r),
      list: () => call(client.list.bind(client), {}),
    };
  });

  after(async () => {
    client?.close();
    try {
      await module?.shutdown?.();
    } finally {
      server?.forceShutdown();
      fs.rmSync(dir, { recursive: true, force: true });
      assert.deepEqual(await forceRemoveCgroupTree(detectCgroupLayout(), parent), []);
    }
  });

  test("Allocate answers the name and the truth about cgroup v2; List echoes the tree with executables", async () => {
    const r = await c.allocate({ cell: Cell.fromPartial({ name: "A", cpu: { weight: 100, max: 50000 }, memory: { max: 1 << 30 }, pids: { max: 100 } }) });
    assert.deepEqual(r, { cellName: "A", cgroupV2: detectCgroupLayout().mode === "v2" });
    await c.allocate({ cell: Cell.fromPartial({ name: "A/B" }) });
    await c.allocate({ cell: Cell.fromPartial({ name: "A/B/C" }) });
    await c.allocate({ cell: Cell.fromPartial({ name: "D" }) });
    const s = await c.start({ cellName: "A/B", executable: { name: "sleeper", command: "sleep 42", description: "zz" } });
    assert.equal(s.hostPid, s.pid);
    assert.equal(s.uid, 0);
    const { cells } = await c.list();
    assert.deepEqual(cells.map((n) => n.cell!.name), ["A", "D"]);
    assert.deepEqual(cells[0]!.cell, Cell.fromPartial({ name: "A", cpu: { weight: 100, max: 50000 }, memory: { max: 1 << 30 }, pids: { max: 100 } }));
    const b = cells[0]!.children[0]!;
    assert.equal(b.cell!.name, "A/B");
    assert.equal(b.children[0]!.cell!.name, "A/B/C");
    assert.deepEqual(b.executables.map((e) => [e.name, e.command, e.description, e.pid, e.state]), [["sleeper", "sleep 42", "zz", s.pid, "running"]]);
    await c.stop({ cellName: "A/B", executableName: "sleeper" });
    await c.free({ cellName: "A" });
    await c.free({ cellName: "D" });
    assert.deepEqual((await c.list()).cells, []);
  });

  test("every error is a status with the right code and a message naming the object", async () => {
    const bad = (name: string) => c.allocate({ cell: Cell.fromPartial({ name }) });
    await assert.rejects(bad("ae-no_underscore"), grpcError(status.INVALID_ARGUMENT, /cell.name 'ae-no_underscore'.*'_'/));
    await assert.rejects(bad("parent/bad_child"), grpcError(status.INVALID_ARGUMENT, /cell.name 'parent\/bad_child'/));
    await assert.rejects(bad("a//b"), grpcError(status.INVALID_ARGUMENT, /empty label/));
    await assert.rejects(bad("x".repeat(64)), grpcError(status.INVALID_ARGUMENT, /longer than 63/));
    await assert.rejects(bad(""), grpcError(status.INVALID_ARGUMENT, /cell.name '' must not be empty/));
    await assert.rejects(c.allocate({ cell: Cell.fromPartial({ name: "v", cpu: { max: 10 } }) }), grpcError(status.INVALID_ARGUMENT, /cell.cpu.max 10/));
    await assert.rejects(c.allocate({ cell: Cell.fromPartial({ name: "v", cpu: { weight: 10001 } }) }), grpcError(status.INVALID_ARGUMENT, /cell.cpu.weight/));
    await assert.rejects(c.allocate({ cell: Cell.fromPartial({ name: "v", cpuset: { cpus: "0-2,x" } }) }), grpcError(status.INVALID_ARGUMENT, /cell.cpuset.cpus/));
    await assert.rejects(c.allocate({ cell: Cell.fromPartial({ name: "a/b" }) }), grpcError(status.NOT_FOUND, /ancestor cell 'a' not found/));
    await c.allocate({ cell: Cell.fromPartial({ name: "e" }) });
    await assert.rejects(c.allocate({ cell: Cell.fromPartial({ name: "e" }) }), grpcError(status.ALREADY_EXISTS, /allocate cell 'e': already exists/));
    await assert.rejects(c.start({ cellName: "e", executable: undefined }), grpcError(status.INVALID_ARGUMENT, /executable is required/));
    await assert.rejects(c.start({ cellName: "e", executable: { name: "", command: "true", description: "" } }), grpcError(status.INVALID_ARGUMENT, /executable.name/));
    await assert.rejects(c.start({ cellName: "e", executable: { name: "x", command: "", description: "" } }), grpcError(status.INVALID_ARGUMENT, /executable.command must not be empty/));
    await c.start({ cellName: "e", executable: { name: "x", command: "sleep 1000", description: "" } });
    await assert.rejects(c.start({ cellName: "e", executable: { name: "x", command: "true", description: "" } }), grpcError(status.ALREADY_EXISTS, /'x' in cell 'e'/));
    await assert.rejects(c.stop({ cellName: "e", executableName: "nope" }), grpcError(status.NOT_FOUND, /stop executable 'nope' in cell 'e': executable not found/));
    await assert.rejects(c.free({ cellName: "nope" }), grpcError(status.NOT_FOUND, /free cell 'nope': not found/));
    if (detectCgroupLayout().mode !== "v2") {
      await assert.rejects(c.allocate({ cell: Cell.fromPartial({ name: "m", memory: { high: 1 << 20 } }) }), grpcError(status.FAILED_PRECONDITION, /memory.high .*mode: hybrid|memory.high .*mode: v1/));
    }
    await c.free({ cellName: "e" });
    await assert.rejects(c.start({ cellName: "e", executable: { name: "x", command: "true", description: "" } }), grpcError(status.NOT_FOUND, /cell 'e': cell not found/));
  });

  test("Start with uid and gid reports the ids the process really has", async () => {
    await c.allocate({ cell: Cell.fromPartial({ name: "u" }) });
    const r = await c.start({ cellName: "u", executable: { name: "n", command: "sleep 1000", description: "" }, uid: 65534, gid: 65534 });
    assert.deepEqual([r.uid, r.gid], [65534, 65534]);
    assert.match(fs.readFileSync(`/proc/${r.hostPid}/status`, "utf8"), /^Uid:\s+65534\s/m);
    await c.free({ cellName: "u" });
  });
});
