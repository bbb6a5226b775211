import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import * as grpc from "@grpc/grpc-js";
import { Logger } from "../../src/daemon/logger.js";
import type { DaemonContext } from "../../src/daemon/context.js";
import { createObserveService } from "../../src/daemon/observe/service.js";
import { createOutputSinkFactory } from "../../src/daemon/observe/output-log.js";
import type { ExecutableDirectory, ObservedExecutable } from "../../src/daemon/observe/ports.js";

/**
 * Output throughput benchmark: an executable writes OBSERVE_BENCH_MB (default 20; the reference
 * figure uses 200) of 100-byte lines. Compared: the same command piped straight into a Node
 * reader (the floor), and the executable's stdout read through GetSubProcessStream by a client
 * in another process. The writer is never slowed by readers, so the stream delivers what it
 * can and counts the rest as dropped: both figures are printed.
 */
const MB = Number(process.env.OBSERVE_BENCH_MB ?? 20);
const LINE = 100;
const generator = `yes ${"x".repeat(LINE - 1)} | head -c ${MB * 1_000_000}`;

export interface ThroughputResult {
  pipeMBps: number;
  /** bytes delivered to the stream reader per second, from start to the stream's end */
  streamMBps: number;
  /** lines the reader lost (counted by dropped_before) */
  droppedLines: number;
  receivedLines: number;
  /** the executable's run time with the stream reader attached vs alone on a pipe */
  exeMs: number;
  pipeMs: number;
}

async function pipeFloor(): Promise<{ ms: number; bytes: number }> {
  const t0 = performance.now();
  const child = spawn("sh", ["-c", generator], { stdio: ["ignore", "pipe", "inherit"] });
  let bytes = 0;
  let lines = 0;
  child.stdout!.on("data", (c: Buffer) => {
    bytes += c.length;
    // a reader that at least looks at the lines, as a log reader would
    for (let i = c.indexOf(10); i !== -1; i = c.indexOf(10, i + 1)) lines++;
  });
  await new Promise((r) => child.stdout!.on("end", r));
  assert.equal(lines, (MB * 1_000_000) / LINE);
  return { ms: performance.now() - t0, bytes };
}

const READER = `
import * as grpc from "${createRequire(import.meta.url).resolve("@grpc/grpc-js")}";
import { GetSubProcessStreamResponse } from "${path.resolve("src/api/aurae/observe/v0/observe.ts")}";
const [socket, pid] = process.argv.slice(-2);
const client = new grpc.Client("unix:" + socket, grpc.credentials.createInsecure());
const stream = client.makeServerStreamRequest("/aurae.observe.v0.ObserveService/GetSubProcessStream",
  (m) => Buffer.from(m), (b) => GetSubProcessStreamResponse.decode(b),
  Buffer.from([8, 1, 16, ...(() => { const o = []; let v = Number(pid); while (v > 127) { o.push((v & 127) | 128); v >>>= 7; } o.push(v); return o; })()]));
let bytes = 0, lines = 0, dropped = 0;
stream.on("metadata", () => process.stderr.write("R"));
stream.on("data", (m) => { lines++; bytes += m.item.line.length + 1; dropped += m.item.droppedBefore; });
stream.on("error", (e) => { console.error(e.message); process.exit(1); });
stream.on("end", () => { process.stdout.write(JSON.stringify({ bytes, lines, dropped })); client.close(); });
`;

export async function measureOutputThroughput(): Promise<ThroughputResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `observe-bench-${process.pid}-`));
  const socket = path.join(dir, "s.sock");
  const readerFile = path.join(dir, "reader.ts");
  fs.writeFileSync(readerFile, READER);
  const sinks = createOutputSinkFactory();
  const exes: ObservedExecutable[] = [];
  const directory: ExecutableDirectory = {
    findByPid: (pid) => exes.find((e) => e.pid === pid),
    hasCell: () => true,
    describeHostPid: () => undefined,
  };
  const ctx = {
    mode: "daemon", version: "bench", runtimeDir: dir, libraryDir: dir, cgroupParent: "bench",
    stopGraceMs: 1000, logger: new Logger({ write: () => {} }), tls: { caCrt: "", serverCrt: "", serverKey: "" },
  } satisfies DaemonContext;
  const service = createObserveService(ctx, { directory });
  const server = new grpc.Server();
  server.addService(service.definition, service.implementation);
  await new Promise<void>((res, rej) => server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
  const cleanup: (() => void)[] = [];
  try {
    const floor = await pipeFloor();
    // start the executable paused (SIGSTOP'd shell) so that the reader is connected first
    const child = spawn("sh", ["-c", `kill -STOP $$; ${generator}`], { stdio: ["ignore", "pipe", "pipe"] });
    cleanup.push(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"));
    const owner = { cellName: "bench", executableName: "yes" };
    const stdout = sinks("stdout", owner);
    const stderr = sinks("stderr", owner);
    child.stdout!.on("data", (c: Buffer) => stdout.write(c));
    child.stdout!.on("end", () => stdout.end());
    child.stderr!.on("data", (c: Buffer) => stderr.write(c));
    child.stderr!.on("end", () => stderr.end());
    exes.push({ ...owner, pid: child.pid!, hostPid: child.pid!, stdout, stderr });
    const exited = new Promise<number>((r) => child.on("exit", () => r(performance.now())));
    const reader = spawn(process.execPath, ["--import", "tsx", readerFile, socket, String(child.pid)], {
      cwd: process.cwd(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanup.push(() => reader.exitCode === null && reader.signalCode === null && reader.kill("SIGKILL"));
    let out = "";
    reader.stdout!.on("data", (c: Buffer) => (out += c));
    // the reader's stream is in place when its headers arrive
    await new Promise<void>((r, j) => {
      let err = "";
      reader.stderr!.on("data", (c: Buffer) => {
        err += c;
        if (err === "R") r();
      });
      reader.once("exit", () => j(new Error(`reader failed: ${err}`)));
    });
    const tStart = performance.now();
    process.kill(child.pid!, "SIGCONT");
    const tExit = await exited;
    await new Promise((r) => reader.on("exit", r));
    const tEnd = performance.now();
    const got = JSON.parse(out) as { bytes: number; lines: number; dropped: number };
    assert.equal(got.lines + got.dropped, (MB * 1_000_000) / LINE, "every line delivered or counted as dropped");
    return {
      pipeMBps: floor.bytes / 1_000_000 / (floor.ms / 1000),
      pipeMs: floor.ms,
      streamMBps: got.bytes / 1_000_000 / ((tEnd - tStart) / 1000),
      droppedLines: got.dropped,
      receivedLines: got.lines,
      exeMs: tExit - tStart,
    };
  } finally {
    for (const c of cleanup) c();
    await service.shutdown?.();
    await new Promise<void>((r) => server.tryShutdown(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test(`output throughput: ${MB} MB of 100-byte lines through one stream reader vs a pipe`, { timeout: 600_000 }, async () => {
  const r = await measureOutputThroughput();
  console.log(
    `# pipe to Node: ${r.pipeMBps.toFixed(1)} MB/s (${r.pipeMs.toFixed(0)} ms); ` +
      `stream reader: ${r.streamMBps.toFixed(1)} MB/s delivered, ${r.receivedLines} lines received, ${r.droppedLines} dropped; ` +
      `ratio ${(r.streamMBps / r.pipeMBps).toFixed(3)}; executable ran ${r.exeMs.toFixed(0)} ms with the reader attached`,
  );
  // the executable is not held back by the reader: it runs within a few times its pipe-only time
  assert.ok(r.exeMs < r.pipeMs * 5 + 2000, `executable slowed: ${r.exeMs} ms vs ${r.pipeMs} ms`);
});
