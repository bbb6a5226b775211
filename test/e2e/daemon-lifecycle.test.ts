import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status, type ServiceError, type ClientReadableStream } from "@grpc/grpc-js";
import {
  HealthClient,
  HealthCheckResponse_ServingStatus as S,
  type HealthCheckResponse,
} from "../../src/api/grpc/health/v1/health.js";
import { AURAED, startDaemon, CLIENT_OPTIONS } from "../helpers/daemon.js";
import { testPki } from "../helpers/pki.js";

const NAMES = [
  "",
  "aurae.cells.v0.CellService",
  "aurae.discovery.v0.DiscoveryService",
  "aurae.observe.v0.ObserveService",
  "aurae.vms.v0.VmService",
];

function check(client: InstanceType<typeof HealthClient>, service: string): Promise<HealthCheckResponse> {
  return new Promise((resolve, reject) =>
    client.check({ service }, { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res!))),
  );
}

test("health reports every Aurae service name SERVING and an unknown name NOT_FOUND", async () => {
  const d = await startDaemon();
  const client = new HealthClient(d.target, d.credentials, CLIENT_OPTIONS);
  try {
    for (const name of NAMES) {
      assert.equal((await check(client, name)).status, S.SERVING, `health of '${name}'`);
    }
    await assert.rejects(check(client, "no.such.Service"), (e: ServiceError) => e.code === status.NOT_FOUND);
  } finally {
    client.close();
    await d.stop();
  }
});

test("a health Watch sees NOT_SERVING when the daemon is told to stop, and the daemon exits 0", async () => {
  const d = await startDaemon();
  const client = new HealthClient(d.target, d.credentials, CLIENT_OPTIONS);
  const seen: number[] = [];
  const stream: ClientReadableStream<HealthCheckResponse> = client.watch({ service: "" });
  const ended = new Promise<void>((resolve) => {
    stream.on("data", (r: HealthCheckResponse) => {
      seen.push(r.status);
      if (r.status === S.SERVING) void d.stop().then((code) => assert.equal(code, 0));
    });
    stream.on("error", () => resolve());
    stream.on("end", () => resolve());
  });
  await ended;
  client.close();
  assert.deepEqual(seen, [S.SERVING, S.NOT_SERVING]);
});

test("SIGTERM exits 0 and removes the socket", async () => {
  const d = await startDaemon();
  const socket = d.socket!;
  assert.ok(statSync(socket).isSocket());
  d.process.kill("SIGTERM");
  const code = await new Promise((r) => d.process.once("exit", (c) => r(c)));
  assert.equal(code, 0);
  assert.equal(existsSync(socket), false);
  await d.stop();
});

test("a stale socket left by a killed daemon is replaced", async () => {
  const dir = mkdtempSync(join(tmpdir(), "aurae-stale-"));
  const socket = join(dir, "aurae.sock");
  // a process listening on the socket, killed with SIGKILL: the socket file stays behind
  const holder = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(socket)}, () => console.log("up"))`]);
  await new Promise((r) => holder.stdout.once("data", r));
  holder.kill("SIGKILL");
  await new Promise((r) => holder.once("exit", r));
  assert.ok(statSync(socket).isSocket());
  const d = await startDaemon({ socket });
  try {
    assert.ok(d.logs.some((l) => l.includes('"msg":"listening"')));
    const client = new HealthClient(d.target, d.credentials, CLIENT_OPTIONS);
    assert.equal((await check(client, "")).status, S.SERVING);
    client.close();
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a live daemon's socket is never stolen: the second daemon refuses to start", async () => {
  const d = await startDaemon();
  try {
    const second = await startDaemon({ socket: d.socket, waitReady: false });
    const code = await new Promise((r) => second.process.once("exit", (c) => r(c)));
    assert.notEqual(code, 0);
    assert.match(second.logs.join("\n"), /another daemon is answering on/);
    assert.ok(statSync(d.socket!).isSocket());
    await second.stop();
    const client = new HealthClient(d.target, d.credentials, CLIENT_OPTIONS);
    assert.equal((await check(client, "")).status, S.SERVING);
    client.close();
  } finally {
    await d.stop();
  }
});

test("missing certificates: one paragraph naming the file and the command that creates them, exit non-zero", async () => {
  const pki = await testPki();
  const dir = mkdtempSync(join(tmpdir(), "aurae-nocert-"));
  try {
    const missing = join(dir, "nope.crt");
    const r = spawnSync(process.execPath, [
      AURAED, "--server-crt", missing, "--server-key", pki.serverKey, "--ca-crt", pki.caCrt,
      "--socket", join(dir, "s.sock"), "--runtime-dir", dir,
    ], { encoding: "utf8" });
    assert.notEqual(r.status, 0);
    assert.ok(r.stderr.includes(missing), r.stderr);
    assert.match(r.stderr, /aer pki create --install/);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.equal(existsSync(join(dir, "s.sock")), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
