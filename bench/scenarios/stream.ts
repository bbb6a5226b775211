import { ChannelCredentials, makeGenericClientConstructor, Server, ServerCredentials, type Client, type ClientReadableStream, type ServerWritableStream } from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeLogResponses } from "../../src/daemon/observe/log-item-wire.js";
import { directMethods, routeDirectStreams } from "../../src/daemon/server/direct-stream.js";
import type { Logger } from "../../src/daemon/logger.js";
import { DirectSession, directStreamCall, messageDecoder } from "../../src/client/direct-stream.js";
import { DEFAULT_SERVER_NAME } from "../../src/client/transport.js";
import type { DevPki } from "../../src/pki/pki.js";
import { checkClean } from "../lib/leftovers.js";
import { cpuMs } from "../lib/proc.js";
import type { Row } from "../lib/report.js";
import { nowMs, summarize, type Summary } from "../lib/stats.js";
import { cellsClient, isSkippable, observeClient, skipRow, statusName, uniqueName, type Cells, type Observe } from "../lib/wire.js";
import type { TestDaemon } from "../../test/helpers/daemon.js";
import type { BenchContext } from "../run.js";

/** lines per response in the batched form (extension field max_lines_per_message; the daemon's cap) */
const PER_MESSAGE = 1024;
/** the stream daemon's `--output-retention`: more than the largest burst, so nothing is freed before it is read */
const RETAIN_BYTES = 256 * 1024 * 1024;
/** auraed's default `--output-retention` */
const DEFAULT_RETAIN_BYTES = 8 * 1024 * 1024;
/**
 * The HTTP/2 receive window the SDK sets (src/client/transport.ts; grpc-js's own default is 64
 * KiB): the daemon may send this much before the reader has to grant more. The transport floor
 * uses it too; the small-window row shows what grpc-js's default would cost.
 */
const WINDOW = { "grpc-node.flow_control_window": 1024 * 1024 };
const SMALL_WINDOW = { "grpc-node.flow_control_window": 65535 };

const BATCHED = `Output streaming, batched (${PER_MESSAGE} lines per response), read as bytes: 100-byte lines to one GetSubProcessStream reader vs a pipe into Node`;
const ITEMS = `Output streaming, batched, read as LogItems (a string and an object per line) vs the same pipe`;
const DEFAULT_WINDOW = "Output streaming, batched, read as bytes, with grpc-js's default 64 KiB flow-control window (info)";
const PER_LINE = "Output streaming, one line per response (Aurae's form) vs the same pipe";
const DEFAULT_RETENTION = "Output streaming, batched, with the default 8 MiB retention (one run; info)";
const TRANSPORT = "Transport alone: the same batched responses, pre-encoded, sent and read on HTTP/2 directly as the product does, not decoded, over the same mTLS socket (info)";
const GRPC_TRANSPORT = "grpc-js alone: the same, through grpc-js's message path on both ends (info)";
const cpuRow = (form: string, who: string) => `${who} CPU per MB, ${form} vs the pipe reader's CPU per MB`;

/** 99 characters and a newline: 100-byte lines. */
const LINE = "x".repeat(99);

interface Form {
  /** 0 = one line per response */
  perMessage: number;
  /** how the reader takes the stream: chunks of bytes (readOutput) or LogItems (getSubProcessStream) */
  bytes: boolean;
  mbps: number[];
  daemonCpu: number[];
  readerCpu: number[];
  delivered: number;
  expected: number;
  dropped: number;
  lines: number;
  messages: number;
}

const form = (perMessage: number, bytes: boolean): Form => ({ perMessage, bytes, mbps: [], daemonCpu: [], readerCpu: [], delivered: 0, expected: 0, dropped: 0, lines: 0, messages: 0 });

/**
 * An executable writes `bytes` of 100-byte lines (`yes | head -c`) into its output file, read by
 * one GetSubProcessStream reader in this process through the SDK with its defaults: as bytes
 * (readOutput, what `aer observe output` prints from; the aim's row) and as LogItems
 * (getSubProcessStream, a string and an object per line); also the bytes reader with grpc-js's
 * default 64 KiB window, and Aurae's one line per response, as info rows. Floor: the same
 * command spawned from Node with stdout piped into a Node reader (this process) counting bytes
 * and lines. All are timed from the first byte received to the end of the stream (the command
 * first sleeps 100 ms so that the reader is attached before output starts). The writer fills
 * its file at memory speed, faster than any reader, so the stream daemon runs with
 * `--output-retention` above the burst (else most of it is freed before it is read: the
 * default-retention row shows how much). CPU: the daemon's utime+stime from /proc before Start
 * and after the end; the reader's is this process's (`process.cpuUsage`: grpc-js, TLS, HTTP/2,
 * decoding, counting). Info row "grpc-js alone": the same batched responses sent by a bare
 * grpc-js server process from memory and received without decoding, the share of the cost the
 * product cannot remove. Floor, the readers and the transport runs are interleaved, after an
 * uncounted warm-up stream in each form. MB = 10^6 bytes.
 */
export async function run(b: BenchContext): Promise<Row[]> {
  const bytes = b.quick ? 10_000_000 : 200_000_000;
  const runs = b.quick ? 2 : 3;
  const command = `sleep 0.1; yes ${LINE} | head -c ${bytes}`;
  const allRows = (): Array<[string, Row["unit"]]> => [
    [BATCHED, "MB/s"], [cpuRow("batched, read as bytes", "Daemon"), "ms/MB"], [cpuRow("batched, read as bytes", "Reader"), "ms/MB"],
    [ITEMS, "MB/s"], [cpuRow("batched, read as LogItems", "Daemon"), "ms/MB"], [cpuRow("batched, read as LogItems", "Reader"), "ms/MB"], [DEFAULT_WINDOW, "MB/s"],
    [PER_LINE, "MB/s"], [cpuRow("one line per response", "Daemon"), "ms/MB"], [cpuRow("one line per response", "Reader"), "ms/MB"],
    [DEFAULT_RETENTION, "MB/s"], [TRANSPORT, "MB/s"],
  ];
  const d = await b.startDaemon({ args: ["--output-retention", String(RETAIN_BYTES)] });
  const rows: Row[] = [];
  const floor: number[] = [];
  const floorCpu: number[] = [];
  const batched = form(PER_MESSAGE, true);
  const itemsForm = form(PER_MESSAGE, false);
  const smallWindow = form(PER_MESSAGE, true);
  const perLine = form(0, false);
  let defaults: Form | undefined;
  const transport: TransportRun[] = [];
  const grpcTransport: TransportRun[] = [];
  let transportServer: Awaited<ReturnType<typeof startTransportFloor>> | undefined;
  const cells = cellsClient(d);
  const observe = observeClient(d); // the SDK's defaults (its 1 MiB window)
  const small = observeClient(d, { channelOptions: SMALL_WINDOW });
  const cell = uniqueName("bench-stream");
  try {
    await cells.allocate({ name: cell });
    transportServer = await startTransportFloor(d, bytes);
    // warm-up (not counted): the daemon's and this process's JIT, both readers' connections
    const warm = `yes ${LINE} | head -c ${Math.min(bytes, 20_000_000)}`;
    for (const f of [form(PER_MESSAGE, true), form(PER_MESSAGE, false), form(0, false)]) {
      await streamOnce(d, cells, observe, cell, warm, Math.min(bytes, 20_000_000), f);
    }
    for (let i = 0; i < runs; i++) {
      const f = await pipeFloor(command);
      if (f.bytes !== bytes) throw new Error(`pipe floor read ${f.bytes} bytes, expected ${bytes}`);
      floor.push(f.bytes / 1e6 / ((f.endAt - f.firstAt) / 1000));
      floorCpu.push(f.cpuMs / (f.bytes / 1e6));
      await streamOnce(d, cells, observe, cell, command, bytes, batched);
      await streamOnce(d, cells, observe, cell, command, bytes, itemsForm);
      await streamOnce(d, cells, small, cell, command, bytes, smallWindow);
      await streamOnce(d, cells, observe, cell, command, bytes, perLine);
      transport.push(await transportServer.run("direct"));
      grpcTransport.push(await transportServer.run("grpc"));
    }
    // one run against the shared daemon, which has the default retention
    defaults = form(PER_MESSAGE, true);
    const dc = cellsClient(b.daemon);
    const dob = observeClient(b.daemon);
    const dcell = uniqueName("bench-stream");
    try {
      await dc.allocate({ name: dcell });
      await streamOnce(b.daemon, dc, dob, dcell, command, bytes, defaults);
    } finally {
      await dc.free(dcell).catch(() => undefined);
      dc.close();
      dob.close();
    }
  } catch (err) {
    if (!isSkippable(err)) throw err;
    return allRows().map(([s, u]) => skipRow(s, u, statusName(err)));
  } finally {
    await cells.free(cell).catch(() => undefined);
    cells.close();
    observe.close();
    small.close();
    await transportServer?.close();
    await d.stop();
    const dirty = await checkClean(d.cgroupParent);
    if (dirty) rows.push({ scenario: "stream: cleanup after daemon shutdown", unit: "ms", met: false, aim: "nothing left", note: dirty });
  }
  const fl = summarize(floor);
  const flCpu = summarize(floorCpu);
  const size = `${runs} runs of ${bytes / 1e6} MB`;
  const retention = `daemon --output-retention ${RETAIN_BYTES / 2 ** 20} MiB (holds the whole burst)`;
  const delivery = (x: Form) =>
    `delivered ${((100 * x.delivered) / x.expected).toFixed(1)}%, dropped ${x.dropped} lines (reported by the daemon), ${(x.lines / Math.max(1, x.messages)).toFixed(1)} lines per response`;
  const ratioOf = (s: Summary) => s.p50 / fl.p50;
  const bs = summarize(batched.mbps);
  const is = summarize(itemsForm.mbps);
  const ls = summarize(perLine.mbps);
  rows.unshift(
    {
      scenario: BATCHED,
      product: bs,
      floor: fl,
      unit: "MB/s",
      aim: ">= 0.5x",
      met: ratioOf(bs) >= 0.5 && batched.delivered === batched.expected,
      note: `${size}; ${retention}; reader: the SDK's readOutput with its defaults (1 MiB HTTP/2 window), as \`aer observe output\` reads: chunks of line bytes, like the pipe reader's; ${delivery(batched)}`,
      extra: { bytes, runs, retainBytes: RETAIN_BYTES, perMessage: PER_MESSAGE, window: WINDOW, ...counts(batched) },
    },
    ...cpuRows("batched, read as bytes", batched, flCpu),
    {
      scenario: ITEMS,
      product: is,
      floor: fl,
      unit: "MB/s",
      note: `${size}; reader: the SDK's getSubProcessStream (LogItem objects, each line decoded into a string), for code that looks at each line; ${delivery(itemsForm)}`,
      extra: { bytes, runs, retainBytes: RETAIN_BYTES, perMessage: PER_MESSAGE, ...counts(itemsForm) },
    },
    ...cpuRows("batched, read as LogItems", itemsForm, flCpu),
    {
      scenario: DEFAULT_WINDOW,
      product: summarize(smallWindow.mbps),
      floor: fl,
      unit: "MB/s",
      note: `the same bytes reader with "grpc-node.flow_control_window" 65535 (what the SDK would get without its own setting); daemon ${summarize(smallWindow.daemonCpu).p50.toFixed(2)} ms/MB, reader ${summarize(smallWindow.readerCpu).p50.toFixed(2)} ms/MB; ${delivery(smallWindow)}`,
      extra: { bytes, runs, retainBytes: RETAIN_BYTES, perMessage: PER_MESSAGE, window: SMALL_WINDOW, daemonCpu: summarize(smallWindow.daemonCpu), readerCpu: summarize(smallWindow.readerCpu), ...counts(smallWindow) },
    },
    {
      scenario: PER_LINE,
      product: ls,
      floor: fl,
      unit: "MB/s",
      note: `${size}; ${retention}; reader: the SDK's getSubProcessStream; ${delivery(perLine)}; what Aurae's clients get (they never set max_lines_per_message)`,
      extra: { bytes, runs, retainBytes: RETAIN_BYTES, perMessage: 0, ...counts(perLine) },
    },
    ...cpuRows("one line per response", perLine, flCpu),
  );
  for (const [scenario, runs_, how] of [
    [TRANSPORT, transport, "a server process with the daemon's direct HTTP/2 path (src/daemon/server/direct-stream.ts) sends"],
    [GRPC_TRANSPORT, grpcTransport, "a grpc-js server process sends"],
  ] as const) {
    if (runs_.length === 0) continue;
    const ts = summarize(runs_.map((x) => x.mbps));
    rows.push({
      scenario,
      product: ts,
      floor: fl,
      unit: "MB/s",
      note: `what the transport costs without the product: ${how} ${PER_MESSAGE}-line responses as the daemon encodes them, from memory, to a client in this process with the same 1 MiB window that keeps the bytes (no decoding); server ${summarize(runs_.map((x) => x.serverCpu)).p50.toFixed(2)} ms/MB, client ${summarize(runs_.map((x) => x.clientCpu)).p50.toFixed(2)} ms/MB; the batched product reached ${(bs.p50 / ts.p50).toFixed(2)}x of it`,
      extra: { bytes, runs, serverCpu: summarize(runs_.map((x) => x.serverCpu)), clientCpu: summarize(runs_.map((x) => x.clientCpu)) },
    });
  }
  if (defaults) {
    const ds = summarize(defaults.mbps);
    rows.push({
      scenario: DEFAULT_RETENTION,
      product: ds,
      floor: fl,
      unit: "MB/s",
      note: `one run of ${bytes / 1e6} MB on a daemon with the default --output-retention (${DEFAULT_RETAIN_BYTES / 2 ** 20} MiB): the writer outruns the reader and the oldest output is freed before it is read; ${delivery(defaults)}`,
      extra: { bytes, retainBytes: DEFAULT_RETAIN_BYTES, perMessage: PER_MESSAGE, ...counts(defaults) },
    });
  }
  return rows;
}

function counts(x: Form): Record<string, number> {
  return { delivered: x.delivered, expected: x.expected, dropped: x.dropped, lines: x.lines, messages: x.messages };
}

function cpuRows(name: string, x: Form, flCpu: Summary): Row[] {
  return [
    {
      scenario: cpuRow(name, "Daemon"),
      product: summarize(x.daemonCpu),
      floor: flCpu,
      unit: "ms/MB",
      note: "per MB delivered; the daemon's whole CPU (utime+stime) from before Start to the end of the stream: noticing the writes, reading the file, encoding, gRPC, TLS",
    },
    {
      scenario: cpuRow(name, "Reader"),
      product: summarize(x.readerCpu),
      floor: flCpu,
      unit: "ms/MB",
      note: `per MB delivered; this process (the SDK's ObserveServiceClient): TLS, HTTP/2, gRPC framing, ${x.bytes ? "moving each response's lines into one buffer (readOutput)" : "decoding into LogItems"}, counting lines and bytes`,
    },
  ];
}

/** One executable's burst streamed to its end; adds its figures to `x`. */
async function streamOnce(d: TestDaemon, cells: Cells, observe: Observe, cell: string, command: string, bytes: number, x: Form): Promise<void> {
  const name = uniqueName("stream");
  const cpu0 = cpuMs(d.process.pid!);
  const reader0 = process.cpuUsage();
  const started = await cells.start(cell, name, command);
  const timeoutMs = Math.max(60_000, bytes / 1000); // at least 1 MB/s
  try {
    const r = await withTimeout(
      x.bytes ? observe.drainBytes(started.pid, cell, "stdout", x.perMessage) : observe.drain(started.pid, cell, "stdout", x.perMessage),
      timeoutMs,
      `stream of ${bytes} bytes did not end within ${timeoutMs} ms`,
    );
    const cpu1 = cpuMs(d.process.pid!);
    const reader = process.cpuUsage(reader0);
    const mb = r.bytes / 1e6;
    x.mbps.push(mb / ((r.endAt - r.firstAt) / 1000));
    x.daemonCpu.push((cpu1 - cpu0) / mb);
    x.readerCpu.push((reader.user + reader.system) / 1000 / mb);
    x.delivered += r.bytes;
    x.expected += bytes;
    x.dropped += r.dropped;
    x.lines += r.lines;
    x.messages += r.messages;
  } finally {
    await cells.stop(cell, name).catch(() => undefined);
  }
}

interface TransportRun {
  mbps: number;
  serverCpu: number;
  clientCpu: number;
}

/** raw bytes in and out: the transport floor's server-streaming method, on grpc-js and served directly */
const RAW_METHOD = {
  requestStream: false,
  responseStream: true,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};
const RAW_STREAM = { stream: { ...RAW_METHOD, path: "/bench.Stream/Stream" }, direct: { ...RAW_METHOD, path: "/bench.Stream/Direct" } };

/** One batched response of 100-byte lines, as the daemon encodes it, and the output bytes it carries. */
function floorResponse(): { msg: Buffer; outputBytes: number } {
  const lines = Array.from({ length: PER_MESSAGE }, () => ({ line: LINE, timestamp: Date.now(), droppedBefore: 0 }));
  return { msg: encodeLogResponses("stdout", lines, true)[0]!, outputBytes: PER_MESSAGE * (LINE.length + 1) };
}

/**
 * The transport floor: this file run as a child process (`--transport-floor-server SOCKET CA CRT
 * KEY BYTES`, below) serves responses carrying BYTES of output per call over mTLS on a Unix
 * socket; a client in this process with the batched reader's window receives them without
 * decoding. One server for all runs (warm, as the daemon is).
 */
async function startTransportFloor(d: TestDaemon, bytes: number): Promise<{ run(how: "direct" | "grpc"): Promise<TransportRun>; close(): Promise<void> }> {
  const pki: DevPki = d.pki;
  const dir = mkdtempSync(join(tmpdir(), "aurae-bench-stream-"));
  const socket = join(dir, "stream.sock");
  const child = spawn(process.execPath, ["--import", "tsx", import.meta.filename, "--transport-floor-server", socket, pki.caCrt, pki.serverCrt, pki.serverKey, String(bytes)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let client: (Client & { stream(req: Buffer): ClientReadableStream<Buffer> }) | undefined;
  let direct: DirectSession | undefined;
  const close = async () => {
    client?.close();
    direct?.close();
    child.kill("SIGTERM");
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once("exit", r)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await new Promise((res, rej) => {
      child.stdout!.once("data", res);
      child.once("exit", (c) => rej(new Error(`transport floor server exited ${c}`)));
    });
  } catch (err) {
    await close();
    throw err;
  }
  const nova = pki.clients["nova"]!;
  const Ctor = makeGenericClientConstructor(RAW_STREAM, "Stream");
  const credentials = ChannelCredentials.createSsl(readFileSync(pki.caCrt), readFileSync(nova.key), readFileSync(nova.crt));
  client = new Ctor(`unix://${socket}`, credentials, { ...d.clientOptions, ...WINDOW }) as unknown as typeof client;
  direct = new DirectSession({
    socket: { kind: "unix", path: socket },
    ca: readFileSync(pki.caCrt),
    cert: readFileSync(nova.crt),
    key: readFileSync(nova.key),
    serverName: DEFAULT_SERVER_NAME,
    window: WINDOW["grpc-node.flow_control_window"],
  });
  const { outputBytes } = floorResponse();
  const run = async (how: "direct" | "grpc"): Promise<TransportRun> => {
    const server0 = cpuMs(child.pid!);
    const client0 = process.cpuUsage();
    let got = 0;
    let firstAt = 0;
    if (how === "direct") {
      const keep = () => messageDecoder((b: Buffer) => [b]);
      for await (const _ of directStreamCall(direct!, RAW_STREAM.direct.path, "bench.Stream/Direct", Buffer.alloc(0), keep)) {
        if (got === 0) firstAt = nowMs();
        got += outputBytes;
      }
    } else await new Promise<void>((res, rej) => {
      const s = client!.stream(Buffer.alloc(0));
      s.on("data", () => {
        if (got === 0) firstAt = nowMs();
        got += outputBytes;
      });
      s.on("end", res);
      s.on("error", rej);
    });
    const endAt = nowMs();
    const c = process.cpuUsage(client0);
    const mb = got / 1e6;
    return { mbps: mb / ((endAt - firstAt) / 1000), serverCpu: (cpuMs(child.pid!) - server0) / mb, clientCpu: (c.user + c.system) / 1000 / mb };
  };
  return { run, close };
}

/** The transport floor's server (a child process of transportFloor). */
function serveTransportFloor([socket, ca, crt, key, total]: string[]): void {
  const { msg, outputBytes } = floorResponse();
  const server = new Server();
  const stream = (call: ServerWritableStream<Buffer, Buffer>) => {
    let sent = 0;
    const pump = () => {
      while (sent < Number(total)) {
        sent += outputBytes;
        if (!call.write(msg)) {
          call.once("drain", pump);
          return;
        }
      }
      call.end();
    };
    pump();
  };
  const impl = { stream, direct: stream };
  server.addService(RAW_STREAM, impl);
  const creds = ServerCredentials.createSsl(readFileSync(ca!), [{ private_key: readFileSync(key!), cert_chain: readFileSync(crt!) }], true);
  server.bindAsync(`unix://${socket}`, creds, (e) => {
    if (e) throw e;
    const logger = { warn: (m: string) => process.stderr.write(`${m}\n`) } as unknown as Logger;
    if (!routeDirectStreams(server, directMethods(RAW_STREAM, impl, ["direct"]), logger)) process.exit(1);
    process.stdout.write("ready\n");
  });
  process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
}

if (process.argv[2] === "--transport-floor-server") serveTransportFloor(process.argv.slice(3));

export async function pipeFloor(command: string): Promise<{ bytes: number; lines: number; firstAt: number; endAt: number; cpuMs: number }> {
  const cpu0 = process.cpuUsage();
  const c = spawn("sh", ["-c", command], { stdio: ["ignore", "pipe", "ignore"] });
  let bytes = 0;
  let lines = 0;
  let firstAt = 0;
  c.stdout!.on("data", (chunk: Buffer) => {
    if (bytes === 0) firstAt = nowMs();
    bytes += chunk.length;
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) lines++;
  });
  await new Promise<void>((res, rej) => {
    c.once("error", rej);
    c.stdout!.once("end", res);
  });
  const endAt = nowMs();
  const cpu = process.cpuUsage(cpu0);
  return { bytes, lines, firstAt, endAt, cpuMs: (cpu.user + cpu.system) / 1000 };
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, rej) => {
      timer = setTimeout(() => rej(new Error(message)), ms);
    }),
  ]);
}
